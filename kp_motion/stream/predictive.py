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

Lost messages the receiver can tell: the sender transmits every refresh frame (unless its
detection was not finite), so a refresh frame that has not arrived means its message was lost
(the next refresh is at most max_gap frames after the last received message, so max_gap frames
without news always include one). From that frame on, until the next message arrives,
the receiver's forecasts are marked CONCEALED (forecast because of a loss, as the fixed
schedule marks them); a lost message that the threshold alone made the sender transmit cannot
be told from a withheld frame, and its forecasts stay PREDICTED until the rule above applies.

End of the stream: a receiver cannot tell the last frames of a clip, withheld because they
were easy to forecast, from frames still to come. The sender, when its source ends, says which
frame was the last (PredictiveSender.end, an end marker on the wire); PredictiveReceiver.end
forecasts the frames up to it that were not emitted yet and nothing after it, so there is one
output frame per captured frame. Without a marker (a lost one, or a sender that died) nothing
is forecast more than 2 * max_gap frames past the last received message.
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

    def end(self) -> int | None:
        """The end marker: the last frame_index offered (None when nothing was)."""
        return self._last_index


@dataclass
class PredictiveReceiverStats:
    received: int = 0
    detected: int = 0
    forecast: int = 0  # frames forecast with no loss known (withheld, or an undetectable loss)
    concealed: int = 0  # frames forecast after a loss the max_gap rule detects
    late: int = 0  # messages for a frame already emitted
    repaired: int = 0  # late messages replayed into the forecaster's state
    resets: int = 0  # new streams


class PredictiveReceiver:
    """(frame_index, values) messages of a predictive stream -> one frame per frame_index.

    The caller calls predict_until(i) when frame i's deadline passes (the frame period plus
    the receiver's wait budget after its capture time) and receive() for each message. At most
    2 * max_gap frames are forecast past the last received one: past that the sender is gone
    (a refresh comes every max_gap frames) and nothing more is invented. end(last_index), the
    sender's end marker, emits the frames up to the stream's last one and nothing after it; a
    message past that index starts a new stream.

    Forecast frames are PREDICTED, or CONCEALED from the first refresh frame whose message did
    not arrive until the next message arrives (module docstring).

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
        self._end: int | None = None  # the stream's last frame_index, once the sender said it
        self._loss_known = False  # a message since the last received one must have been lost
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
        if ((self._last_emitted is not None
                and frame_index < self._last_emitted - 2 * self.max_gap)
                or (self._end is not None and frame_index > self._end)):
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
        self._loss_known = False
        return emitted

    def predict_until(self, frame_index: int) -> list[EmittedFrame]:
        """Deadline path: forecast every frame up to frame_index not emitted yet."""
        if self._last_emitted is None or self._last_received is None:
            return []
        last = min(int(frame_index), self._last_received + 2 * self.max_gap)
        if self._end is not None:
            last = min(last, self._end)
        return self._forecast(self._last_emitted + 1, last + 1)

    def end(self, last_index: int) -> list[EmittedFrame]:
        """The sender's end marker: frame last_index was the stream's last. Forecasts the
        frames up to it not emitted yet; nothing after it is forecast."""
        last_index = int(last_index)
        if last_index < 0:
            raise ValueError(f"the end marker's frame_index must be >= 0, got {last_index}")
        if self._last_emitted is not None and last_index < self._last_emitted - 2 * self.max_gap:
            return []  # a stale marker of an earlier stream
        self._end = last_index
        if self._last_emitted is None or self._last_received is None:
            return []
        return self._forecast(self._last_emitted + 1, last_index + 1)

    @property
    def ended(self) -> bool:
        """True once the end marker came and every frame up to it was emitted."""
        return (self._end is not None and self._last_emitted is not None
                and self._last_emitted >= self._end)

    def _new_stream(self) -> None:
        self.state.reset()
        self._last_emitted = self._last_received = self._end = None
        self._loss_known = False
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
            self._loss_known = self._loss_known or is_refresh(frame_index, self.max_gap)
            origin = Origin.CONCEALED if self._loss_known else Origin.PREDICTED
            emitted.append(EmittedFrame(frame_index, self.state.forecast(1)[0], origin))
            if self._loss_known:
                self.stats.concealed += 1
            else:
                self.stats.forecast += 1
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
