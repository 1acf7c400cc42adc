"""Launch descriptions of the graphs for `ros2 launch kp_motion <graph>.launch.py` (full ROS 2).

launch and launch_ros are not on PyPI, so they are imported only when a launch file asks for a
description. What it holds, all built from kp_motion.ros.graph and the options table
kp_motion.graph_config.options, as the runner's processes are:

  * one DeclareLaunchArgument per graph option, with the option's real default (the
    config/nodes.yaml value), its choices, and "required" in the help of what the graph needs;
  * a pre-flight check (the runner's check_options and missing_inputs): a bad value or a
    missing file stops the launch before any node starts, with one line;
  * one Node action per node the graph can run, each under the condition of its roles, with
    its parameters as substitutions of the launch arguments: `ros2 launch -p` shows them all;
  * lifecycle: a node that exits with an error fails the launch (one line naming it, exit
    status 1); the capture node's normal exit (end of a clip with exit_at_end:=true) ends the
    launch once the last frames had SETTLE_S seconds to get through.

    ros2 launch kp_motion transfer.launch.py input:=driving.mp4 source_image:=face.png \\
        forecaster:=hold-last m:=5 n:=5 namespace:=robot1
"""

from __future__ import annotations

from typing import Any

from kp_motion.graph_config.options import GRAPH_OPTIONS, launch_arguments, options_from_strings
from kp_motion.ros.graph import (
    CAPTURE_NODES,
    PACKAGE,
    SETTLE_S,
    NodeSpec,
    check_options,
    graph_nodes,
    missing_inputs,
)

# Graph options a graph cannot run without (the launch help says so; pre-flight checks them).
REQUIRED = {"transfer": {"source_image": "required for roles receiver and both"}}


class GraphLaunchError(RuntimeError):
    """A launch that cannot go on; launch prints it as one line and exits with status 1."""


def argument_declarations(graph: str) -> list[dict[str, Any]]:
    """Keyword arguments of DeclareLaunchArgument, one per graph option (the options table's),
    with what `graph` requires said in its help."""
    declarations = launch_arguments()
    for declaration in declarations:
        note = REQUIRED.get(graph, {}).get(declaration["name"])
        if note:
            declaration["description"] = f"{note.upper()}: {declaration['description']}"
    return declarations


def parameter_sources(spec: NodeSpec) -> dict[str, Any]:
    """Where each graph-set parameter of `spec` comes from: ('option', name, type) for a launch
    argument, ('recorded_input',) for the detector's reliable_images, else a fixed value."""
    sources: dict[str, Any] = dict(spec.parameters)
    for option in GRAPH_OPTIONS:
        for node_name, parameter in option.targets():
            if node_name == spec.name:
                sources[parameter] = ("option", option.name, option.type)
    if spec.name == "keypoint_detector":
        sources["reliable_images"] = ("recorded_input",)
    return sources


def preflight(graph: str, argument_values: dict[str, str]) -> None:
    """The runner's checks on the launch arguments; GraphLaunchError with one line."""
    try:
        options = options_from_strings(argument_values)
        check_options(graph, options)
        problems = missing_inputs(graph, options)
    except (ValueError, FileNotFoundError) as error:
        raise GraphLaunchError(str(error)) from None
    if problems:
        raise GraphLaunchError("; ".join(problems))


def exit_outcome(name: str, returncode: int | None, shutting_down: bool) -> str | None:
    """What a node's exit means for the launch: 'fail', 'end' (a finished stream) or None."""
    if shutting_down:
        return None
    if returncode not in (0, None):
        return "fail"
    return "end" if name in CAPTURE_NODES else None


def generate_graph_launch_description(graph: str):
    """The LaunchDescription of `graph` ('reconstruction' or 'transfer')."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    from kp_motion.paths import config_path
    from launch import LaunchDescription

    declarations = argument_declarations(graph)
    names = [declaration["name"] for declaration in declarations]

    def check(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in names}
        preflight(graph, values)
        return []

    params_file = str(config_path("nodes.yaml"))
    entities = [DeclareLaunchArgument(**declaration) for declaration in declarations]
    entities.append(OpaqueFunction(function=check))
    for spec in graph_nodes(graph):
        node = _node_action(spec, params_file)
        entities += [node, _exit_handler(spec.name, node)]
    return LaunchDescription(entities)


def _node_action(spec: NodeSpec, params_file: str):
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PythonExpression
    from launch_ros.actions import Node

    # role has choices, so it is a plain word inside the expression's quotes.
    runs = IfCondition(PythonExpression(["'", LaunchConfiguration("role"), f"' in {spec.roles!r}"]))
    parameters = {name: _parameter_value(source)
                  for name, source in parameter_sources(spec).items()}
    return Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                namespace=LaunchConfiguration("namespace"), parameters=[params_file, parameters],
                remappings=list(spec.remappings), output="screen", emulate_tty=True,
                condition=runs)


def _parameter_value(source: Any):
    from launch.substitutions import LaunchConfiguration, PythonExpression
    from launch_ros.parameter_descriptions import ParameterValue

    if not isinstance(source, tuple):
        return source
    if source[0] == "recorded_input":
        # A file or folder, not a device index (kp_motion.ros.graph.is_recorded_input). The
        # input is quoted as a raw triple-quoted literal: any path without three double quotes.
        expression = ['not r"""', LaunchConfiguration("input"), '""".strip().isdigit()']
        return ParameterValue(PythonExpression(expression), value_type=bool)
    _, option_name, kind = source
    return ParameterValue(LaunchConfiguration(option_name), value_type=kind)


def _exit_handler(name: str, node):
    from launch.actions import EmitEvent, RegisterEventHandler, TimerAction
    from launch.event_handlers import OnProcessExit
    from launch.events import Shutdown

    def on_exit(event, context):
        outcome = exit_outcome(name, event.returncode, bool(getattr(context, "is_shutdown",
                                                                    False)))
        if outcome == "fail":
            raise GraphLaunchError(f"node {name} exited with status {event.returncode} "
                                   "(its log lines are above)")
        if outcome == "end":
            return [TimerAction(period=SETTLE_S, actions=[
                EmitEvent(event=Shutdown(reason=f"{name} finished its input"))])]
        return []

    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))
