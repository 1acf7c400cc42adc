"""8-bit image buffers (the sensor_msgs/Image layout) -> uint8 RGB numpy frames, without ROS.

One decoder for every place that meets raw image messages: the ROS nodes (through
kp_motion.ros.conversions) and the bag reader of the evaluation, which must work where no ROS
package is installed. Only 8-bit encodings are accepted (rgb8, bgr8, mono8, rgba8, bgra8): they
cover cameras, video files and the renderer's output; every other encoding is refused with a
MalformedMessageError (a ValueError) naming it, so that a node can log and skip the message
instead of rendering garbage.

Rows may carry padding (`step` > width * channels); it is dropped.
"""

from __future__ import annotations

import numpy as np

# encoding -> (channels, index order that turns the stored channels into R, G, B)
ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)


class MalformedMessageError(ValueError):
    """A message a node must skip; `kind` names the problem class (for counts and logs)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def decode_image(
    data: bytes | bytearray | memoryview | np.ndarray,
    encoding: str,
    height: int,
    width: int,
    step: int,
) -> np.ndarray:
    """The fields of a sensor_msgs/Image -> contiguous uint8 (H, W, 3) RGB.

    Raises MalformedMessageError for an unsupported encoding, a zero size, a step shorter
    than a row or too few bytes.
    """
    given_encoding, encoding = str(encoding), str(encoding).lower()
    if encoding not in ENCODINGS:
        raise MalformedMessageError(
            "unsupported encoding",
            f"unsupported image encoding {given_encoding!r} "
            f"(expected one of {', '.join(SUPPORTED_ENCODINGS)})",
        )
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise MalformedMessageError("zero-size image", f"zero-size image ({width}x{height})")
    channels, rgb_order = ENCODINGS[encoding]
    row_bytes = width * channels
    step = int(step)
    if step < row_bytes:
        raise MalformedMessageError(
            "bad step", f"image step {step} is shorter than a row ({width} x {channels} bytes)"
        )
    pixels_in = np.frombuffer(data, dtype=np.uint8).reshape(-1)
    if pixels_in.size < step * height:
        raise MalformedMessageError(
            "truncated image",
            f"image data holds {pixels_in.size} bytes, {width}x{height} {encoding} "
            f"needs {step * height}",
        )
    rows = pixels_in[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = rows.reshape(height, width, channels)
    return np.ascontiguousarray(pixels[..., list(rgb_order)])
