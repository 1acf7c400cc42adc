"""The stream package, the names, the device and checkpoint rules and the graph's parameter and
option tables import and work on a machine without any ROS package (as after `pip install
kp-motion`), and without kp_motion.ros: only that folder may be ROS."""

import subprocess
import textwrap

from test_foundation_core_without_ros import BLOCK_ROS_IMPORTS

from conftest import REPO_ROOT

# kp_motion.ros (the ROS adapters) made unimportable too: the ROS-free layers must not reach it.
BLOCK_ROS_ADAPTERS = textwrap.dedent(
    """
    class BlockRosAdapters(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "kp_motion.ros" or name.startswith("kp_motion.ros."):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, BlockRosAdapters())
    """
)

STREAM_WITHOUT_ROS = BLOCK_ROS_IMPORTS + BLOCK_ROS_ADAPTERS + textwrap.dedent(
    """
    import argparse

    import numpy as np

    from kp_motion.stream import meters, rendering, sender, sources
    from kp_motion.forecasting.named import load_named_forecaster
    from kp_motion.graph_config import options, parameters
    from kp_motion.stream.message import graph_frame_id  # reads the camera's parameter defaults

    stream = sender.KeypointSender(lambda frame: np.zeros(60, np.float32), fps=10.0, m=1, n=1)
    captures = [stream.capture(i * 100_000_000, np.zeros((4, 4, 3), np.uint8)) for i in range(4)]
    assert [c.reason for c in captures] == [None, sender.WITHHELD] * 2
    stats = meters.StreamStats(fps=10.0, m=1, n=1)
    stats.on_network(312, 0, 0.0)
    assert stats.summary()["network"]["messages"] == 1
    assert load_named_forecaster("hold-last").name == "hold-last"
    assert options.launch_arguments() and parameters.NODE_PARAMETERS
    for node in parameters.NODE_PARAMETERS:  # every node's defaults: config/nodes.yaml, checked
        assert parameters.node_parameter_defaults(node), node
    parser = argparse.ArgumentParser()
    options.add_cli_arguments(parser)
    assert options.options_from_namespace(parser.parse_args(["--m", "3"])).m == 3
    assert graph_frame_id()
    print("stream ok")
    """
)


def test_the_stream_package_works_without_ros(python_exe):
    result = subprocess.run([python_exe, "-c", STREAM_WITHOUT_ROS], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stream ok" in result.stdout
