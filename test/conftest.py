"""Shared fixtures. ROS tests need rclpy and the colcon-built message (scripts/env.sh); they
are skipped without them unless KP_MOTION_REQUIRE_ROS=1 (set by scripts/test.sh), in which
case a missing ROS runtime is a failure, not a skip."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _ros_available() -> tuple[bool, str]:
    if importlib.util.find_spec("rclpy") is None:
        return False, "rclpy is not installed"
    try:
        from kp_motion.msg import Keypoint60  # noqa: F401
    except ImportError as error:
        return False, f"kp_motion.msg is not built ({error}); run scripts/setup.sh"
    return True, ""


def pytest_collection_modifyitems(config, items):
    available, reason = _ros_available()
    if available:
        return
    if os.environ.get("KP_MOTION_REQUIRE_ROS") == "1":
        raise pytest.UsageError(f"ROS tests required but {reason}")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "ros" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def ros_env(monkeypatch) -> dict[str, str]:
    """Environment for a ROS test: its own domain id, discovery on this machine only."""
    domain_id = str(random.Random(os.getpid() ^ id(monkeypatch)).randint(110, 220))
    monkeypatch.setenv("ROS_DOMAIN_ID", domain_id)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")  # the pre-Jazzy spelling of the same
    return dict(os.environ)


@pytest.fixture
def python_exe() -> str:
    return sys.executable


# The project's shared data and fixtures (real clips, keypoints, reference golden outputs)
# live beside the checkout in ../shared; CI has it. KP_MOTION_SHARED points elsewhere.
SHARED_ROOT = Path(os.environ.get("KP_MOTION_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(relative: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED_ROOT / relative
    if not path.exists():
        pytest.skip(f"shared data {relative} not found under {SHARED_ROOT} "
                    "(CI has ../shared; set KP_MOTION_SHARED to use another copy)")
    return path
