"""Launch descriptions of the graphs for `ros2 launch kp_motion <graph>.launch.py` (full ROS 2).

launch and launch_ros are not on PyPI, so they are imported only when a launch file asks for a
description. The nodes come from kp_motion.ros.graph.build_graph, exactly as the runner's do:
launch arguments are the GraphOptions fields (empty = the config/nodes.yaml default), e.g.

    ros2 launch kp_motion transfer.launch.py input:=driving.mp4 source_image:=face.png \\
        forecaster:=hold-last m:=5 n:=5
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from kp_motion.ros.graph import PACKAGE, GraphOptions, NodeSpec, build_graph, options_from_strings

LAUNCH_ARGUMENT_HELP = {
    "input": "camera input: V4L2 device index, video file or image folder",
    "source_image": "transfer graph: the source image file to animate",
    "forecaster": "vrnn, rnn, vae, hold-last or constant-velocity",
    "forecaster_path": "folder of a learned forecaster (empty = embedded default)",
    "m": "transmitted frames per cycle",
    "n": "withheld (predicted) frames per cycle",
    "fps": "frame rate of the stream",
    "device": "torch device: auto, cpu, cuda",
    "checkpoint": "FOMM checkpoint folder (detector + generator)",
    "width": "camera output width",
    "height": "camera output height",
    "max_frames": "stop the camera after this many frames",
    "drop_probability": "simulated loss of transmitted frames",
    "drop_seed": "seed of the simulated loss",
    "summary_path": "stats: JSON summary written at exit",
    "role": "sender, receiver or both",
    "exit_at_end": "camera exits at the end of a clip (true/false)",
    "recorder": "a recorder also subscribes to images and keypoints (true/false)",
}


def launch_argument_defaults() -> dict[str, str]:
    """Launch argument -> default text: empty (config/nodes.yaml decides) except role."""
    defaults = {}
    for option in fields(GraphOptions):
        default = option.default
        if default is None:
            defaults[option.name] = ""
        elif isinstance(default, bool):
            defaults[option.name] = "true" if default else "false"
        else:
            defaults[option.name] = str(default)
    return defaults


def node_arguments(spec: NodeSpec, params_file: str) -> dict[str, Any]:
    """Keyword arguments of launch_ros.actions.Node for one graph node.

    name and namespace are both given, so launch_ros scopes the parameter dict to this node
    and it overrides the node's section of config/nodes.yaml.
    """
    return {
        "package": PACKAGE,
        "executable": spec.executable,
        "name": spec.name,
        "namespace": "",
        "parameters": [params_file, dict(spec.parameters)],
        "remappings": list(spec.remappings),
        "output": "screen",
        "emulate_tty": True,
    }


def graph_node_arguments(graph: str, argument_values: dict[str, str],
                         params_file: str) -> list[dict[str, Any]]:
    """Launch arguments (text) -> Node keyword arguments for every node of the graph."""
    options = options_from_strings(argument_values)
    return [node_arguments(spec, params_file) for spec in build_graph(graph, options)]


def generate_graph_launch_description(graph: str):
    """The LaunchDescription of `graph` ('reconstruction' or 'transfer')."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from kp_motion.paths import config_path
    from launch import LaunchDescription

    defaults = launch_argument_defaults()
    declared = [
        DeclareLaunchArgument(name, default_value=default,
                              description=LAUNCH_ARGUMENT_HELP.get(name, name))
        for name, default in defaults.items()
    ]

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in defaults}
        params_file = str(config_path("nodes.yaml"))
        return [Node(**kwargs) for kwargs in graph_node_arguments(graph, values, params_file)]

    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
