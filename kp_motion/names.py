"""The names users type and the code compares: modes, roles and forecaster kinds.

Each list is written here once; the graph, the nodes, the command lines and the evaluation
import it. ROS-free and light (no torch), so that launch files and argparse can use it.
"""

from __future__ import annotations

# What the receiver renders: a frame of the driving video itself (absolute keypoints), or a
# different source image animated with the motion relative to the first driving frame.
RECONSTRUCTION = "reconstruction"
TRANSFER = "transfer"
MODES = (RECONSTRUCTION, TRANSFER)

# How a frame of any size becomes the model's square: stretched whole, its centred square, or
# a fixed square around the face (kp_motion.data.face_framing; what the face models expect).
RESIZE = "resize"
CROP = "crop"
FACE = "face"
FITS = (RESIZE, CROP, FACE)

# How the renderer runs (kp_motion.models.fast_render): as written; "fast" (BatchNorm folded,
# channels_last, transposed up-convolutions: the same frames to float rounding); "bf16"
# (convolutions in bfloat16: faster, lossy); "compiled" (fast + Winograd residual convolutions
# + torch.compile: needs a C++ compiler, compiles at the first frame); "compiled-bf16".
PLAIN_RENDER = "plain"
FAST_RENDER = "fast"
BF16_RENDER = "bf16"
COMPILED_RENDER = "compiled"
COMPILED_BF16_RENDER = "compiled-bf16"
RENDER_VARIANTS = (PLAIN_RENDER, FAST_RENDER, BF16_RENDER, COMPILED_RENDER, COMPILED_BF16_RENDER)

# Which part of a node graph a machine runs.
SENDER = "sender"
RECEIVER = "receiver"
BOTH = "both"
ROLES = (SENDER, RECEIVER, BOTH)

# Sender policies: the method's fixed schedule (send m frames, withhold n), or predictive
# transmission (send a frame only when the receiver's forecast of it would be off by more than a
# threshold; kp_motion.stream.predictive).
FIXED = "fixed"
PREDICTIVE = "predictive"
POLICIES = (FIXED, PREDICTIVE)

# Wire formats of the sender-to-receiver link: Keypoint60 (60 float32 values) or the compact
# packet of quantised values (kp_motion.stream.wire).
FLOAT32 = "float32"
COMPACT = "compact"
WIRES = (FLOAT32, COMPACT)

# Embedded FOMM models (folders under models/). The default is the face model: the product
# animates faces on video calls. The synthetic-data model stays available by name, for the
# synthetic dataset and the tests that rely on its behaviour.
FACE_MODEL = "fomm-face-128"
SYNTHETIC_MODEL = "fomm-compact-64"
DEFAULT_MODEL = FACE_MODEL

# Scripted head motions of `kp-motion head-motion` (a driving clip made from one face image).
HEAD_MOTIONS = ("nod", "turn", "tilt")

# Forecasters: baselines are built by name; learned (neural) and linear (least-squares) kinds
# load from a checkpoint folder.
HOLD_LAST = "hold-last"
CONSTANT_VELOCITY = "constant-velocity"
BASELINE_FORECASTERS = (HOLD_LAST, CONSTANT_VELOCITY)
LEARNED_FORECASTERS = ("vrnn", "rnn", "vae")
LINEAR_FORECASTERS = ("linear-ar", "direct-linear")
FORECASTERS = LEARNED_FORECASTERS + LINEAR_FORECASTERS + BASELINE_FORECASTERS

# Shipped forecaster sets, named by the detector whose keypoints they were trained on: the
# embedded face model face-128 (the default), the embedded synthetic-data model compact-64 and
# the FOMM authors' vox-256 checkpoint. A member is
# named SET/KIND ("compact-64/vrnn"); a bare kind is the default set's member.
FORECASTER_SETS = ("face-128", "compact-64", "vox-256")
DEFAULT_FORECASTER_SET = "face-128"
SET_MEMBERS = tuple(f"{name}/{kind}" for name in FORECASTER_SETS
                    for kind in LEARNED_FORECASTERS + LINEAR_FORECASTERS)


def spelled(names: tuple[str, ...]) -> str:
    """'a, b or c': a list of names for help texts and error messages."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
