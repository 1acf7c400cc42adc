"""The transfer graph: `ros2 launch kp_motion transfer.launch.py [name:=value ...]`.

Nodes, parameters and remappings come from kp_motion.ros.graph, as for `kp-motion graph`.
Launch arguments: the graph options of kp_motion.ros.options (empty = the config/nodes.yaml
default; `--show-args` lists them with their help), e.g. input, source_image, forecaster, m, n,
fps, device, checkpoint, role (sender/receiver/both).
"""

from kp_motion.names import TRANSFER
from kp_motion.ros.launch_description import generate_graph_launch_description


def generate_launch_description():
    return generate_graph_launch_description(TRANSFER)
