"""Launch descriptions of the graphs for `ros2 launch kp_motion <graph>.launch.py` (full ROS 2).

launch and launch_ros are not on PyPI, so they are imported only when a launch file asks for a
description. The nodes come from kp_motion.ros.graph.build_graph, exactly as the runner's do:
launch arguments are the graph options of kp_motion.ros.options (names, help text; empty =
the config/nodes.yaml default, which the help text quotes), e.g.

    ros2 launch kp_motion transfer.launch.py input:=driving.mp4 source_image:=face.png \\
        forecaster:=hold-last m:=5 n:=5
"""

from __future__ import annotations

from typing import Any

from kp_motion.ros.graph import PACKAGE, NodeSpec, build_graph
from kp_motion.ros.options import launch_arguments, options_from_strings


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

    arguments = launch_arguments()
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in arguments
    ]

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in arguments}
        params_file = str(config_path("nodes.yaml"))
        return [Node(**kwargs) for kwargs in graph_node_arguments(graph, values, params_file)]

    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
