"""The stream package, the names, the device and checkpoint rules and the graph's option table
import and work on a machine without any ROS package (as after `pip install kp-motion`)."""

import subprocess
import textwrap

from test_foundation_core_without_ros import BLOCK_ROS_IMPORTS

from conftest import REPO_ROOT

STREAM_WITHOUT_ROS = BLOCK_ROS_IMPORTS + textwrap.dedent(
    """
    import numpy as np

    from kp_motion.stream import meters, rendering, sender, sources
    from kp_motion.forecasting.named import load_named_forecaster
    from kp_motion.ros import options, parameters  # pure data: the option and parameter tables

    stream = sender.KeypointSender(lambda frame: np.zeros(60, np.float32), fps=10.0, m=1, n=1)
    captures = [stream.capture(i * 100_000_000, np.zeros((4, 4, 3), np.uint8)) for i in range(4)]
    assert [c.reason for c in captures] == [None, sender.WITHHELD] * 2
    stats = meters.StreamStats(fps=10.0, m=1, n=1)
    stats.on_network(312, 0, 0.0)
    assert stats.summary()["network"]["messages"] == 1
    assert load_named_forecaster("hold-last").name == "hold-last"
    assert options.launch_arguments() and parameters.NODE_PARAMETERS
    print("stream ok")
    """
)


def test_the_stream_package_works_without_ros(python_exe):
    result = subprocess.run([python_exe, "-c", STREAM_WITHOUT_ROS], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stream ok" in result.stdout
