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
                 clock: Callable[[], float] = time.monotonic, forecaster=None) -> None:
        self.receiver = receiver
        self.warn = warn
        self.forecaster = forecaster  # checked against the stream's detector once it is known
        self.clock = clock
        self.model_id: str | None = None  # pinned by the first message
        self.foreign: dict[str, int] = {}
        self._last_correction_warning = -float("inf")

    def receive(self, model_id: str, frame_index: int, values: np.ndarray) -> Received:
        if self.model_id is None:
            self.model_id = model_id
            self._check_detector(model_id)
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

    def _check_detector(self, model_id: str) -> None:
        from kp_motion.forecasting.checkpoint import detector_mismatch

        if self.forecaster is None:
            return
        if warning := detector_mismatch(self.forecaster, model_id):
            self.warn(warning)

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


class PredictiveStream:
    """A predictive stream's receiver (kp_motion.stream.predictive.PredictiveReceiver) behind
    the interface of the schedule's Receiver (receive, predict_until, stats), so that
    KeypointReceiver and the forecaster node serve both policies. Forecast frames are
    PREDICTED, or CONCEALED after a loss the max_gap rule detects (kp_motion.stream.predictive);
    end() takes the sender's end marker."""

    def __init__(self, forecaster, max_gap: int) -> None:
        from kp_motion.stream.predictive import PredictiveReceiver

        self.inner = PredictiveReceiver(forecaster, max_gap)

    def receive(self, frame_index: int, values: np.ndarray) -> list:
        return self.inner.receive(frame_index, values)

    def predict_until(self, frame_index: int) -> list:
        return self.inner.predict_until(frame_index)

    def end(self, last_index: int) -> list:
        return self.inner.end(last_index)

    @property
    def stats(self):
        from kp_motion.forecasting.schedule import ReceiverStats

        inner = self.inner.stats
        return ReceiverStats(received=inner.received, detected=inner.detected,
                             predicted=inner.forecast, concealed=inner.concealed,
                             dropped=inner.late, resets=inner.resets,
                             inputs_corrected=self.inner.state.sanitizer.total)


def frame_stamp_ns(origin_ns: int, period_ns: int, frame_index: int) -> int:
    """Capture stamp of frame_index on the stream's frame clock (frame 0 captured at origin)."""
    return origin_ns + frame_index * period_ns


def due_frame(now_ns: int, origin_ns: int, period_ns: int, wait_ns: int) -> int:
    """The last frame whose deadline has passed at now_ns: frame i is due one period plus the
    wait budget after its capture time (-1 while none is)."""
    return (now_ns - origin_ns - period_ns - wait_ns) // period_ns


@dataclass(frozen=True)
class StreamDescription:
    """What a compact stream's packets do not repeat (msg/KeypointStream.msg)."""

    stream_id: int
    model_id: str
    frame_id: str
    origin_ns: int  # capture stamp of frame_index 0
    fps: float


class PacketUnpacker:
    """Compact packets of the described stream -> (frame_index, values) in arrival order;
    the end marker (wire.FLAG_END) comes out as (last frame_index, None).

    Packets that arrive before their description (two topics: DDS does not order them) are
    held, at most `hold` of them, and unpacked when it comes. A packet of another stream id,
    or a malformed one, raises ValueError (the node counts and warns)."""

    def __init__(self, hold: int) -> None:
        self.description: StreamDescription | None = None
        self.hold = hold
        self.pending: list[bytes] = []
        self.last_index: int | None = None

    def describe(self, description: StreamDescription) -> list[tuple[int, np.ndarray]]:
        if self.description is not None and description != self.description:
            self.last_index = None  # a new stream: its indices start again
        self.description = description
        pending, self.pending = self.pending, []
        unpacked = []
        for packet in pending:
            try:
                unpacked.extend(self.unpack(packet))
            except ValueError:
                continue  # a held packet of another stream: nothing describes it
        return unpacked

    def unpack(self, packet: bytes) -> list[tuple[int, np.ndarray]]:
        from kp_motion.stream.wire import decode, unwrap_index

        decoded = decode(bytes(packet))
        if self.description is None:
            self.pending = (self.pending + [bytes(packet)])[-self.hold:]
            return []
        if decoded.stream_id != self.description.stream_id:
            raise ValueError(f"packet of stream {decoded.stream_id}: the description is for "
                             f"stream {self.description.stream_id}")
        frame_index = unwrap_index(decoded.frame_index, self.last_index)
        if frame_index < 0:
            raise ValueError(f"packet index {decoded.frame_index} unwraps before the stream")
        self.last_index = max(frame_index, self.last_index or 0)
        return [(frame_index, None if decoded.end else decoded.values)]
