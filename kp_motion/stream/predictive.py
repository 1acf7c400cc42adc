"""Predictive transmission, without ROS: the sender keeps a mirror of the receiver's forecaster
and transmits a frame only when the receiver's forecast of it would be wrong by more than a
threshold (docs/bandwidth/README.md).

Both sides run the same `ForecastState` (the same forecaster weights, deterministic mode):

    receiver  emits every frame_index once: a received frame as it arrived (sanitised), any
              other frame forecast when its deadline passes or when a later frame arrives first
    sender    for each captured frame, forecasts it on a copy of the mirror; if the all-60 mean
              squared error of that forecast exceeds `threshold`, or the frame is a refresh, it
              transmits the frame and the mirror takes the values the receiver will decode
              (after quantisation); otherwise the mirror keeps the forecast, exactly as the
              receiver will

Threshold norm: the mean squared error over the 60 values of one frame, the quantity the
rate-distortion evaluation scores, so that (without loss) every frame the receiver forecasts is
within `threshold` of the truth in that metric, frame by frame, not only on average.

Refresh and maximum gap: every frame whose index is a multiple of `max_gap` is transmitted and
both sides reset the forecaster before taking it. Without feedback from the receiver this is
what bounds a loss: a lost message leaves the receiver's forecaster in another state than the
mirror's (it forecast a frame the mirror took as sent, and a stateful forecaster remembers that),
and the next refresh that arrives puts both into the same state again. For a forecaster whose
state is only the last frame (hold-last) the next transmitted frame already does. The same rule
caps the time between two transmissions at `max_gap` frames. Over a reliable link a lost message
arrives late instead; the receiver replays it into its state (PredictiveReceiver), which ends
the divergence on its arrival.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kp_motion.forecasting.base import Forecaster, as_frame
from kp_motion.forecasting.sanitize import Sanitizer
from kp_motion.forecasting.schedule import EmittedFrame
from kp_motion.keypoints import Origin


def frame_error(forecast: np.ndarray, frame: np.ndarray) -> float:
    """The threshold's norm: mean squared difference over the 60 values."""
    difference = np.asarray(forecast, np.float64) - np.asarray(frame, np.float64)
    return float(np.mean(difference**2))


def is_refresh(frame_index: int, max_gap: int) -> bool:
    """True for the frames that are always transmitted and reset both forecasters."""
    return frame_index % max_gap == 0


def check_policy(threshold: float, max_gap: int) -> None:
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if max_gap < 1:
        raise ValueError(f"max_gap must be >= 1 frame, got {max_gap}")


class ForecastState:
    """The receiver's forecaster and what it has been fed: one class for receiver and mirror,
    so both do exactly the same operations in the same order."""

    def __init__(self, forecaster: Forecaster, max_gap: int) -> None:
        self.forecaster = forecaster
        self.max_gap = max_gap
        self.sanitizer = Sanitizer()

    def forecast(self, frames: int) -> np.ndarray:
        """The next `frames` frames; the forecaster advances through them."""
        return self.forecaster.predict(frames)

    def take(self, frame_index: int, values: np.ndarray) -> np.ndarray:
        """Feed a transmitted frame (after a reset on a refresh); returns it as emitted."""
        frame = self.sanitizer(as_frame(values))
        if is_refresh(frame_index, self.max_gap):
            self.forecaster.reset()
        self.forecaster.observe(frame)
        return frame

    def reset(self) -> None:
        self.forecaster.reset()


class PredictiveSender:
    """Decides per captured frame whether it is transmitted (the mirror of the receiver)."""

    def __init__(self, forecaster: Forecaster, threshold: float, max_gap: int) -> None:
        check_policy(threshold, max_gap)
        self.mirror = ForecastState(forecaster, max_gap)
        self.threshold = threshold
        self.max_gap = max_gap
        self._last_index: int | None = None
        self._last_sent: int | None = None
        self.sent = 0
        self.withheld = 0
        # The frame the receiver shows for the last offered index, by the mirror.
        self.expected: np.ndarray | None = None

    def must_send(self, frame_index: int) -> bool:
        """A refresh, the first frame, or max_gap frames since the last transmission."""
        return (self._last_sent is None or is_refresh(frame_index, self.max_gap)
                or frame_index - self._last_sent >= self.max_gap)

    def offer(self, frame_index: int, frame: np.ndarray,
              delivered: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
        """A captured frame -> the values to transmit (as the receiver will decode them, by
        `delivered(values)`), or None when the receiver's forecast is good enough or the
        detection is not finite (the receiver then forecasts the frame, and so does the
        mirror)."""
        frame_index = int(frame_index)
        if self._last_index is not None and frame_index <= self._last_index:
            raise ValueError(f"frame_index {frame_index} after {self._last_index}: the sender's "
                             "frames must come in increasing order")
        if self._last_index is not None and frame_index > self._last_index + 1:
            # Frames lost before the sender: the receiver forecasts them too.
            self.mirror.forecast(frame_index - self._last_index - 1)
        self._last_index = frame_index
        finite = bool(np.isfinite(frame).all())
        if not finite or not self.must_send(frame_index):
            trial = copy.deepcopy(self.mirror.forecaster)
            forecast = trial.predict(1)[0]
            if not finite or frame_error(forecast, frame) <= self.threshold:
                self.mirror.forecaster = trial  # the receiver will forecast the same
                self.withheld += 1
                self.expected = forecast
                return None
        values = np.asarray(delivered(frame), np.float32)
        self.expected = self.mirror.take(frame_index, values)
        self._last_sent = frame_index
        self.sent += 1
        return values


@dataclass
class PredictiveReceiverStats:
    received: int = 0
    detected: int = 0
    forecast: int = 0  # frames not received in time (withheld or lost: the receiver cannot tell)
    late: int = 0  # messages for a frame already emitted
    repaired: int = 0  # late messages replayed into the forecaster's state
    resets: int = 0  # new streams


class PredictiveReceiver:
    """(frame_index, values) messages of a predictive stream -> one frame per frame_index.

    The caller calls predict_until(i) when frame i's deadline passes (the frame period plus
    the receiver's wait budget after its capture time) and receive() for each message. At most
    2 * max_gap frames are forecast past the last received one: past that the sender is gone
    (a refresh comes every max_gap frames) and nothing more is invented.

    Late messages (a frame already emitted as a forecast, e.g. a retransmission of a reliable
    link) cannot change what was shown, but within `repair_window` frames they are replayed
    into the forecaster's state: the receiver keeps the state before each recent frame, takes
    the late frame there and runs forward again, so its state is the mirror's again as soon as
    every message up to now is in. Older late messages are dropped; a message more than
    2 * max_gap frames before the last emitted one starts a new stream (a restarted sender).
    """

    def __init__(self, forecaster: Forecaster, max_gap: int,
                 repair_window: int | None = None) -> None:
        check_policy(0.0, max_gap)
        self.state = ForecastState(forecaster, max_gap)
        self.max_gap = max_gap
        self.repair_window = max_gap if repair_window is None else repair_window
        if self.repair_window < 0:
            raise ValueError(f"repair_window must be >= 0, got {repair_window}")
        self.stats = PredictiveReceiverStats()
        self._last_emitted: int | None = None
        self._last_received: int | None = None
        self._before: dict[int, Forecaster] = {}  # frame_index -> forecaster state before it
        self._arrived: dict[int, np.ndarray] = {}  # recent frames that came as messages

    @property
    def last_emitted(self) -> int | None:
        return self._last_emitted

    def receive(self, frame_index: int, values: np.ndarray) -> list[EmittedFrame]:
        """One message -> the frames to emit now, in order (forecasts of any frames before it
        that were not emitted yet, then the received frame)."""
        frame_index = int(frame_index)
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        self.stats.received += 1
        if (self._last_emitted is not None
                and frame_index < self._last_emitted - 2 * self.max_gap):
            self._new_stream()
        if self._last_emitted is not None and frame_index <= self._last_emitted:
            self.stats.late += 1
            self._repair(frame_index, values)
            return []
        emitted = []
        if self._last_emitted is not None:
            emitted = self._forecast(self._last_emitted + 1, frame_index)
        frame = self._take(frame_index, values)
        emitted.append(EmittedFrame(frame_index, frame.copy(), Origin.DETECTED))
        self.stats.detected += 1
        self._last_emitted = self._last_received = frame_index
        return emitted

    def predict_until(self, frame_index: int) -> list[EmittedFrame]:
        """Deadline path: forecast every frame up to frame_index not emitted yet."""
        if self._last_emitted is None or self._last_received is None:
            return []
        stop = min(int(frame_index), self._last_received + 2 * self.max_gap) + 1
        return self._forecast(self._last_emitted + 1, stop)

    def _new_stream(self) -> None:
        self.state.reset()
        self._last_emitted = self._last_received = None
        self._before.clear()
        self._arrived.clear()
        self.stats.resets += 1

    def _remember(self, frame_index: int) -> None:
        """Keep the state before frame_index (only what a repair may need)."""
        if self.repair_window == 0:
            return
        self._before[frame_index] = copy.deepcopy(self.state.forecaster)
        oldest = frame_index - self.repair_window
        for old in [index for index in self._before if index < oldest]:
            del self._before[old]
            self._arrived.pop(old, None)

    def _take(self, frame_index: int, values: np.ndarray) -> np.ndarray:
        self._remember(frame_index)
        if self.repair_window:
            self._arrived[frame_index] = np.asarray(values, np.float32).copy()
        return self.state.take(frame_index, values)

    def _forecast(self, start: int, stop: int) -> list[EmittedFrame]:
        emitted = []
        for frame_index in range(start, stop):
            self._remember(frame_index)
            emitted.append(EmittedFrame(frame_index, self.state.forecast(1)[0], Origin.PREDICTED))
        self.stats.forecast += len(emitted)
        if emitted:
            self._last_emitted = stop - 1
        return emitted

    def _repair(self, frame_index: int, values: np.ndarray) -> None:
        """Replay the frames from a late message's frame_index on with it taken."""
        if frame_index not in self._before or frame_index in self._arrived:
            return  # too old to repair, or a duplicate
        self._arrived[frame_index] = np.asarray(values, np.float32).copy()
        self.state.forecaster = self._before[frame_index]
        for index in range(frame_index, self._last_emitted + 1):
            self._before[index] = copy.deepcopy(self.state.forecaster)
            if index in self._arrived:
                self.state.take(index, self._arrived[index])
            else:
                self.state.forecast(1)
        self.stats.repaired += 1
