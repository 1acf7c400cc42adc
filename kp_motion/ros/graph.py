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
wait_for_subscribers, reliable_images for a clip) and the options the caller set (the table
kp_motion.ros.options: an option sets its parameter on every node that declares it); everything
else comes from config/nodes.yaml, which the runner and the launch files also pass as the
parameter file. The node-scoped values override the file (the runner passes them as
`-p node:name:=value`, launch_ros as a parameter dict of a fully named node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kp_motion.names import (
    BOTH,
    MODES,
    RECEIVER,
    RECONSTRUCTION,
    ROLES,
    SENDER,
    TRANSFER,
    spelled,
)
from kp_motion.ros.options import GRAPH_OPTIONS, GraphOptions
from kp_motion.ros.parameters import node_defaults
from kp_motion.topics import TOPICS

GRAPHS = MODES  # one graph per rendering mode
# A node logs this line once it is subscribed to its input; the runner waits for it.
READY_MARKER = "kp_motion node ready"
PACKAGE = "kp_motion"


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
    reconstruction = graph == RECONSTRUCTION
    recorder = int(options.recorder)
    detector = {"wait_for_subscribers": 2}
    if _is_recorded_input(options.input):
        detector["reliable_images"] = True
    return [
        NodeSpec(
            "camera", "camera", SENDER,
            {"publish_source": reconstruction, "wait_for_subscribers": 1 + recorder},
            _remap("image", "source_image"),
        ),
        NodeSpec(
            "keypoint_detector", "keypoint_detector", SENDER,
            detector,
            (("image", TOPICS["image"]), ("keypoints", TOPICS["network"])),
        ),
        NodeSpec(
            "forecaster", "forecaster", RECEIVER,
            {"wait_for_subscribers": 2 + recorder},
            (("keypoints", TOPICS["network"]), ("keypoints_full", TOPICS["keypoints_full"])),
        ),
        NodeSpec(
            "renderer", "renderer", RECEIVER,
            {"mode": graph, "wait_for_subscribers": 1 + recorder,
             "wait_for_overlay_subscribers": recorder},
            (("keypoints", TOPICS["keypoints_full"]), *_remap("source_image", "rendered",
                                                              "overlay")),
        ),
        NodeSpec(
            "stats", "stats", RECEIVER,
            {},
            (("network", TOPICS["network"]), *_remap("keypoints_full", "rendered")),
        ),
    ]


def check_options(graph: str, options: GraphOptions) -> None:
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r} (expected {spelled(GRAPHS)})")
    if options.role not in ROLES:
        raise ValueError(f"unknown role {options.role!r} (expected {spelled(ROLES)})")
    runs_receiver = options.role in (RECEIVER, BOTH)
    if graph == TRANSFER and runs_receiver and not options.source_image:
        raise ValueError("the transfer graph needs a source image (source_image)")
    if graph == RECONSTRUCTION and options.source_image:
        raise ValueError("the reconstruction graph takes its source from the camera's first "
                         "frame; source_image is for the transfer graph")


def build_graph(graph: str, options: GraphOptions | None = None) -> list[NodeSpec]:
    """The nodes to start for `graph` and `options.role`, upstream first."""
    options = options or GraphOptions()
    check_options(graph, options)
    chosen = [(option, getattr(options, option.name)) for option in GRAPH_OPTIONS
              if getattr(options, option.name) is not None]
    nodes = []
    for spec in _base_nodes(graph, options):
        if options.role != BOTH and spec.role != options.role:
            continue
        parameters = dict(spec.parameters)
        for option, value in chosen:
            for node_name, parameter in option.targets():
                if node_name == spec.name:
                    parameters[parameter] = value
        nodes.append(NodeSpec(spec.name, spec.executable, spec.role, parameters, spec.remappings))
    return nodes


def missing_inputs(graph: str, options: GraphOptions) -> list[str]:
    """Files the graph's nodes would fail to find at start-up, as readable lines.

    Checked before any process starts, so that a wrong path is one line, not a node crash.
    Checkpoints and forecasters are resolved by the same functions the nodes use.
    """
    from kp_motion.forecasting.named import forecaster_folder
    from kp_motion.models.checkpoint import resolve_checkpoint

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
    checkpoints = {values[node]["checkpoint"] for node in ("keypoint_detector", "renderer")
                   if node in values}
    for checkpoint in sorted(checkpoints):
        try:
            resolve_checkpoint(checkpoint)
        except FileNotFoundError as error:
            problems.append(str(error))
    forecaster = values.get("forecaster")
    if forecaster:
        try:
            forecaster_folder(forecaster["forecaster"], forecaster["forecaster_path"])
        except (FileNotFoundError, ValueError) as error:
            problems.append(str(error))
    return problems
