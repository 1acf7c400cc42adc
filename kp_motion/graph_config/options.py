"""THE table of graph options: what a user can choose when starting a graph.

`kp-motion graph` (argparse), the launch files' arguments and GraphOptions are generated from
GRAPH_OPTIONS. An option that sets a node parameter points at its `Param`
(kp_motion.graph_config.parameters): its type, help text and choices are the parameter's, its
default is config/nodes.yaml's, and it sets that parameter on every node of the graph that
declares it (m on the detector, the forecaster and stats; one value). The other options (role,
namespace) shape the graph itself and carry their own type, default and help. ROS-free, pure
data.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from kp_motion.graph_config import parameters as p
from kp_motion.names import BOTH, ROLES


@dataclass(frozen=True)
class GraphOption:
    name: str  # GraphOptions field and launch argument; the CLI flag is --name-with-dashes
    param: p.Param | None = None  # the node parameter it sets, on every node declaring it
    # Options of the graph itself (no node parameter):
    kind: type | None = None
    default: Any = None
    description: str = ""
    choices: tuple[str, ...] = ()
    cli: bool = True  # also a flag of `kp-motion graph` (some only the runner itself sets)
    cli_note: str = ""  # what the command line adds to the default (e.g. a file's own fps)

    @property
    def type(self) -> type:
        return self.param.kind if self.param else self.kind

    @property
    def help(self) -> str:
        return self.param.description if self.param else self.description

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.param.choices if self.param else self.choices

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def targets(self) -> tuple[tuple[str, str], ...]:
        """(node, parameter) pairs this option sets: every node that declares its Param."""
        if self.param is None:
            return ()
        return tuple((node, self.param.name) for node, params in p.NODE_PARAMETERS.items()
                     if self.param in params)

    def config_default(self) -> Any:
        """The value used when the option is not given (config/nodes.yaml for a parameter)."""
        if self.param is None:
            return self.default
        node, name = self.targets()[0]
        return _shipped_defaults()[node][name]


@functools.cache
def _shipped_defaults() -> dict[str, dict[str, Any]]:
    """Every node's parameter defaults from the shipped config/nodes.yaml, read once (help
    texts of every option and of every `kp-motion` command are built from them)."""
    return {node: p.node_parameter_defaults(node) for node in p.NODE_PARAMETERS}


def as_text(value: Any) -> str:
    """A value as a user types it on a command line or in a launch argument."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "empty" if value == "" else str(value)


GRAPH_OPTIONS: tuple[GraphOption, ...] = (
    GraphOption("input", p.INPUT),
    GraphOption("source_image", p.SOURCE_IMAGE),
    GraphOption("forecaster", p.FORECASTER),
    GraphOption("forecaster_path", p.FORECASTER_PATH),
    GraphOption("m", p.M),
    GraphOption("n", p.N),
    GraphOption("fps", p.FPS, cli_note="a video file plays at its own rate unless given"),
    GraphOption("device", p.DEVICE),
    GraphOption("checkpoint", p.CHECKPOINT),
    GraphOption("width", p.WIDTH),
    GraphOption("height", p.HEIGHT),
    GraphOption("fit", p.FIT),
    GraphOption("render_variant", p.RENDER_VARIANT),
    GraphOption("max_frames", p.MAX_FRAMES),
    GraphOption("policy", p.POLICY),
    GraphOption("wire", p.WIRE),
    GraphOption("threshold", p.THRESHOLD),
    GraphOption("max_gap", p.MAX_GAP),
    GraphOption("wait_budget", p.WAIT_BUDGET),
    GraphOption("drop_probability", p.DROP_PROBABILITY),
    GraphOption("drop_seed", p.DROP_SEED),
    GraphOption("summary_path", p.SUMMARY_PATH, cli=False),
    GraphOption("role", kind=str, default=BOTH, choices=ROLES,
                description="which nodes to run: the sender's, the receiver's or both"),
    # The camera exits at the end of a clip: the runner stops the graph then. Launch files
    # leave the camera alive (the usual ROS behaviour) unless told otherwise.
    GraphOption("exit_at_end", p.EXIT_AT_END, cli=False),
    GraphOption("publish_images", p.PUBLISH_IMAGES, cli=False),
    # Every node and (relative) topic of the graph under this namespace: two graphs in two
    # namespaces run side by side without seeing each other.
    GraphOption("namespace", kind=str, default="",
                description="ROS namespace of the graph's nodes and topics; empty = none"),
)
OPTIONS_BY_NAME = {option.name: option for option in GRAPH_OPTIONS}

# What a user chose when starting a graph; None = the config/nodes.yaml default.
GraphOptions = make_dataclass(
    "GraphOptions",
    [(o.name, o.type | None if o.param else o.type, field(default=o.default))
     for o in GRAPH_OPTIONS],
    namespace={"__doc__": "Graph options (GRAPH_OPTIONS); None = the config/nodes.yaml "
                          "default.", "__module__": __name__},
)


def help_text(option: GraphOption, note: str = "") -> str:
    """The option's help with its default, as argparse and the launch arguments show it."""
    where = " in config/nodes.yaml" if option.param else ""
    extra = f"; {note}" if note else ""
    return f"{option.help} (default {as_text(option.config_default())}{where}{extra})"


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option of the command line, typed and with the table's help text."""
    for option in GRAPH_OPTIONS:
        if not option.cli:
            continue
        kwargs: dict[str, Any] = {"help": help_text(option, option.cli_note),
                                  "default": option.default}
        if option.allowed:
            kwargs["choices"] = option.allowed
        if option.type is not str:
            kwargs["type"] = option.type
        parser.add_argument(option.flag, **kwargs)


def options_from_namespace(args: argparse.Namespace) -> Any:
    """GraphOptions from parsed command-line flags (the options the CLI does not offer keep
    their defaults)."""
    return GraphOptions(**{o.name: getattr(args, o.name) for o in GRAPH_OPTIONS if o.cli})


def launch_arguments() -> list[dict[str, Any]]:
    """DeclareLaunchArgument keyword arguments of every option: its real default as text (the
    config/nodes.yaml value for a node parameter; '' stays ''), its help and its choices."""
    arguments = []
    for option in GRAPH_OPTIONS:
        default = option.config_default()
        argument: dict[str, Any] = {"name": option.name,
                                    "default_value": "" if default == "" else as_text(default),
                                    "description": help_text(option)}
        if option.allowed:
            argument["choices"] = list(option.allowed)
        elif option.type is bool:
            argument["choices"] = [as_text(True), as_text(False)]
        arguments.append(argument)
    return arguments


def parse_option(name: str, text: str) -> Any:
    """One option's value from text (a launch argument), typed; ValueError naming it."""
    option = OPTIONS_BY_NAME.get(name)
    if option is None:
        raise ValueError(f"unknown graph option {name!r}")
    kind = option.type
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        return kind(text)
    except ValueError:
        raise ValueError(f"graph option {name}: {text!r} is not {p.KIND_NAMES[kind]}") from None


def options_from_strings(values: dict[str, str]) -> Any:
    """GraphOptions from text values (launch arguments); empty text = not set."""
    parsed = {}
    for name, text in values.items():
        text = str(text).strip()
        if text == "" and name in OPTIONS_BY_NAME:
            continue
        parsed[name] = parse_option(name, text)
    return GraphOptions(**parsed)
