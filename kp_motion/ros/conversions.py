"""Message <-> numpy conversions for the nodes: sensor_msgs/Image, Keypoint60 and stamps.

ROS 2 has no cv_bridge here, so images are converted by hand: incoming ones by the ROS-free
decoder kp_motion.image_encoding (8-bit encodings only; anything else is a
MalformedMessageError, a ValueError, that a node logs before skipping the message). Outgoing
images are always tightly packed rgb8.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from kp_motion.image_encoding import SUPPORTED_ENCODINGS, MalformedMessageError, decode_image
from kp_motion.keypoints import NUM_VALUES
from kp_motion.msg import Keypoint60

NANOSECONDS_PER_SECOND = 1_000_000_000

# Re-exported: the nodes import them from here.
__all__ = [
    "SUPPORTED_ENCODINGS",
    "MalformedMessageError",
    "array_to_image",
    "image_to_array",
    "keypoints_to_message",
    "message_values",
    "ns_to_stamp",
    "stamp_to_ns",
]


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (no float rounding)."""
    return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)


def ns_to_stamp(nanoseconds: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    seconds, remainder = divmod(int(nanoseconds), NANOSECONDS_PER_SECOND)
    return Time(sec=seconds, nanosec=remainder)


def image_to_array(message: Image) -> np.ndarray:
    """sensor_msgs/Image -> contiguous uint8 (H, W, 3) RGB; MalformedMessageError otherwise."""
    return decode_image(
        message.data, message.encoding, message.height, message.width, message.step
    )


def array_to_image(frame: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """uint8 (H, W, 3) RGB -> sensor_msgs/Image (rgb8) with the given header."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {frame.dtype} {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"cannot publish a zero-size frame {frame.shape}")
    message = Image()
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    message.height, message.width = int(frame.shape[0]), int(frame.shape[1])
    message.encoding = "rgb8"
    message.is_bigendian = 0
    message.step = int(frame.shape[1]) * 3
    message.data = np.ascontiguousarray(frame).tobytes()
    return message


def keypoints_to_message(
    values: np.ndarray,
    *,
    frame_index: int,
    origin: int,
    model_id: str,
    stamp: Time,
    frame_id: str,
) -> Keypoint60:
    """60 keypoint values (kp_motion.keypoints layout) and their metadata -> Keypoint60."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if values.shape != (NUM_VALUES,):
        raise ValueError(f"a keypoint frame has {NUM_VALUES} values, got {values.size}")
    message = Keypoint60()
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    message.frame_index = int(frame_index)
    message.origin = int(origin)
    message.model_id = model_id
    message.values = values
    return message


def message_values(message: Any) -> np.ndarray:
    """Keypoint60 -> float32 (60,); MalformedMessageError for a wrong length or NaN/Inf values."""
    values = np.asarray(message.values, dtype=np.float32).reshape(-1)
    if values.shape != (NUM_VALUES,):
        raise MalformedMessageError(
            "wrong value count", f"keypoint message has {values.size} values, expected {NUM_VALUES}"
        )
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise MalformedMessageError(
            "non-finite keypoints",
            f"keypoint message {message.frame_index} holds {bad} NaN/Inf values",
        )
    return values
