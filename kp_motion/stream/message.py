"""The Keypoint60 message without rclpy: its definition (msg/Keypoint60.msg, read by the
pure-Python `rosbags` library), the message the graph transmits, and its serialised size.

The size that the evaluation and the README quote is measured here, by CDR-serialising a
Keypoint60 filled as the graph's camera and detector fill it: header.frame_id is the camera's
frame_id default (config/nodes.yaml), model_id the detector checkpoint's id. Serialised with
rosbags it has the length rclpy's serialize_message gives (checked by the ROS tests).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kp_motion.keypoints import NUM_VALUES, Origin

KEYPOINT60_TYPE = "kp_motion/msg/Keypoint60"
MSG_FILE = Path("msg") / "Keypoint60.msg"


def keypoint_msg_path() -> Path:
    """msg/Keypoint60.msg of the source tree or of an install's share/kp_motion."""
    from kp_motion.paths import share_dir

    candidates = [share_dir() / MSG_FILE]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "kp_motion" / MSG_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("msg/Keypoint60.msg not found (source tree or install share/)")


def make_typestore():
    """rosbags typestore: ROS 2 Kilted messages + kp_motion/msg/Keypoint60."""
    try:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    except ImportError:
        raise ImportError("the Keypoint60 size and bags need the rosbags package "
                          "(pip install rosbags)") from None
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(keypoint_msg_path().read_text(), KEYPOINT60_TYPE))
    return store


def graph_frame_id() -> str:
    """header.frame_id of the graph's messages: the camera's default, which the detector
    copies from each image into its keypoints."""
    from kp_motion.graph_config.parameters import node_parameter_defaults  # pure data, no ROS

    return node_parameter_defaults("camera")["frame_id"]


def keypoint60(typestore, model_id: str, frame_id: str, frame_index: int = 0,
               origin: int = int(Origin.DETECTED), values: np.ndarray | None = None) -> Any:
    """A rosbags Keypoint60 with the given fields (a zero stamp; a detected frame of zeros)."""
    types = typestore.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=frame_id)
    values = np.zeros(NUM_VALUES, np.float32) if values is None else values
    return types[KEYPOINT60_TYPE](header=header, frame_index=frame_index, origin=origin,
                                  model_id=model_id, values=np.asarray(values, np.float32))


def keypoint60_bytes(model_id: str, frame_id: str | None = None) -> int:
    """Serialised size of one transmitted Keypoint60 (CDR with its 4-byte encapsulation
    header, as rclpy serialises it); frame_id defaults to the graph's."""
    typestore = make_typestore()
    frame_id = graph_frame_id() if frame_id is None else frame_id
    message = keypoint60(typestore, model_id, frame_id)
    return len(typestore.serialize_cdr(message, KEYPOINT60_TYPE))
