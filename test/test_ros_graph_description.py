"""The graph description is the one source: the runner's command lines and the launch files'
Node actions are both derived from kp_motion.ros.graph. No DDS traffic here."""

from __future__ import annotations

import importlib.util
import shlex
import sys
import types
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from kp_motion.ros import commands as node_commands
from kp_motion.ros import options as graph_options
from kp_motion.ros import runner
from kp_motion.ros.graph import TOPICS, GraphOptions, build_graph

TRANSFER_OPTIONS = GraphOptions(input="clip.mp4", source_image="face.png", forecaster="hold-last",
                                m=2, n=3, fps=12.5, device="cpu", checkpoint="ckpt")


def test_graphs_connect_their_nodes_through_the_shared_topics():
    nodes = {spec.name: spec for spec in build_graph("transfer", TRANSFER_OPTIONS)}
    assert list(nodes) == ["camera", "keypoint_detector", "forecaster", "renderer", "stats"]
    remap = {name: dict(spec.remappings) for name, spec in nodes.items()}
    assert remap["camera"]["image"] == remap["keypoint_detector"]["image"] == TOPICS["image"]
    assert remap["keypoint_detector"]["keypoints"] == remap["forecaster"]["keypoints"]
    assert remap["forecaster"]["keypoints"] == remap["stats"]["network"] == TOPICS["network"]
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

    # Producers start only once their consumers match: the renderer waits for stats on rendered,
    # and with a recorder for it too, on both rendered and overlay.
    waits = {True: (2, 1), False: (1, 0)}
    for recorder, expected in waits.items():
        options = GraphOptions(input="0", recorder=recorder)
        renderer = {s.name: s for s in build_graph("reconstruction", options)}["renderer"]
        assert (renderer.parameters["wait_for_subscribers"],
                renderer.parameters["wait_for_overlay_subscribers"]) == expected


def test_roles_split_the_graph_between_sender_and_receiver():
    sender = build_graph("transfer", GraphOptions(role="sender"))
    receiver = build_graph("transfer", GraphOptions(source_image="f.png", role="receiver"))
    assert [s.name for s in sender] == ["camera", "keypoint_detector"]
    assert [s.name for s in receiver] == ["forecaster", "renderer", "stats"]


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
def test_runner_command_lines_carry_exactly_the_graph_description(graph_name):
    options = TRANSFER_OPTIONS if graph_name == "transfer" else GraphOptions(input="clip.mp4")
    graph_runner = runner.GraphRunner(graph_name, options, "unused-output")
    expected = build_graph(graph_name, graph_runner.options)
    commands = graph_runner.command_lines()
    assert [spec for spec, _ in commands] == expected
    for spec, argv in commands:
        assert argv[0] == sys.executable
        assert Path(argv[1]).name == spec.executable and Path(argv[1]).is_file()
        parsed = node_commands.parse_ros_arguments(argv)
        assert parsed["name"] == spec.name
        assert Path(parsed["params_file"]).name == "nodes.yaml"
        assert parsed["parameters"] == spec.parameters  # values keep their YAML types
        assert parsed["remappings"] == list(spec.remappings)
        # node-scoped values: a node's own section of nodes.yaml must not win over them
        assert all(word.startswith(f"{spec.name}:") for word in argv[argv.index("--ros-args"):]
                   if ":=" in word and not word.startswith(("__node", *dict(spec.remappings))))


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


def _fake_launch_modules(monkeypatch) -> list[dict]:
    """Minimal stand-ins of launch / launch_ros that record the Node actions' arguments."""
    created: list[dict] = []

    class LaunchDescription:
        def __init__(self, entities):
            self.entities = entities

    class DeclareLaunchArgument:
        def __init__(self, name, default_value="", description=""):
            self.name, self.default_value = name, default_value

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    def node(**kwargs):
        created.append(kwargs)
        return kwargs

    modules = {
        "launch": types.SimpleNamespace(LaunchDescription=LaunchDescription),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=DeclareLaunchArgument,
                                                OpaqueFunction=OpaqueFunction),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=node),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return created


def _load_launch_file(graph_name: str):
    path = REPO_ROOT / "launch" / f"{graph_name}.launch.py"
    spec = importlib.util.spec_from_file_location(f"launch_file_{graph_name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("graph_name", ["reconstruction", "transfer"])
def test_launch_files_build_their_nodes_from_the_graph_description(graph_name, monkeypatch):
    created = _fake_launch_modules(monkeypatch)
    description = _load_launch_file(graph_name).generate_launch_description()
    arguments = {e.name: e.default_value for e in description.entities if hasattr(e, "name")}
    assert list(arguments) == [o.name for o in graph_options.GRAPH_OPTIONS], "one per graph option"
    values = dict(arguments, input="clip.mp4", m="2", n="3", fps="12.5", forecaster="hold-last",
                  device="cpu", checkpoint="ckpt")
    if graph_name == "transfer":
        values["source_image"] = "face.png"
    opaque = [e for e in description.entities if hasattr(e, "function")]
    assert len(opaque) == 1
    opaque[0].function(values)

    options = graph_options.options_from_strings(values)
    expected = build_graph(graph_name, options)
    assert [n["name"] for n in created] == [s.name for s in expected]
    for node, spec in zip(created, expected, strict=True):
        assert (node["package"], node["executable"]) == ("kp_motion", spec.executable)
        assert Path(node["parameters"][0]).name == "nodes.yaml"
        assert node["parameters"][1] == spec.parameters
        assert node["remappings"] == list(spec.remappings)
        assert node["namespace"] == "", "name + namespace scope the parameters to the node"


def test_launch_files_with_the_real_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on PyPI)")
    from launch import LaunchContext

    description = _load_launch_file("transfer").generate_launch_description()
    context = LaunchContext()
    for entity in description.entities:
        if type(entity).__name__ == "DeclareLaunchArgument":
            entity.visit(context)
    context.launch_configurations.update(
        {"input": "clip.mp4", "source_image": "face.png", "forecaster": "hold-last"})
    opaque = [e for e in description.entities if type(e).__name__ == "OpaqueFunction"][0]
    nodes = opaque.execute(context)
    assert [n.node_executable for n in nodes] == [s.executable for s in build_graph(
        "transfer", GraphOptions(input="clip.mp4", source_image="face.png",
                                 forecaster="hold-last"))]
