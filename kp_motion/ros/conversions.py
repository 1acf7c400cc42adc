"""Message <-> numpy conversions for the nodes: sensor_msgs/Image, Keypoint60 and stamps.

ROS 2 has no cv_bridge here, so images are converted by hand. Only 8-bit encodings are accepted
(rgb8, bgr8, mono8, rgba8, bgra8): they cover cameras, video files and the renderer's output,
and every other encoding is refused with a ValueError naming it, so that a node can log the
problem (MalformedMessageError, a ValueError) and skip the message instead of rendering garbage.

Rows may carry padding (`step` > width * channels); it is dropped on the way in. Outgoing
images are always tightly packed rgb8.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from kp_motion.keypoints import NUM_VALUES
from kp_motion.msg import Keypoint60

NANOSECONDS_PER_SECOND = 1_000_000_000

# encoding -> (channels, index order that turns the stored channels into R, G, B)
_ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class MalformedMessageError(ValueError):
    """A message a node must skip; `kind` names the problem class (for counts and logs)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (no float rounding)."""
    return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)


def ns_to_stamp(nanoseconds: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    seconds, remainder = divmod(int(nanoseconds), NANOSECONDS_PER_SECOND)
    return Time(sec=seconds, nanosec=remainder)


def image_to_array(message: Image) -> np.ndarray:
    """sensor_msgs/Image -> contiguous uint8 (H, W, 3) RGB; MalformedMessageError otherwise."""
    encoding = str(message.encoding).lower()
    if encoding not in _ENCODINGS:
        raise MalformedMessageError(
            "unsupported encoding",
            f"unsupported image encoding {message.encoding!r} "
            f"(expected one of {', '.join(SUPPORTED_ENCODINGS)})"
        )
    height, width = int(message.height), int(message.width)
    if height <= 0 or width <= 0:
        raise MalformedMessageError("zero-size image", f"zero-size image ({width}x{height})")
    channels, rgb_order = _ENCODINGS[encoding]
    row_bytes = width * channels
    step = int(message.step)
    if step < row_bytes:
        raise MalformedMessageError(
            "bad step", f"image step {step} is shorter than a row ({width} x {channels} bytes)"
        )
    data = np.frombuffer(message.data, dtype=np.uint8)
    if data.size < step * height:
        raise MalformedMessageError(
            "truncated image",
            f"image data holds {data.size} bytes, {width}x{height} {encoding} "
            f"needs {step * height}",
        )
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = rows.reshape(height, width, channels)
    return np.ascontiguousarray(pixels[..., list(rgb_order)])


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
