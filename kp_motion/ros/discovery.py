"""Where a graph's DDS traffic goes: a private domain and discovery on this machine, unless the
user chose otherwise. ROS-free (environment variables only).

`kp-motion graph` (and so scripts/demo.sh) runs with these defaults, so that two users, or a
test and a demo, never see each other's topics:

    ROS_DOMAIN_ID                   1 + (user id mod 101): one private domain per user of the
                                    machine (domains 1..101 are valid on Linux with the default
                                    port mapping), the same for every run of that user, so a
                                    sender run and a receiver run on one machine still meet
    ROS_AUTOMATIC_DISCOVERY_RANGE   LOCALHOST: no participant on another machine is discovered

A variable the user set is kept as it is; a user who set the older ROS_LOCALHOST_ONLY keeps it
instead of the discovery range. To split sender and receiver over two machines, set both
variables on both (e.g. ROS_DOMAIN_ID=42 ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DOMAIN = "ROS_DOMAIN_ID"
DISCOVERY_RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
LOCALHOST_ONLY = "ROS_LOCALHOST_ONLY"  # deprecated since Jazzy; respected when set
PRIVATE_DOMAINS = 101  # 1..101


def private_domain_id(user_id: int | None = None) -> int:
    return 1 + (os.getuid() if user_id is None else user_id) % PRIVATE_DOMAINS


def private_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to `environ` for a private, local graph (none the user set)."""
    added = {}
    if not environ.get(DOMAIN, "").strip():
        added[DOMAIN] = str(private_domain_id())
    if not environ.get(DISCOVERY_RANGE, "").strip() and not environ.get(LOCALHOST_ONLY):
        added[DISCOVERY_RANGE] = "LOCALHOST"
    return added


def describe(environ: Mapping[str, str]) -> str:
    """One line naming the domain and discovery range a graph runs with."""
    reach = environ.get(DISCOVERY_RANGE) or (
        f"{LOCALHOST_ONLY}={environ[LOCALHOST_ONLY]}" if environ.get(LOCALHOST_ONLY) else
        "the ROS default (SUBNET)")
    return (f"DDS domain {environ.get(DOMAIN, '0')}, discovery {reach} (set {DOMAIN} and "
            f"{DISCOVERY_RANGE} to change)")
