"""The streaming schedule shared by the sender and the receiver (no ROS here).

The sender transmits the first M of every M + N frames (by frame_index, counted from 0 at the
stream's first frame) and withholds the other N. The receiver emits one frame for every index:

    DETECTED   a received frame (after the sanitiser)
    PREDICTED  a withheld frame, forecast as soon as the last transmitted frame of its cycle
               arrives (or, if that frame was lost, when the gap is filled)
    CONCEALED  a transmitted frame lost in transit, forecast when the gap is noticed (the next
               frame arrives) or when the caller's timeout calls predict_until

Messages whose index was already emitted (duplicates, late or reordered ones) are dropped and
counted. A jump forward of more than `max_gap` frames past the last received frame, or back by
more than `max_gap` frames, starts a new stream: the forecaster is reset and nothing is
invented for the skipped range. Concealment never runs more than `max_gap` frames past the
last received frame, so a dead sender does not produce an endless forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kp_motion.forecasting.base import Forecaster, as_frame
from kp_motion.forecasting.sanitize import Sanitizer
from kp_motion.keypoints import Origin

DEFAULT_MAX_GAP = 60  # two seconds at 30 fps


def _check_schedule(m: int, n: int) -> None:
    if m < 1 or n < 0:
        raise ValueError(
            f"schedule needs M >= 1 transmitted and N >= 0 withheld frames, got {m}, {n}"
        )


def is_transmitted(frame_index: int, m: int, n: int) -> bool:
    """True when the sender passes frame_index: the first m of every m + n frames."""
    _check_schedule(m, n)
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    return frame_index % (m + n) < m


def is_last_transmitted(frame_index: int, m: int, n: int) -> bool:
    """True for the last transmitted frame of its cycle (the withheld frames follow it)."""
    return is_transmitted(frame_index, m, n) and frame_index % (m + n) == m - 1


@dataclass
class EmittedFrame:
    frame_index: int
    values: np.ndarray  # (60,) float32
    origin: Origin


@dataclass
class ReceiverStats:
    received: int = 0  # messages handed to receive()
    detected: int = 0
    predicted: int = 0
    concealed: int = 0
    dropped: int = 0  # duplicates / late / reordered messages
    resets: int = 0  # new streams started after a large jump
    inputs_corrected: int = 0  # positions + Jacobians repaired in received frames


class Receiver:
    """Turns the (frame_index, values) messages of one stream into a gap-free frame sequence."""

    def __init__(
        self, forecaster: Forecaster, m: int, n: int, max_gap: int = DEFAULT_MAX_GAP
    ) -> None:
        _check_schedule(m, n)
        if max_gap < n:
            raise ValueError(f"max_gap ({max_gap}) must be >= N ({n}): every cycle withholds N")
        self.forecaster = forecaster
        self.m, self.n, self.max_gap = m, n, max_gap
        self.stats = ReceiverStats()
        self._sanitizer = Sanitizer()
        self._last_emitted: int | None = None
        self._last_received: int | None = None

    @property
    def last_emitted(self) -> int | None:
        return self._last_emitted

    def reset(self) -> None:
        """Forget the stream (the statistics are kept)."""
        self.forecaster.reset()
        self._last_emitted = None
        self._last_received = None

    def _starts_new_stream(self, frame_index: int) -> bool:
        if self._last_received is None:
            return False
        jump = frame_index - self._last_received
        return jump - 1 > self.max_gap or -jump > self.max_gap

    def receive(self, frame_index: int, values: np.ndarray) -> list[EmittedFrame]:
        """Consume one message; return the frames to emit now, in frame order."""
        frame_index = int(frame_index)
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        frame = as_frame(values)
        self.stats.received += 1
        if self._starts_new_stream(frame_index):
            self.reset()
            self.stats.resets += 1
        elif self._last_emitted is not None and frame_index <= self._last_emitted:
            self.stats.dropped += 1
            return []
        emitted = []
        if self._last_emitted is not None:
            emitted += self._forecast(self._last_emitted + 1, frame_index)
        corrections_before = self._sanitizer.total
        frame = self._sanitizer(frame)
        self.stats.inputs_corrected += self._sanitizer.total - corrections_before
        self.forecaster.observe(frame)
        emitted.append(EmittedFrame(frame_index, frame.copy(), Origin.DETECTED))
        self.stats.detected += 1
        self._last_emitted = self._last_received = frame_index
        if self.n and is_last_transmitted(frame_index, self.m, self.n):
            emitted += self._forecast(frame_index + 1, frame_index + 1 + self.n)
        return emitted

    def predict_until(self, frame_index: int) -> list[EmittedFrame]:
        """Timeout path: forecast every frame up to frame_index that has not been emitted.

        Nothing before the first received frame, and nothing more than max_gap frames past the
        last received one, is forecast.
        """
        if self._last_emitted is None or self._last_received is None:
            return []
        stop = min(int(frame_index), self._last_received + self.max_gap) + 1
        return self._forecast(self._last_emitted + 1, stop)

    def _forecast(self, start: int, stop: int) -> list[EmittedFrame]:
        """Forecast frames start..stop-1: withheld slots PREDICTED, transmitted ones CONCEALED."""
        if stop <= start:
            return []
        forecast = self.forecaster.predict(stop - start)
        emitted = []
        for frame_index, values in zip(range(start, stop), forecast, strict=True):
            if is_transmitted(frame_index, self.m, self.n):
                origin = Origin.CONCEALED
                self.stats.concealed += 1
            else:
                origin = Origin.PREDICTED
                self.stats.predicted += 1
            emitted.append(EmittedFrame(frame_index, values, origin))
        self._last_emitted = stop - 1
        return emitted
