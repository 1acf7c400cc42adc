"""The graph description is the one source: the runner's command lines and the launch files'
Node actions are both derived from kp_motion.ros.graph. No DDS traffic here."""

from __future__ import annotations

import importlib.util
import shlex
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from kp_motion.graph_config import options as graph_options
from kp_motion.ros import commands as node_commands
from kp_motion.ros import runner
from kp_motion.ros.graph import GraphOptions, build_graph
from kp_motion.topics import GRAPH_TOPICS

TRANSFER_OPTIONS = GraphOptions(input="clip.mp4", source_image="face.png", forecaster="hold-last",
                                m=2, n=3, fps=12.5, device="cpu", checkpoint="ckpt")


def test_graphs_connect_their_nodes_through_the_shared_topics():
    nodes = {spec.name: spec for spec in build_graph("transfer", TRANSFER_OPTIONS)}
    assert list(nodes) == ["camera", "keypoint_detector", "forecaster", "renderer", "stats"]
    remap = {name: dict(spec.remappings) for name, spec in nodes.items()}
    assert remap["camera"]["image"] == remap["keypoint_detector"]["image"] == GRAPH_TOPICS[
        "image"]
    assert remap["camera"]["clip_end"] == remap["keypoint_detector"]["clip_end"] == GRAPH_TOPICS[
        "clip_end"]
    assert remap["keypoint_detector"]["keypoints"] == remap["forecaster"]["keypoints"]
    assert remap["forecaster"]["keypoints"] == remap["stats"]["network"] == GRAPH_TOPICS[
        "network"]
    assert remap["forecaster"]["keypoints_full"] == remap["renderer"]["keypoints"]
    assert remap["renderer"]["rendered"] == remap["stats"]["rendered"]
    # one option, one value, in every node that uses it
    for name in ("keypoint_detector", "forecaster", "stats"):
        assert (nodes[name].parameters["m"], nodes[name].parameters["n"]) == (2, 3)
    assert nodes["renderer"].parameters["mode"] == "transfer"
    assert nodes["renderer"].parameters["source_image"] == "face.png"
    assert nodes["camera"].parameters["publish_source"] is False
    assert nodes["keypoint_detector"].parameters["reliable_images"] is True  # a clip

    reconstruction = {s.name: s for s in build_graph("reconstruction", GraphOptions(input="0"))}
    assert reconstruction["camera"].parameters["publish_source"] is True
    assert reconstruction["renderer"].parameters["mode"] == "reconstruction"
    assert "reliable_images" not in reconstruction["keypoint_detector"].parameters  # live camera


def test_no_node_of_a_graph_waits_for_subscribers():
    for graph_name in ("reconstruction", "transfer"):
        for role in ("sender", "receiver", "both"):
            options = GraphOptions(input="clip.mp4", source_image="f.png", role=role)
            if graph_name == "reconstruction":
                options.source_image = None
            for spec in build_graph(graph_name, options):
                assert not any(name.startswith("wait_for") for name in spec.parameters), spec


def test_topics_are_relative_so_a_namespace_moves_them_all():
    for graph_name, options in (("transfer", TRANSFER_OPTIONS),
                                ("reconstruction", GraphOptions(role="sender"))):
        for spec in build_graph(graph_name, options):
            assert spec.remappings, spec.name
            assert all(not target.startswith("/") for _, target in spec.remappings), spec
    robots = [build_graph("transfer", GraphOptions(source_image="f.png", namespace=name))
              for name in ("robot1", "/robot2/")]
    assert {spec.namespace for spec in robots[0]} == {"/robot1"}
    assert {spec.namespace for spec in robots[1]} == {"/robot2"}
    with pytest.raises(ValueError, match="not a ROS namespace"):
        build_graph("transfer", GraphOptions(source_image="f.png", namespace="2robots"))


def test_two_namespaced_runners_start_nodes_whose_topics_never_meet(tmp_path):
    from kp_motion.topics import resolved

    topics = {}
    for robot in ("robot1", "robot2"):
        options = replace(TRANSFER_OPTIONS, namespace=robot)
        graph_runner = runner.GraphRunner("transfer", options, tmp_path / robot)
        resolved_names = set()
        for _, argv in graph_runner.command_lines():
            parsed = node_commands.parse_ros_arguments(argv)
            assert parsed["namespace"] == f"/{robot}"
            assert parsed["parameters"], "the values reach the node in its namespace"
            resolved_names |= {f"{parsed['namespace']}/{target}"
                               for _, target in parsed["remappings"]}
        assert resolved(name="rendered", namespace=robot) in resolved_names
        topics[robot] = resolved_names
    assert not topics["robot1"] & topics["robot2"]


def test_roles_split_the_graph_between_sender_and_receiver():
    sender = build_graph("transfer", GraphOptions(role="sender"))
    receiver = build_graph("transfer", GraphOptions(source_image="f.png", role="receiver"))
    assert [s.name for s in sender] == ["sender"], "capture + detection in one process"
    assert [s.name for s in receiver] == ["forecaster", "renderer", "stats"]


def test_the_sender_offers_keypoints_only_unless_asked_for_images():
    from kp_motion.graph_config.parameters import node_parameter_defaults
    from kp_motion.topics import IMAGE_TOPICS

    transfer_sender = build_graph("transfer", GraphOptions(role="sender"))
    (spec,) = transfer_sender
    assert node_parameter_defaults("sender")["publish_images"] is False
    assert "publish_images" not in spec.parameters
    assert spec.parameters["publish_source"] is False
    # The network topics (one per wire: keypoints, or packets and their stream description);
    # image/source_image only on request.
    offered = {"keypoints", "packets", "stream"}
    remapped = dict(spec.remappings)
    assert remapped["keypoints"] == GRAPH_TOPICS["network"]
    assert remapped["packets"] == GRAPH_TOPICS["network_packets"]
    assert remapped["stream"] == GRAPH_TOPICS["network_stream"]
    assert {name for name in remapped if name not in offered} == {"image", "source_image"}
    assert set(IMAGE_TOPICS) >= {"image", "source_image"}
    # reconstruction needs the source frame at the receiver, by definition: one latched image
    (reconstruction,) = build_graph("reconstruction", GraphOptions(role="sender"))
    assert reconstruction.parameters["publish_source"] is True


@pytest.mark.parametrize(
    ("graph_name", "options", "complaint"),
    [
        ("transfer", GraphOptions(), "needs a source image"),
        ("reconstruction", GraphOptions(source_image="x.png"), "first frame"),
        ("transfer", GraphOptions(source_image="x.png", role="nobody"), "unknown role"),
        ("mirror", GraphOptions(), "unknown graph"),
    ],
)
def test_inconsistent_graph_options_are_refused(graph_name, options, complaint):
    with pytest.raises(ValueError, match=complaint):
        build_graph(graph_name, options)


@pytest.mark.parametrize("graph_name", ["reconstruction", "transfer"])
def test_runner_command_lines_carry_exactly_the_graph_description(graph_name, tmp_path):
    options = TRANSFER_OPTIONS if graph_name == "transfer" else GraphOptions(input="clip.mp4")
    graph_runner = runner.GraphRunner(graph_name, options, tmp_path)
    expected = build_graph(graph_name, graph_runner.options)
    commands = graph_runner.command_lines()
    assert [spec for spec, _ in commands] == expected
    for spec, argv in commands:
        assert argv[0] == sys.executable
        assert Path(argv[1]).name == spec.executable and Path(argv[1]).is_file()
        parsed = node_commands.parse_ros_arguments(argv)
        assert parsed["name"] == spec.name and parsed["namespace"] == ""
        # config/nodes.yaml first, then the graph's values for this node: rcl applies the later
        assert [Path(f).name for f in parsed["params_files"]] == ["nodes.yaml",
                                                                  f"{spec.name}.yaml"]
        assert parsed["parameters"] == spec.parameters  # values keep their YAML types
        assert parsed["remappings"] == list(spec.remappings)


def test_parameter_text_keeps_types_through_yaml():
    import yaml

    for value in (3, 2.0, 1e-3, True, "0", "", "hold-last", "clips/a b.mp4", "true", "1.5"):
        assert yaml.safe_load(node_commands.parameter_text(value)) == value
        assert type(yaml.safe_load(node_commands.parameter_text(value))) is type(value)


def test_cli_print_commands_matches_the_runner(tmp_path, python_exe):
    import subprocess

    result = subprocess.run(
        [python_exe, "-m", "kp_motion.cli.main", "graph", "transfer", "--input", "clip.mp4",
         "--source-image", "face.png", "--m", "2", "--n", "3", "--fps", "12.5",
         "--forecaster", "hold-last", "--device", "cpu", "--checkpoint", "ckpt",
         "--output", str(tmp_path), "--print-commands"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    graph_runner = runner.GraphRunner("transfer", TRANSFER_OPTIONS, tmp_path)
    assert printed == [shlex.join(argv) for _, argv in graph_runner.command_lines()]


def test_cli_names_a_missing_input_in_one_line(tmp_path, python_exe):
    import subprocess

    result = subprocess.run(
        [python_exe, "-m", "kp_motion.cli.main", "graph", "transfer", "--input",
         str(tmp_path / "missing.mp4"), "--source-image", str(tmp_path / "face.png"),
         "--forecaster", "hold-last", "--output", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "missing.mp4" in result.stderr and "face.png" in result.stderr


# --- launch files ---------------------------------------------------------------------------


class FakeContext(dict):
    """Launch argument values, as the stand-ins' substitutions read them."""

    is_shutdown = False


def _fake_launch_modules(monkeypatch) -> None:
    """Minimal stand-ins of launch / launch_ros: they keep their arguments, and substitutions
    and conditions evaluate against a FakeContext."""

    def keep(*names):
        def init(self, *args, **kwargs):
            self.__dict__.update(dict(zip(names, args, strict=False)), **kwargs)
        return init

    def text(value, context):
        return value.perform(context) if hasattr(value, "perform") else str(value)

    class LaunchConfiguration:
        __init__ = keep("name")

        def perform(self, context):
            return context[self.name]

    class PythonExpression:
        __init__ = keep("expression")

        def perform(self, context):
            return str(eval("".join(text(part, context) for part in self.expression)))

    class IfCondition:
        __init__ = keep("predicate")

        def evaluate(self, context):
            return self.predicate.perform(context).lower() == "true"

    def kind(name, *fields):
        return type(name, (), {"__init__": keep(*fields)})

    modules = {
        "launch": types.SimpleNamespace(LaunchDescription=kind("LaunchDescription", "entities")),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=kind("DeclareLaunchArgument", "name"),
            OpaqueFunction=kind("OpaqueFunction"),
            RegisterEventHandler=kind("RegisterEventHandler", "event_handler"),
            EmitEvent=kind("EmitEvent"), TimerAction=kind("TimerAction")),
        "launch.conditions": types.SimpleNamespace(IfCondition=IfCondition),
        "launch.event_handlers": types.SimpleNamespace(OnProcessExit=kind("OnProcessExit")),
        "launch.events": types.SimpleNamespace(Shutdown=kind("Shutdown")),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration,
                                                      PythonExpression=PythonExpression),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=kind("Node")),
        "launch_ros.parameter_descriptions": types.SimpleNamespace(
            ParameterValue=kind("ParameterValue", "value")),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def _load_launch_file(graph_name: str):
    path = REPO_ROOT / "launch" / f"{graph_name}.launch.py"
    spec = importlib.util.spec_from_file_location(f"launch_file_{graph_name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _typed(text: str, kind: type):
    if kind is bool:
        return text.lower() == "true"
    return kind(text)


def _evaluate(node, context: FakeContext) -> dict:
    """A stand-in Node's name, namespace, effective parameters and remappings."""
    params_file, values = node.parameters
    parameters = {}
    for name, value in values.items():
        if type(value).__name__ == "ParameterValue":
            value = _typed(value.value.perform(context), value.value_type)
        parameters[name] = value
    return {"name": node.name, "namespace": node.namespace.perform(context),
            "params_file": params_file, "parameters": parameters,
            "remappings": node.remappings}


def _launch(graph_name: str, monkeypatch, **arguments: str):
    """(description entities, context with the declared defaults and `arguments`)."""
    _fake_launch_modules(monkeypatch)
    description = _load_launch_file(graph_name).generate_launch_description()
    declared = [e for e in description.entities if type(e).__name__ == "DeclareLaunchArgument"]
    context = FakeContext({e.name: e.default_value for e in declared})
    context.update(arguments)
    return description.entities, context


def _started_nodes(entities, context) -> list[dict]:
    return [_evaluate(e, context) for e in entities
            if type(e).__name__ == "Node" and e.condition.evaluate(context)]


LAUNCH_CASES = [
    ("transfer", {"input": "clip.mp4", "source_image": "face.png", "m": "2", "n": "3",
                  "fps": "12.5", "forecaster": "hold-last", "device": "cpu"}),
    ("transfer", {"input": "0", "role": "sender", "exit_at_end": "true"}),
    ("transfer", {"source_image": "face.png", "role": "receiver", "namespace": "robot1"}),
    ("reconstruction", {"input": "frames/", "checkpoint": "ckpt", "drop_probability": "0.25"}),
]


@pytest.mark.parametrize(("graph_name", "arguments"), LAUNCH_CASES)
def test_launch_files_start_exactly_the_graph_description(graph_name, arguments, monkeypatch):
    from kp_motion.graph_config.parameters import node_parameter_defaults

    entities, context = _launch(graph_name, monkeypatch, **arguments)
    started = _started_nodes(entities, context)
    expected = build_graph(graph_name, graph_options.options_from_strings(dict(context)))
    assert [node["name"] for node in started] == [spec.name for spec in expected]
    for node, spec in zip(started, expected, strict=True):
        assert Path(node["params_file"]).name == "nodes.yaml"
        effective = {**node_parameter_defaults(spec.name), **spec.parameters}
        assert set(spec.parameters) <= set(node["parameters"])
        assert {name: effective[name] for name in node["parameters"]} == node["parameters"]
        assert node["remappings"] == list(spec.remappings)
        assert node["namespace"] == context["namespace"]


def test_launch_arguments_carry_real_defaults_choices_and_what_is_required(monkeypatch):
    from kp_motion.names import FORECASTERS, ROLES, SET_MEMBERS

    for graph_name in ("transfer", "reconstruction"):
        entities, context = _launch(graph_name, monkeypatch)
        declared = {e.name: e for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
        assert list(declared) == [o.name for o in graph_options.GRAPH_OPTIONS]
        for option in graph_options.GRAPH_OPTIONS:
            default = option.config_default()
            assert graph_options.parse_option(option.name, context[option.name]) == default \
                or (default == "" and context[option.name] == "")
        assert declared["forecaster"].choices == list(FORECASTERS + SET_MEMBERS)
        assert declared["role"].choices == list(ROLES)
        assert declared["exit_at_end"].choices == ["true", "false"]
        assert (context["m"], context["fps"], context["input"]) == ("5", "25.0", "0")
        required = "REQUIRED" in declared["source_image"].description
        assert required == (graph_name == "transfer")


@pytest.mark.parametrize(("arguments", "complaint"), [
    ({}, "needs a source image"),
    ({"source_image": "absent.png", "forecaster": "hold-last"}, "source image not found"),
    ({"source_image": "f.png", "m": "x"}, "graph option m: 'x' is not an integer"),
    ({"source_image": "f.png", "namespace": "9lives"}, "not a ROS namespace"),
])
def test_launch_pre_flight_stops_before_any_node_with_one_line(arguments, complaint, monkeypatch,
                                                                tmp_path):
    from kp_motion.ros.launch_description import GraphLaunchError

    monkeypatch.chdir(tmp_path)
    entities, context = _launch("transfer", monkeypatch, **arguments)
    checks = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    nodes = [i for i, e in enumerate(entities) if type(e).__name__ == "Node"]
    assert len(checks) == 1 and entities.index(checks[0]) < min(nodes), "checks come first"
    with pytest.raises(GraphLaunchError, match=complaint) as caught:
        checks[0].function(context)
    assert "\n" not in str(caught.value)


def test_launch_lifecycle_ends_a_finite_run_and_fails_on_a_node_error(monkeypatch):
    from kp_motion.ros.graph import SETTLE_S
    from kp_motion.ros.launch_description import GraphLaunchError

    entities, context = _launch("transfer", monkeypatch, source_image="f.png")
    handlers = {entities[i - 1].name: e.event_handler for i, e in enumerate(entities)
                if type(e).__name__ == "RegisterEventHandler"}
    assert set(handlers) == {"camera", "keypoint_detector", "sender", "forecaster", "renderer",
                             "stats"}, "every node is watched"
    for name, handler in handlers.items():
        assert handler.target_action is next(e for e in entities
                                             if type(e).__name__ == "Node" and e.name == name)

    def exited(name, returncode, shutting_down=False):
        context.is_shutdown = shutting_down
        return handlers[name].on_exit(types.SimpleNamespace(returncode=returncode), context)

    (timer,) = exited("camera", 0)  # end of clip: stop once the last frames got through
    assert timer.period == SETTLE_S
    assert type(timer.actions[0].event).__name__ == "Shutdown"
    assert len(exited("sender", 0)) == 1
    assert exited("renderer", 0) == [] and exited("stats", -2, shutting_down=True) == []
    with pytest.raises(GraphLaunchError, match="node keypoint_detector exited with status 2"):
        exited("keypoint_detector", 2)
    with pytest.raises(GraphLaunchError, match="node camera exited with status 1"):
        exited("camera", 1)


def test_two_namespaced_launches_keep_their_topics_apart(monkeypatch):
    resolved_topics = []
    for robot in ("robot1", "robot2"):
        entities, context = _launch("transfer", monkeypatch, source_image="f.png",
                                    namespace=robot)
        topics = set()
        for node in _started_nodes(entities, context):
            assert node["namespace"] == robot
            assert all(not target.startswith("/") for _, target in node["remappings"])
            topics |= {f"/{robot}/{target}" for _, target in node["remappings"]}
        resolved_topics.append(topics)
    assert resolved_topics[0] and not resolved_topics[0] & resolved_topics[1]


def test_launch_files_with_the_real_launch_ros():
    """Runs only where the real launch and launch_ros are installed (not on PyPI)."""
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on PyPI)")
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    import launch

    source = PythonLaunchDescriptionSource(str(REPO_ROOT / "launch" / "transfer.launch.py"))
    description = source.get_launch_description(launch.LaunchContext())
    printed = launch.LaunchIntrospector().format_launch_description(description)
    for spec in build_graph("transfer", GraphOptions(source_image="f.png")):
        assert f"exec='{spec.executable}'" in printed, "every node visible to ros2 launch -p"
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert arguments["role"].choices == ["sender", "receiver", "both"]


def test_graph_runs_default_to_a_private_domain_and_localhost_discovery():
    from kp_motion.ros import discovery

    assert discovery.private_defaults({}) == {
        "ROS_DOMAIN_ID": str(discovery.private_domain_id()),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    assert 1 <= discovery.private_domain_id(0) <= 101
    assert 1 <= discovery.private_domain_id(123456) <= 101
    assert discovery.private_domain_id(0) != discovery.private_domain_id(1000)
    # whatever the user set stays, including the older ROS_LOCALHOST_ONLY
    chosen = {"ROS_DOMAIN_ID": "42", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    assert discovery.private_defaults(chosen) == {}
    assert discovery.private_defaults({"ROS_LOCALHOST_ONLY": "1"}) == {
        "ROS_DOMAIN_ID": str(discovery.private_domain_id())}
    assert "domain 42, discovery SUBNET" in discovery.describe(chosen)
