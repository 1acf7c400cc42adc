"""The reconstruction graph: `ros2 launch kp_motion reconstruction.launch.py [name:=value ...]`.

Nodes, parameters and remappings come from kp_motion.ros.graph, as for `kp-motion graph`; the
description itself is kp_motion.ros.launch_description. Launch arguments: the graph options of
kp_motion.graph_config.options with their real defaults and choices (`--show-args` lists
them), e.g. input, forecaster, m, n, fps, device, checkpoint, role (sender/receiver/both),
exit_at_end, publish_images, namespace. Every node is a Node action (`ros2 launch -p` shows
them); the runner's pre-flight checks run first, a failing node fails the launch, and with
exit_at_end:=true the end of the clip ends it.
"""

from kp_motion.names import RECONSTRUCTION
from kp_motion.ros.launch_description import generate_graph_launch_description


def generate_launch_description():
    return generate_graph_launch_description(RECONSTRUCTION)
