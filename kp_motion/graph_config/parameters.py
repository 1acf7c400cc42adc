"""THE table of node parameters: what each node declares (type, meaning, range or choices),
and their defaults from config/nodes.yaml. ROS-free (pure data and YAML).

One parameter that several nodes share (m, n, fps, device, checkpoint, torch_threads) is one
`Param` object here, listed by each node that uses it. Its default is given once in
config/nodes.yaml, the ROS parameter file users pass (settings shared by nodes live under
`/**`). `node_parameter_defaults` checks file and table against each other: a parameter
without a default of its type, or a key of the file that its node does not declare, is an
error. The graph options (kp_motion.graph_config.options) point at these Params, so argparse,
the launch arguments and the nodes' declarations show the same names, types and help text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kp_motion.names import (
    DEFAULT_MODEL,
    FITS,
    FORECASTERS,
    MODES,
    POLICIES,
    RENDER_VARIANTS,
    SET_MEMBERS,
    WIRES,
)
from kp_motion.paths import config_path

NODES_CONFIG = "nodes.yaml"
WILDCARD = "/**"
MAX_IMAGE_SIZE = 8192
MAX_FRAMES_PER_CYCLE = 10_000
MAX_WAIT_SUBSCRIBERS = 100
INT32_MAX = 2**31 - 1
# How an error message names what a value of each parameter type must be.
KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Param:
    """A node parameter: its type, what it means and which values it accepts."""

    name: str
    kind: type  # bool, int, float or str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # Non-empty for a parameter kept for one release only: what to do instead. A node warns
    # when such a parameter is set to anything but its neutral value (0 / false / "").
    deprecated: str = ""

    def check(self, value: Any) -> None:
        """ValueError naming the parameter when `value` is outside its choices."""
        if self.choices and value not in self.choices:
            raise ValueError(
                f"parameter {self.name}={value!r} is not one of {', '.join(self.choices)}"
            )


# --- parameters that several nodes share (one value per graph) ------------------------------
FPS = Param("fps", float, "frame rate of the stream in frames per second", 0.1, 1000.0)
M = Param("m", int, "transmitted frames per cycle", 1, MAX_FRAMES_PER_CYCLE)
N = Param("n", int, "withheld (predicted) frames per cycle; 0 = transmit every frame",
          0, MAX_FRAMES_PER_CYCLE)
DEVICE = Param("device", str, "torch device: auto (cuda when available), cpu, cuda, cuda:N")
CHECKPOINT = Param("checkpoint", str, "FOMM checkpoint folder (detector + generator) or embedded "
                   f"model name; empty = the embedded default model {DEFAULT_MODEL}")
TORCH_THREADS = Param("torch_threads", int, "CPU threads of torch in this node", 1, 256)
# How the sender decides what to transmit, and in which format (docs/bandwidth/README.md).
POLICY = Param("policy", str, "sender policy: fixed (the m/n schedule) or predictive (send a "
               "frame only when the receiver's forecast of it is off by more than threshold)",
               choices=POLICIES)
WIRE = Param("wire", str, "network message: float32 (Keypoint60 on network/keypoints) or compact "
             "(KeypointPacket on network/packets, described on network/stream)", choices=WIRES)
THRESHOLD = Param("threshold", float, "predictive: largest mean squared error over a frame's 60 "
                  "values the receiver's forecast may have before the frame is sent", 0.0, 1e6)
MAX_GAP = Param("max_gap", int, "predictive: every frame whose index is a multiple of this is "
                "sent and resets both forecasters (bounds a loss's damage and the gap between "
                "two messages)", 1, INT32_MAX)

# --- parameters of one node -----------------------------------------------------------------
INPUT = Param("input", str, "camera input: V4L2 device index, video file or image folder")
WIDTH = Param("width", int, "camera output width in pixels; 0 = keep (or follow the height)",
              0, MAX_IMAGE_SIZE)
HEIGHT = Param("height", int, "camera output height in pixels; 0 = keep (or follow the width)",
               0, MAX_IMAGE_SIZE)
MAX_FRAMES = Param("max_frames", int, "stop the camera after this many frames; 0 = no limit",
                   0, INT32_MAX)
FIT = Param("fit", str, "how a frame becomes the output size: resize (stretch), crop (its "
            "centred part) or face (a fixed square around the face, moved only when the face "
            "leaves it; what the face models expect)", choices=FITS)
EXIT_AT_END = Param("exit_at_end", bool, "the camera exits at the end of a clip")
DROP_PROBABILITY = Param("drop_probability", float,
                         "simulated loss: share of transmitted frames dropped", 0.0, 1.0)
DROP_SEED = Param("drop_seed", int, "seed of the simulated loss", 0, INT32_MAX)
FORECASTER = Param("forecaster", str,
                   "forecasting method: a baseline, a learned or linear kind (the embedded set's), "
                   "or SET/KIND for a shipped set's member", choices=FORECASTERS + SET_MEMBERS)
FORECASTER_PATH = Param("forecaster_path", str,
                        "folder of a learned forecaster; empty = the embedded one of its kind")
WAIT_BUDGET = Param("wait_budget", float,
                    "predictive: seconds the receiver waits for frame i past its capture time "
                    "plus one period before it forecasts it (output latency = network delay + "
                    "this)", 0.0, 60.0)
SOURCE_IMAGE = Param("source_image", str,
                     "the source image file to animate; empty = the source_image topic")
RENDER_VARIANT = Param("render_variant", str, "how the renderer runs its model: plain, fast "
                       "(the plain frames to float rounding), bf16 (lossy; fast only on GPUs and "
                       "CPUs with AVX512-BF16 or AMX), compiled or compiled-bf16 (compile for "
                       "seconds at the first frame; need a C++ compiler)", choices=RENDER_VARIANTS)
SUMMARY_PATH = Param("summary_path", str, "stats: JSON summary written at exit; empty = none")
PUBLISH_IMAGES = Param("publish_images", bool, "role sender: also publish the captured images "
                       "on the image topic (by default no pixel leaves the sender)")

# Start-up gating by subscriber count (any subscriber counts, a missing one stalls the chain)
# gave way to per-topic QoS (kp_motion.ros.qos). Kept for one release because users may set it.
_NO_WAITING = ("nodes no longer need to wait: each topic's QoS serves late readers "
               "(README, QoS table); this parameter goes in the next release")


def _wait_param(description: str, name: str = "wait_for_subscribers") -> Param:
    return Param(name, int, f"deprecated, 0 = do not wait: {description}", 0,
                 MAX_WAIT_SUBSCRIBERS, deprecated=_NO_WAITING)


# The camera's own parameters (the sender node, capture + detection in one process, has them too).
_CAPTURE = (
    INPUT, FPS, WIDTH, HEIGHT,
    FIT,
    Param("crop", bool, "deprecated, false = use fit: true centre-crops (fit crop)",
          deprecated="set fit: crop instead; this parameter goes in the next release"),
    Param("loop", bool, "restart a file or folder at its end"),
    MAX_FRAMES, EXIT_AT_END,
    Param("frame_id", str, "header.frame_id of the published images"),
    Param("publish_source", bool, "publish the first frame on source_image (latched)"),
)
# The detector's model and transmit schedule (also the sender node's).
_DETECTION = (CHECKPOINT, DEVICE, TORCH_THREADS, M, N, DROP_PROBABILITY, DROP_SEED)
# The transmit policy and wire (also the sender node's); predictive mirrors the receiver's
# forecaster, so the sender names it too.
_TRANSMISSION = (POLICY, WIRE, THRESHOLD, MAX_GAP, FORECASTER, FORECASTER_PATH)

NODE_PARAMETERS: dict[str, tuple[Param, ...]] = {
    "camera": (
        *_CAPTURE,
        _wait_param("hold the stream until this many subscribers match on image"),
    ),
    "keypoint_detector": (
        CHECKPOINT, DEVICE, TORCH_THREADS, FPS, M, N, DROP_PROBABILITY, DROP_SEED,
        *_TRANSMISSION,
        Param("reliable_images", bool, "reliable image delivery (recorded clips); "
              "false = sensor-data QoS (live cameras)"),
        _wait_param("subscribe to images once this many receivers match"),
    ),
    "sender": (
        *_CAPTURE, *_DETECTION, *_TRANSMISSION,
        PUBLISH_IMAGES,
    ),
    "forecaster": (
        FORECASTER, FORECASTER_PATH, M, N, FPS, DEVICE, TORCH_THREADS,
        POLICY, WIRE, MAX_GAP, WAIT_BUDGET,
        Param("conceal_timeout", float,
              "conceal a lost frame once overdue by this many s; 0 = on the next arrival",
              0.0, 60.0),
        _wait_param("subscribe to the network once this many match"),
    ),
    "renderer": (
        CHECKPOINT, DEVICE, TORCH_THREADS,
        Param("mode", str, "transfer (relative motion, any source) or reconstruction "
              "(absolute)", choices=MODES),
        SOURCE_IMAGE,
        FIT,
        RENDER_VARIANT,
        Param("overlay", bool, "also publish the keypoint overlay image"),
        _wait_param("subscribe to keypoints once this many match on rendered"),
        _wait_param("and once this many match on overlay (when it is published)",
                    "wait_for_overlay_subscribers"),
    ),
    "stats": (
        Param("report_period", float, "seconds between diagnostics and log lines", 0.1, 3600.0),
        SUMMARY_PATH, FPS, M, N, POLICY, WIRE,
    ),
}


def section_node(key: str) -> str:
    """The node a section of config/nodes.yaml is for: '/**/camera' -> 'camera' ('/**' stays).

    The sections are written '/**/<node>' so that they apply in any namespace: rcl reads a
    plain 'camera' as '/camera', which a node in /robot1 does not match."""
    return key.removeprefix(WILDCARD + "/") if key != WILDCARD else key


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
        sections[section_node(str(node_name))] = dict(section["ros__parameters"] or {})
    return sections


# A node that does the work of others takes their sections' defaults (its own section wins).
DEFAULTS_FROM = {"sender": ("camera", "keypoint_detector")}


def node_defaults(config_key: str, path: str | Path | None = None) -> dict[str, Any]:
    """Defaults of one node: the shared `/**` values, overridden by the sections it takes
    defaults from (DEFAULTS_FROM), then by its own section."""
    sections = load_nodes_config(path)
    if config_key not in sections:
        raise ValueError(f"config/{NODES_CONFIG} has no section for node {config_key!r}")
    values = dict(sections.get(WILDCARD, {}))
    for other in (*DEFAULTS_FROM.get(config_key, ()), config_key):
        values.update(sections.get(other, {}))
    return values


def checked_default(param: Param, value: Any, config_key: str) -> Any:
    """`value` of the YAML as `param`'s type (an integer is a valid float), or ValueError."""
    where = f"config/{NODES_CONFIG} {config_key}.{param.name}"
    if param.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not param.kind:
        raise ValueError(f"{where}: expected {KIND_NAMES[param.kind]}, got {value!r}")
    return value


def node_parameter_defaults(config_key: str, path: str | Path | None = None) -> dict[str, Any]:
    """Every declared parameter of a node -> its default from config/nodes.yaml, checked."""
    params = NODE_PARAMETERS[config_key]
    own = load_nodes_config(path)[config_key]
    unknown = sorted(set(own) - {param.name for param in params})
    if unknown:
        raise ValueError(f"config/{NODES_CONFIG} {config_key}: unknown parameters "
                         f"{', '.join(unknown)}")
    defaults = node_defaults(config_key, path)
    values = {}
    for param in params:
        if param.name not in defaults:
            raise ValueError(f"config/{NODES_CONFIG} lacks a default for {config_key}.{param.name}")
        values[param.name] = checked_default(param, defaults[param.name], config_key)
    return values
