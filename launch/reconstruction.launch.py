"""The reconstruction graph: `ros2 launch kp_motion reconstruction.launch.py [name:=value ...]`.

Nodes, parameters and remappings come from kp_motion.ros.graph, as for `kp-motion graph`.
Launch arguments (all optional; empty = the config/nodes.yaml default): input, source_image,
forecaster, forecaster_path, m, n, fps, device, checkpoint, role (sender/receiver/both), ...
"""

from kp_motion.ros.launch_description import generate_graph_launch_description


def generate_launch_description():
    return generate_graph_launch_description("reconstruction")
