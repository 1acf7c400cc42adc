"""One options table (kp_motion.graph_config.options) drives argparse, the launch arguments, the
graph's node parameters and their help text; config/nodes.yaml holds the defaults of the
parameters the nodes declare (kp_motion.graph_config.parameters). ROS-free: the tables are pure
data."""

from __future__ import annotations

import argparse

import pytest

from kp_motion.graph_config import options as table
from kp_motion.graph_config.parameters import (
    NODE_PARAMETERS,
    WILDCARD,
    checked_default,
    load_nodes_config,
    node_parameter_defaults,
)
from kp_motion.names import FORECASTERS, MODES, ROLES, SET_MEMBERS
from kp_motion.ros.graph import build_graph


def _parser() -> argparse.ArgumentParser:
    from kp_motion.cli import graph as graph_cli

    parser = argparse.ArgumentParser()
    graph_cli.add_arguments(parser)
    return parser


def test_every_declared_parameter_has_a_yaml_default_of_its_type_and_no_key_is_stray():
    sections = load_nodes_config()
    used_shared = set()
    for node, params in NODE_PARAMETERS.items():
        defaults = node_parameter_defaults(node)  # raises on a stray key or a wrong type
        for param in params:
            if param.minimum is not None:
                assert param.minimum <= defaults[param.name] <= param.maximum, param.name
            if param.choices:
                assert defaults[param.name] in param.choices, param.name
        used_shared |= {param.name for param in params} & set(sections[WILDCARD])
    assert used_shared == set(sections[WILDCARD]), "a /** setting no node declares"
    assert set(sections) == {WILDCARD} | set(NODE_PARAMETERS)


def test_a_yaml_that_drifts_from_the_table_is_refused(tmp_path):
    broken = tmp_path / "nodes.yaml"
    broken.write_text("/**:\n  ros__parameters:\n    m: 5\nstats:\n  ros__parameters:\n"
                      "    report_period: 2.0\n    colour: red\n")
    with pytest.raises(ValueError, match="stats: unknown parameters colour"):
        node_parameter_defaults("stats", broken)
    broken.write_text("stats:\n  ros__parameters:\n    report_period: 2.0\n")
    with pytest.raises(ValueError, match="lacks a default for stats.summary_path"):
        node_parameter_defaults("stats", broken)
    m = next(param for param in NODE_PARAMETERS["stats"] if param.name == "m")
    with pytest.raises(ValueError, match="expected an integer"):
        checked_default(m, "five", "stats")
    assert checked_default(next(p for p in NODE_PARAMETERS["stats"] if p.name == "fps"), 25,
                           "stats") == 25.0  # an integer is a valid float


def test_argparse_flags_come_from_the_table():
    parser = _parser()
    actions = {action.dest: action for action in parser._actions}
    for option in table.GRAPH_OPTIONS:
        if not option.cli:
            assert option.name not in actions, option.name
            continue
        action = actions[option.name]
        assert action.option_strings == [option.flag]
        assert action.help.startswith(option.help), option.name
        assert f"(default {table.as_text(option.config_default())}" in action.help, option.name
        assert action.default == option.default
        if option.type is not str:
            assert action.type is option.type, option.name
        assert tuple(action.choices or ()) == option.allowed, option.name
    assert actions["graph"].choices == MODES
    assert actions["forecaster"].choices == FORECASTERS + SET_MEMBERS
    assert actions["role"].choices == ROLES
    args = parser.parse_args(["transfer", "--m", "3", "--fps", "12.5", "--source-image", "f"])
    options = table.options_from_namespace(args)
    assert (options.m, options.fps, options.source_image, options.role) == (3, 12.5, "f", "both")


def test_launch_arguments_come_from_the_table():
    arguments = {argument["name"]: argument for argument in table.launch_arguments()}
    assert list(arguments) == [option.name for option in table.GRAPH_OPTIONS]
    for option in table.GRAPH_OPTIONS:
        argument = arguments[option.name]
        assert argument["description"] == table.help_text(option)
        assert argument.get("choices", []) == (
            list(option.allowed) or (["true", "false"] if option.type is bool else []))
        default = option.config_default()
        if default == "":
            assert argument["default_value"] == ""
        else:  # the real default, which the option's parser reads back
            assert table.parse_option(option.name, argument["default_value"]) == default
        if option.param is not None:
            assert f"(default {table.as_text(default)} in config/nodes.yaml" \
                in argument["description"]


def test_an_option_sets_its_parameter_on_every_node_that_declares_it():
    # Every option value differs from its YAML default, so each must show up in the nodes.
    chosen = dict(input="clip", source_image="face.png", forecaster="hold-last",
                  forecaster_path="f", m=2, n=1, fps=10.0, device="cpu", checkpoint="c",
                  width=64, height=48, fit="crop", max_frames=5, drop_probability=0.1,
                  drop_seed=3, summary_path="s.json", exit_at_end=True, publish_images=True,
                  policy="predictive", wire="compact", threshold=0.01, max_gap=25,
                  wait_budget=0.5, render_variant="bf16")
    assert set(chosen) == {o.name for o in table.GRAPH_OPTIONS if o.param is not None}
    specs = {spec.name: spec for role in ("both", "sender")
             for spec in build_graph("transfer", table.GraphOptions(**chosen, role=role))}
    for option in table.GRAPH_OPTIONS:
        if option.param is None:
            continue
        targets = option.targets()
        assert targets, f"option {option.name} sets no node parameter"
        for node, params in NODE_PARAMETERS.items():
            if option.param in params:
                assert (node, option.param.name) in targets
                assert specs[node].parameters[option.param.name] == chosen[option.name]
    m_nodes = {node for node, _ in table.OPTIONS_BY_NAME["m"].targets()}
    assert m_nodes == {"keypoint_detector", "sender", "forecaster", "stats"}
    # The sender's side and the receiver's agree on the policy and the wire by construction.
    for name in ("policy", "wire"):
        nodes = {node for node, _ in table.OPTIONS_BY_NAME[name].targets()}
        assert nodes == {"keypoint_detector", "sender", "forecaster", "stats"}


def test_every_node_parameter_the_graph_sets_is_declared():
    declared = {node: {p.name for p in params} for node, params in NODE_PARAMETERS.items()}
    for role in ("both", "sender", "receiver"):
        options = table.GraphOptions(input="clip", source_image="face.png", namespace="r1",
                                     exit_at_end=True, summary_path="s.json", role=role)
        for graph in MODES:
            graph_options = options if graph == "transfer" else table.GraphOptions(
                input="clip", role=role)
            for spec in build_graph(graph, graph_options):
                assert set(spec.parameters) <= declared[spec.name], (graph, spec.name)


def test_launch_text_is_typed_by_the_table_with_one_line_errors():
    options = table.options_from_strings({"m": "4", "fps": "30", "exit_at_end": "true",
                                          "input": "", "namespace": ""})
    assert (options.m, options.fps, options.exit_at_end, options.input) == (4, 30.0, True, None)
    with pytest.raises(ValueError, match="graph option m: 'four' is not an integer"):
        table.options_from_strings({"m": "four"})
    with pytest.raises(ValueError, match="unknown graph option 'colour'"):
        table.options_from_strings({"colour": ""})
