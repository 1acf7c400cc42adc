"""The forecaster node's logic without ROS: one detector's keypoint stream -> full-rate frames.

`KeypointReceiver` wraps the schedule's Receiver (kp_motion.forecasting.schedule) with what a
stream from the network needs before it reaches the forecaster's state:

  * one detector per stream: the first model_id heard pins the stream, and keypoints with any
    other model_id (another detector's coordinates) are refused, counted and warned about once
    per id, never fed to the forecaster;
  * values the sanitiser corrected (far-away positions such as 1e30, degenerate Jacobians)
    are warned about: the first time, then at most every WARN_PERIOD_S seconds;
  * a summary line that counts all of it.

Warnings go to a callable (the node passes its logger's warning), so this runs and is tested
without rclpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

WARN_PERIOD_S = 5.0


@dataclass
class Received:
    """What became of one message: the frames to publish, or why it was refused."""

    frames: list = field(default_factory=list)  # EmittedFrame, in frame order
    refused: bool = False  # a foreign model_id: nothing reached the forecaster
    corrected: int = 0  # values the sanitiser repaired in this message


class KeypointReceiver:
    def __init__(self, receiver, warn: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.receiver = receiver
        self.warn = warn
        self.clock = clock
        self.model_id: str | None = None  # pinned by the first message
        self.foreign: dict[str, int] = {}
        self._last_correction_warning = -float("inf")

    def receive(self, model_id: str, frame_index: int, values: np.ndarray) -> Received:
        if self.model_id is None:
            self.model_id = model_id
        if model_id != self.model_id:
            self._refuse(model_id)
            return Received(refused=True)
        stats = self.receiver.stats
        corrected_before = stats.inputs_corrected
        frames = self.receiver.receive(frame_index, values)
        corrected = stats.inputs_corrected - corrected_before
        if corrected:
            self._warn_correction(frame_index, corrected)
        return Received(frames, corrected=corrected)

    def _refuse(self, model_id: str) -> None:
        self.foreign[model_id] = self.foreign.get(model_id, 0) + 1
        if self.foreign[model_id] == 1:
            self.warn(f"refusing keypoints with model_id {model_id!r}: this stream comes from "
                      f"detector {self.model_id!r} (restart the forecaster to follow another)")

    def _warn_correction(self, frame_index: int, corrected: int) -> None:
        now = self.clock()
        if now - self._last_correction_warning < WARN_PERIOD_S:
            return
        self._last_correction_warning = now
        total = self.receiver.stats.inputs_corrected
        self.warn(f"corrected {corrected} out-of-range keypoint values in frame {frame_index} "
                  f"(non-finite, far-away positions or degenerate Jacobians; {total} so far)")

    def summary(self, malformed: int = 0) -> str:
        stats = self.receiver.stats
        return (
            f"received {stats.received}: {stats.detected} detected, {stats.predicted} "
            f"predicted, {stats.concealed} concealed, {stats.dropped} dropped, "
            f"{stats.resets} stream resets; {stats.inputs_corrected} input values corrected, "
            f"{sum(self.foreign.values())} refused with a foreign model_id, {malformed} "
            "malformed"
        )
