"""THE description of the kp_motion node graphs: nodes, executables, parameters, remappings, roles.

Both the launch files (launch/*.launch.py, for a full ROS 2 install) and the project runner
(`kp-motion graph`, kp_motion/ros/runner.py) build their processes from `build_graph`, so the
two cannot disagree. Nothing here imports ROS.

    sender:    camera -> keypoint_detector (transmit gate) --network-->
    receiver:  forecaster -> renderer -> rendered / overlay images;  stats watches the stream

Graphs:
    reconstruction  the camera also publishes its first frame as the source image (latched);
                    the renderer drives it with the absolute keypoints
    transfer        the renderer animates a receiver-side source image file with the motion
                    relative to the first driving frame

Parameters: a node gets the values the graph fixes (renderer mode, publish_source,
wait_for_subscribers, reliable_images for a clip) and the options the caller set; everything
else comes from config/nodes.yaml, which the runner and the launch files also pass as the
parameter file. The node-scoped values override the file (the runner passes them as
`-p node:name:=value`, launch_ros as a parameter dict of a fully named node).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from kp_motion.paths import config_path
from kp_motion.topics import TOPICS

NODES_CONFIG = "nodes.yaml"
WILDCARD = "/**"
GRAPHS = ("reconstruction", "transfer")
# A node logs this line once it is subscribed to its input; the runner waits for it.
READY_MARKER = "kp_motion node ready"
ROLES = ("sender", "receiver", "both")
PACKAGE = "kp_motion"



def load_nodes_config(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """config/nodes.yaml as {node or '/**': {parameter: value}}."""
    path = Path(path) if path else config_path(NODES_CONFIG)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of node names")
    sections = {}
    for node_name, section in data.items():
        if not isinstance(section, dict) or set(section) != {"ros__parameters"}:
            raise ValueError(f"{path}: {node_name} must hold exactly one 'ros__parameters' mapping")
        sections[str(node_name)] = dict(section["ros__parameters"] or {})
    return sections


def node_defaults(config_key: str, path: str | Path | None = None) -> dict[str, Any]:
    """Defaults of one node: the shared `/**` values, overridden by the node's own section."""
    sections = load_nodes_config(path)
    if config_key not in sections:
        raise ValueError(f"config/{NODES_CONFIG} has no section for node {config_key!r}")
    return {**sections.get(WILDCARD, {}), **sections[config_key]}


@dataclass
class GraphOptions:
    """What a user can choose when starting a graph; None = the config/nodes.yaml default."""

    input: str | None = None  # camera: device index, video file or frame folder
    source_image: str | None = None  # transfer: the receiver's source image file
    forecaster: str | None = None  # vrnn, rnn, vae, hold-last, constant-velocity
    forecaster_path: str | None = None
    m: int | None = None
    n: int | None = None
    fps: float | None = None
    device: str | None = None
    checkpoint: str | None = None  # FOMM checkpoint folder (detector + generator)
    width: int | None = None
    height: int | None = None
    max_frames: int | None = None
    drop_probability: float | None = None  # simulated network loss (tests, experiments)
    drop_seed: int | None = None
    summary_path: str | None = None  # stats JSON summary at exit
    role: str = "both"
    # The camera exits at the end of a clip: the runner stops the graph then. Launch files
    # leave the camera alive (the usual ROS behaviour) unless told otherwise.
    exit_at_end: bool | None = None
    # A recorder outside the graph (the runner's sink) also subscribes to the camera images,
    # the full-rate keypoints and the rendered and overlay images; the producers then wait for
    # it too before they start.
    recorder: bool = False


# Option -> (node, parameter) pairs it sets. One option may feed several nodes (one value).
OPTION_PARAMETERS: dict[str, tuple[tuple[str, str], ...]] = {
    "input": (("camera", "input"),),
    "source_image": (("renderer", "source_image"),),
    "forecaster": (("forecaster", "forecaster"),),
    "forecaster_path": (("forecaster", "forecaster_path"),),
    "m": (("keypoint_detector", "m"), ("forecaster", "m"), ("stats", "m")),
    "n": (("keypoint_detector", "n"), ("forecaster", "n"), ("stats", "n")),
    "fps": (("camera", "fps"), ("keypoint_detector", "fps"), ("forecaster", "fps"),
            ("stats", "fps")),
    "device": (("keypoint_detector", "device"), ("forecaster", "device"), ("renderer", "device")),
    "checkpoint": (("keypoint_detector", "checkpoint"), ("renderer", "checkpoint")),
    "width": (("camera", "width"),),
    "height": (("camera", "height"),),
    "max_frames": (("camera", "max_frames"),),
    "drop_probability": (("keypoint_detector", "drop_probability"),),
    "drop_seed": (("keypoint_detector", "drop_seed"),),
    "summary_path": (("stats", "summary_path"),),
    "exit_at_end": (("camera", "exit_at_end"),),
}


@dataclass(frozen=True)
class NodeSpec:
    """One process of a graph."""

    name: str  # node name, also its section in config/nodes.yaml
    executable: str  # scripts/nodes/<executable>, installed to lib/kp_motion
    role: str  # sender or receiver
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()


def _remap(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, TOPICS[name]) for name in names)


def _is_recorded_input(source: str | None) -> bool:
    """A video file or folder (not a device index): every frame of it should be processed."""
    return bool(source) and not str(source).isdigit()


def _base_nodes(graph: str, options: GraphOptions) -> list[NodeSpec]:
    """The nodes of a graph, upstream first, with the parameters the graph itself fixes.

    Each producer waits until all of its consumers in the graph are matched (whichever
    machine they run on) before its first message: camera -> detector (+ recorder), detector
    -> forecaster + stats, forecaster -> renderer + stats (+ recorder), renderer -> stats
    (+ recorder, on both rendered and overlay).
    """
    reconstruction = graph == "reconstruction"
    recorder = int(options.recorder)
    detector = {"wait_for_subscribers": 2}
    if _is_recorded_input(options.input):
        detector["reliable_images"] = True
    return [
        NodeSpec(
            "camera", "camera", "sender",
            {"publish_source": reconstruction, "wait_for_subscribers": 1 + recorder},
            _remap("image", "source_image"),
        ),
        NodeSpec(
            "keypoint_detector", "keypoint_detector", "sender",
            detector,
            (("image", TOPICS["image"]), ("keypoints", TOPICS["network"])),
        ),
        NodeSpec(
            "forecaster", "forecaster", "receiver",
            {"wait_for_subscribers": 2 + recorder},
            (("keypoints", TOPICS["network"]), ("keypoints_full", TOPICS["keypoints_full"])),
        ),
        NodeSpec(
            "renderer", "renderer", "receiver",
            {"mode": graph, "wait_for_subscribers": 1 + recorder,
             "wait_for_overlay_subscribers": recorder},
            (("keypoints", TOPICS["keypoints_full"]), *_remap("source_image", "rendered",
                                                              "overlay")),
        ),
        NodeSpec(
            "stats", "stats", "receiver",
            {},
            (("network", TOPICS["network"]), *_remap("keypoints_full", "rendered")),
        ),
    ]


def check_options(graph: str, options: GraphOptions) -> None:
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r} (expected one of {', '.join(GRAPHS)})")
    if options.role not in ROLES:
        raise ValueError(f"unknown role {options.role!r} (expected one of {', '.join(ROLES)})")
    runs_receiver = options.role in ("receiver", "both")
    if graph == "transfer" and runs_receiver and not options.source_image:
        raise ValueError("the transfer graph needs a source image (source_image)")
    if graph == "reconstruction" and options.source_image:
        raise ValueError("the reconstruction graph takes its source from the camera's first "
                         "frame; source_image is for the transfer graph")


def build_graph(graph: str, options: GraphOptions | None = None) -> list[NodeSpec]:
    """The nodes to start for `graph` and `options.role`, upstream first."""
    options = options or GraphOptions()
    check_options(graph, options)
    chosen = {
        f.name: getattr(options, f.name)
        for f in fields(options)
        if f.name in OPTION_PARAMETERS and getattr(options, f.name) is not None
    }
    nodes = []
    for spec in _base_nodes(graph, options):
        if options.role != "both" and spec.role != options.role:
            continue
        parameters = dict(spec.parameters)
        for option, value in chosen.items():
            for node_name, parameter in OPTION_PARAMETERS[option]:
                if node_name == spec.name:
                    parameters[parameter] = value
        nodes.append(NodeSpec(spec.name, spec.executable, spec.role, parameters, spec.remappings))
    return nodes


def option_types() -> dict[str, type]:
    """GraphOptions field -> the Python type of its value (for parsing launch arguments)."""
    kinds = {}
    for f in fields(GraphOptions):
        text = str(f.type)
        for kind in (bool, int, float, str):
            if text.startswith(kind.__name__):
                kinds[f.name] = kind
                break
    return kinds


def options_from_strings(values: dict[str, str]) -> GraphOptions:
    """GraphOptions from text values (launch arguments); empty text = not set."""
    kinds = option_types()
    parsed: dict[str, Any] = {}
    for name, text in values.items():
        if name not in kinds:
            raise ValueError(f"unknown graph option {name!r}")
        text = str(text).strip()
        if text == "":
            continue
        kind = kinds[name]
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                parsed[name] = text.lower() == "true"
            else:
                parsed[name] = kind(text)
        except ValueError:
            raise ValueError(f"graph option {name}: {text!r} is not a {kind.__name__}") from None
    return GraphOptions(**parsed)


def missing_inputs(graph: str, options: GraphOptions) -> list[str]:
    """Files the graph's nodes would fail to find at start-up, as readable lines.

    Checked before any process starts, so that a wrong path is one line, not a node crash.
    Defaults that name embedded models (config/nodes.yaml) are resolved as the nodes do.
    """
    from kp_motion.forecasting.checkpoint import embedded_forecaster_folder
    from kp_motion.models.checkpoint import embedded_model_folder

    problems = []
    specs = {spec.name: spec.parameters for spec in build_graph(graph, options)}
    values = {name: {**node_defaults(name), **params} for name, params in specs.items()}
    camera_input = values.get("camera", {}).get("input", "")
    is_path = bool(camera_input) and not str(camera_input).isdigit()
    if "camera" in values and is_path and not Path(camera_input).expanduser().exists():
        problems.append(f"input not found: {camera_input}")
    source = values.get("renderer", {}).get("source_image", "")
    if source and not Path(source).expanduser().is_file():
        problems.append(f"source image not found: {source}")
    for node in ("keypoint_detector", "renderer"):
        if node not in values:
            continue
        checkpoint = values[node]["checkpoint"]
        folder = Path(checkpoint).expanduser() if checkpoint else embedded_model_folder()
        if not folder.exists():
            problems.append(f"checkpoint not found: {folder}" if checkpoint else
                            f"the embedded default model {folder} is not there "
                            "(give --checkpoint FOLDER)")
            break
    forecaster = values.get("forecaster")
    if forecaster and forecaster["forecaster"] not in ("hold-last", "constant-velocity"):
        path = forecaster["forecaster_path"]
        folder = Path(path).expanduser() if path else (
            embedded_forecaster_folder(forecaster["forecaster"]))
        if not folder.is_dir():
            problems.append(f"forecaster not found: {folder}" if path else
                            f"the embedded default {forecaster['forecaster']} forecaster "
                            f"{folder} is not there (give --forecaster-path FOLDER or "
                            "--forecaster hold-last)")
    return problems

