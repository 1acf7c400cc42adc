"""The pure-Python core imports and its CLI runs on a machine without any ROS package."""

import subprocess
import textwrap

from conftest import REPO_ROOT

# Every ROS-side module is made unimportable, as on a machine with only `pip install kp-motion`.
BLOCK_ROS_IMPORTS = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    BLOCKED = ("rclpy", "rosidl", "rosbags", "std_msgs", "sensor_msgs", "diagnostic_msgs",
               "builtin_interfaces", "rmw", "launch", "launch_ros", "kp_motion.msg")

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith(BLOCKED):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, BlockRos())
    """
)
BLOCK_ROS = BLOCK_ROS_IMPORTS + textwrap.dedent(
    """
    import kp_motion
    imported = []
    for info in pkgutil.walk_packages(kp_motion.__path__, "kp_motion."):
        if info.name.startswith(("kp_motion.ros", "kp_motion.msg")):
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
    assert "kp_motion.cli.main" in imported, imported
    print(len(imported))
    from kp_motion.cli.main import main
    try:
        main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0
    """
)


def test_core_imports_and_cli_help_without_ros(python_exe):
    result = subprocess.run(
        [python_exe, "-c", BLOCK_ROS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage: kp-motion" in result.stdout
