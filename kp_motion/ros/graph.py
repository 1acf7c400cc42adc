"""THE description of the kp_motion node graphs: nodes, executables, parameters, remappings, roles.

Both the launch files (launch/*.launch.py, for a full ROS 2 install) and the project runner
(`kp-motion graph`, kp_motion/ros/runner.py) build their processes from this module, so the
two cannot disagree. Nothing here imports ROS.

    both:      camera -> keypoint_detector (transmit gate) --network-->
               forecaster -> renderer -> rendered / overlay images;  stats watches the stream
               (at a clip's end the camera's clip_end tells the detector to end the stream)
    sender:    sender (capture + detection in one process) --network-->
    receiver:  forecaster -> renderer -> rendered / overlay images;  stats

Keypoints-only egress: with role sender, capture and detection run in ONE process (the sender
node), so the camera's frames never become a topic: the only topic it offers is the network
keypoints, unless its publish_images parameter asks for the images too (and, in the
reconstruction graph, the one source frame that graph needs by definition).

Graphs:
    reconstruction  the camera (or sender) also publishes its first frame as the source image
                    (latched); the renderer drives it with the absolute keypoints
    transfer        the renderer animates a receiver-side source image file with the motion
                    relative to the first driving frame

Topics are relative names (kp_motion.topics.GRAPH_TOPICS) in the graph's namespace, so two
graphs in two namespaces do not see each other. Nodes do not wait for subscribers: each topic's
QoS (kp_motion.ros.qos) covers what a late reader needs.

Parameters: a node gets the values the graph fixes (renderer mode, publish_source,
reliable_images for a clip) and the options the caller set (the table
kp_motion.graph_config.options: an option sets its parameter on every node that declares it);
everything else comes from config/nodes.yaml, which the runner and the launch files also pass
as the parameter file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kp_motion.graph_config.options import GRAPH_OPTIONS, GraphOptions
from kp_motion.graph_config.parameters import node_defaults
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
from kp_motion.topics import GRAPH_TOPICS, check_namespace

GRAPHS = MODES  # one graph per rendering mode
# A node logs this line once it is subscribed to its input; the runner waits for it.
READY_MARKER = "kp_motion node ready"
# The capture node logs this line at the end of a clip (it stays alive unless exit_at_end).
END_OF_CLIP_MARKER = "end of clip after"
PACKAGE = "kp_motion"
# The node that reads the input (a clip ends it): the runner starts it last, and its exit
# ends a finite run.
CAPTURE_NODES = ("camera", "sender")
# After the capture node's end of clip: seconds for the last frames to get through the graph
# before it is stopped (the runner waits for that much quiet, a launch file that long).
SETTLE_S = 3.0


@dataclass(frozen=True)
class NodeSpec:
    """One process of a graph."""

    name: str  # node name, also its section in config/nodes.yaml
    executable: str  # scripts/nodes/<executable>, installed to lib/kp_motion
    role: str  # sender or receiver
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    namespace: str = ""  # absolute ('' = none); the topics are relative to it
    roles: tuple[str, ...] = ()  # the graph roles that run this node


def _remap(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, GRAPH_TOPICS[name]) for name in names)


def is_recorded_input(source: str | None) -> bool:
    """A video file or folder (not a device index): every frame of it should be processed."""
    return bool(source) and not str(source).isdigit()


def graph_nodes(graph: str) -> list[NodeSpec]:
    """Every node `graph` can run, upstream first, with the parameters the graph itself fixes
    and the roles that run it (a launch file declares them all, each under its role)."""
    reconstruction = graph == RECONSTRUCTION
    # The network topics of both wires (a node uses those of its wire parameter).
    network = (("keypoints", GRAPH_TOPICS["network"]),
               ("packets", GRAPH_TOPICS["network_packets"]),
               ("stream", GRAPH_TOPICS["network_stream"]))
    return [
        NodeSpec("camera", "camera", SENDER, {"publish_source": reconstruction},
                 _remap("image", "source_image", "clip_end"), roles=(BOTH,)),
        NodeSpec("keypoint_detector", "keypoint_detector", SENDER, {},
                 (*_remap("image", "clip_end"), *network), roles=(BOTH,)),
        NodeSpec("sender", "sender", SENDER, {"publish_source": reconstruction},
                 (*_remap("image", "source_image"), *network), roles=(SENDER,)),
        NodeSpec("forecaster", "forecaster", RECEIVER, {},
                 (*network, ("keypoints_full", GRAPH_TOPICS["keypoints_full"])),
                 roles=(RECEIVER, BOTH)),
        NodeSpec("renderer", "renderer", RECEIVER, {"mode": graph},
                 (("keypoints", GRAPH_TOPICS["keypoints_full"]),
                  *_remap("source_image", "rendered", "overlay")), roles=(RECEIVER, BOTH)),
        NodeSpec("stats", "stats", RECEIVER, {},
                 (("network", GRAPH_TOPICS["network"]), *network[1:],
                  *_remap("keypoints_full", "rendered")),
                 roles=(RECEIVER, BOTH)),
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
    check_namespace(options.namespace or "")


def build_graph(graph: str, options: GraphOptions | None = None) -> list[NodeSpec]:
    """The nodes to start for `graph` and `options.role`, upstream first."""
    options = options or GraphOptions()
    check_options(graph, options)
    chosen = [(option, getattr(options, option.name)) for option in GRAPH_OPTIONS
              if getattr(options, option.name) is not None]
    namespace = check_namespace(options.namespace or "")
    nodes = []
    for spec in graph_nodes(graph):
        if options.role not in spec.roles:
            continue
        parameters = dict(spec.parameters)
        if spec.name == "keypoint_detector" and is_recorded_input(options.input):
            parameters["reliable_images"] = True
        for option, value in chosen:
            for node_name, parameter in option.targets():
                if node_name == spec.name:
                    parameters[parameter] = value
        nodes.append(NodeSpec(spec.name, spec.executable, spec.role, parameters,
                              spec.remappings, namespace, spec.roles))
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
    capture = next((values[name] for name in CAPTURE_NODES if name in values), None)
    camera_input = capture["input"] if capture else ""
    if is_recorded_input(camera_input) and not Path(camera_input).expanduser().exists():
        problems.append(f"input not found: {camera_input}")
    source = values.get("renderer", {}).get("source_image", "")
    if source and not Path(source).expanduser().is_file():
        problems.append(f"source image not found: {source}")
    checkpoints = {values[node]["checkpoint"] for node in ("keypoint_detector", "sender",
                                                            "renderer") if node in values}
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
