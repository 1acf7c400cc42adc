"""`kp-motion bag record|play|info`: rosbag2 bags through rclpy and the rosbags library.

The bags are what `ros2 bag play` and `ros2 bag info` read (see kp_motion/ros/bag.py).
"""

from __future__ import annotations

import argparse
import json
import sys

COMMAND = "bag"
HELP = "record, play or describe rosbag2 bags (no rosbag2 install needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kp_motion.ros.bag import DEFAULT_TOPICS, STORAGES  # no ROS import at module level

    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    record = actions.add_parser("record", help="record topics into a new bag folder")
    record.add_argument("output", help="bag folder to create (must not exist)")
    record.add_argument("--topic", action="append", dest="topics", metavar="TOPIC",
                        help=f"topic to record (repeatable; default {' '.join(DEFAULT_TOPICS)})")
    record.add_argument("--storage", choices=STORAGES, default=STORAGES[0],
                        help=f"storage format (default {STORAGES[0]}, as ros2 bag)")
    record.add_argument("--duration", type=float, help="stop after this many seconds")
    record.add_argument("--max-messages", type=int, help="stop after this many messages")
    record.add_argument("--discovery-timeout", type=float, default=10.0,
                        help="seconds to wait for the topics' publishers (default 10)")

    play = actions.add_parser("play", help="publish a bag with its recorded timing")
    play.add_argument("bag", help="bag folder (with metadata.yaml)")
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    play.add_argument("--topic", action="append", dest="topics", metavar="TOPIC",
                      help="play only this topic (repeatable; default all)")
    play.add_argument("--wait-for-subscribers", type=int, default=0, metavar="N",
                      help="before playing, wait until every topic has N subscribers")
    play.add_argument("--wait-timeout", type=float, default=10.0,
                      help="seconds to wait for subscribers (default 10)")

    info = actions.add_parser("info", help="topics, types, counts and duration of a bag")
    info.add_argument("bag", help="bag folder (with metadata.yaml)")


def _log(text: str) -> None:
    print(f"[kp-motion bag] {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from kp_motion.cli.graph import require_ros
    from kp_motion.cli.main import CliError
    from kp_motion.ros import bag

    require_ros()
    try:
        import rosbags  # noqa: F401
    except ImportError:
        raise CliError("bags need the rosbags package (pip install rosbags)") from None
    if args.action == "record":
        if args.max_messages is not None and args.max_messages < 1:
            raise CliError("--max-messages must be at least 1")
        bag.record(args.output, list(args.topics or bag.DEFAULT_TOPICS), storage=args.storage,
                   duration_s=args.duration, max_messages=args.max_messages,
                   discovery_timeout_s=args.discovery_timeout, log=_log)
    elif args.action == "play":
        bag.play(args.bag, rate=args.rate, topics=args.topics,
                 wait_for_subscribers=args.wait_for_subscribers,
                 wait_timeout_s=args.wait_timeout, log=_log)
    else:
        print(json.dumps(bag.info(args.bag), indent=2))
    return 0
