"""Rate-distortion of the keypoint link: simulate sender and receiver over every clip of a
keypoint set, for the fixed M/N schedule and for predictive transmission, over either wire.

The simulation drives the stream classes the nodes use: the fixed schedule through
kp_motion.stream.sender.TransmitGate and kp_motion.forecasting.schedule.Receiver, predictive
transmission through kp_motion.stream.predictive; compact messages really are encoded and
decoded (kp_motion.stream.wire). Each clip is one stream (frame_index 0..T-1, fresh forecaster
states). Errors are the all-60 keypoint MSE of the receiver's output against the true frames:
`mse_all` over every frame (transmitted frames count with their quantisation error),
`mse_predicted` over the frames the receiver forecast. The network is lossless unless a drop
probability is given (then messages are counted as sent, lost or not, and the frames before a
clip's first arrived message are scored as the forecasters' neutral frame).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from kp_motion.forecasting.base import Forecaster
from kp_motion.forecasting.baselines import rest_frame
from kp_motion.forecasting.schedule import EmittedFrame, Receiver
from kp_motion.keypoints import NUM_VALUES, Origin
from kp_motion.names import FIXED, POLICIES, PREDICTIVE  # noqa: F401 (re-exported)
from kp_motion.stream import wire as wires
from kp_motion.stream.predictive import PredictiveReceiver, PredictiveSender
from kp_motion.stream.sender import TransmitGate

STREAM_ID = 0  # the simulated link carries one stream


@dataclass
class Tally:
    """Counts and squared-error sums of one setting over some clips."""

    frames: int = 0
    messages: int = 0  # messages put on the network
    predicted_frames: int = 0
    squared_all: float = 0.0
    squared_predicted: float = 0.0

    def add_clip(self, truth: np.ndarray, output: np.ndarray, forecast: np.ndarray,
                 messages: int) -> None:
        squared = ((output.astype(np.float64) - truth.astype(np.float64)) ** 2).sum(axis=1)
        self.frames += len(truth)
        self.messages += messages
        self.predicted_frames += int(forecast.sum())
        self.squared_all += float(squared.sum())
        self.squared_predicted += float(squared[forecast].sum())

    @property
    def mse_all(self) -> float:
        return self.squared_all / (self.frames * NUM_VALUES)

    @property
    def mse_predicted(self) -> float | None:
        if self.predicted_frames == 0:
            return None
        return self.squared_predicted / (self.predicted_frames * NUM_VALUES)


@dataclass
class ClipOutput:
    """What the receiver emitted for one clip: (T, 60) frames, which were forecast, messages."""

    frames: np.ndarray
    forecast: np.ndarray  # (T,) bool
    messages: int


class OutputCollector:
    """Gathers the frames a receiver emits for one clip, each index exactly once."""

    def __init__(self, length: int) -> None:
        self.frames = np.zeros((length, NUM_VALUES), np.float32)
        self.forecast = np.zeros(length, bool)
        self.seen = np.zeros(length, bool)

    def add(self, emitted: Sequence[EmittedFrame]) -> None:
        for item in emitted:
            if item.frame_index >= len(self.frames):
                continue  # forecast past the clip's end (the schedule's last withheld frames)
            if self.seen[item.frame_index]:
                raise RuntimeError(f"frame {item.frame_index} emitted twice")
            self.frames[item.frame_index] = item.values
            self.forecast[item.frame_index] = item.origin != Origin.DETECTED
            self.seen[item.frame_index] = True

    def output(self, messages: int) -> ClipOutput:
        """The clip's output; frames before the first message that arrived (only with losses)
        get the forecasters' neutral frame, since a receiver that has been sent nothing has
        nothing to show. Any other frame left out is a receiver bug."""
        first = int(np.argmax(self.seen)) if self.seen.any() else len(self.seen)
        self.frames[:first], self.forecast[:first], self.seen[:first] = rest_frame(), True, True
        if not self.seen.all():
            raise RuntimeError(f"frames {np.flatnonzero(~self.seen)[:5]} were never emitted")
        return ClipOutput(self.frames, self.forecast, messages)


def _network(drop_probability: float, seed: int):
    """A function that says whether the next message arrives (seeded loss)."""
    random = np.random.default_rng(seed)
    return lambda: not (drop_probability > 0 and random.random() < drop_probability)


def _over_wire(wire: str, frame_index: int, values: np.ndarray, last_index: int | None):
    """(frame_index, values) as the receiver reads them from one message of `wire`."""
    if wire == wires.COMPACT:
        packet = wires.decode(wires.encode(STREAM_ID, frame_index, values))
        return wires.unwrap_index(packet.frame_index, last_index), packet.values
    return frame_index, wires.delivered(wire, values)


def simulate_fixed(truth: np.ndarray, forecaster: Forecaster, m: int, n: int, wire: str,
                   drop_probability: float = 0.0, seed: int = 0) -> ClipOutput:
    """One clip through the fixed M/N schedule (gate + schedule receiver)."""
    forecaster.reset()
    gate = TransmitGate(m, n, drop_probability, seed)
    receiver = Receiver(forecaster, m, n)
    collector = OutputCollector(len(truth))
    messages = 0
    for frame_index, true_frame in enumerate(truth):
        if gate.scheduled(frame_index):
            messages += 1
            if gate.survives_network():
                index, values = _over_wire(wire, frame_index, true_frame, receiver.last_emitted)
                collector.add(receiver.receive(index, values))
                continue
        collector.add(receiver.predict_until(frame_index))
    collector.add(receiver.predict_until(len(truth) - 1))
    return collector.output(messages)


@dataclass
class PredictiveRun:
    """One clip of predictive transmission: the receiver's output and the mirror's forecasts."""

    output: ClipOutput
    mirror: np.ndarray  # (T, 60): what the sender believes the receiver shows
    sent: np.ndarray  # (T,) bool: transmitted by the sender
    arrived: np.ndarray  # (T,) bool: transmitted and not lost on the network


def simulate_predictive(truth: np.ndarray, forecaster: Forecaster, threshold: float,
                        max_gap: int, wire: str, drop_probability: float = 0.0,
                        seed: int = 0, retransmit_delay: int | None = None) -> PredictiveRun:
    """One clip through predictive transmission: sender with mirror, network, receiver.

    `forecaster` is the receiver's; the sender's mirror is a copy with the same weights.
    retransmit_delay: None for a best-effort link (a lost message is gone); d >= 1 for a
    reliable one, where a lost message arrives d frames late (after its frame was forecast)
    and counts as a second message (acknowledgements and heartbeats are not counted).
    """
    if retransmit_delay is not None and retransmit_delay < 1:
        raise ValueError(f"retransmit delay must be >= 1 frame, got {retransmit_delay}")
    forecaster.reset()
    sender = PredictiveSender(copy.deepcopy(forecaster), threshold, max_gap)
    receiver = PredictiveReceiver(forecaster, max_gap)
    arrives = _network(drop_probability, seed)
    delivered = partial(wires.delivered, wire)
    collector = OutputCollector(len(truth))
    mirror = np.zeros((len(truth), NUM_VALUES), np.float32)
    sent = np.zeros(len(truth), bool)
    arrived = np.zeros(len(truth), bool)
    retransmissions: dict[int, list[int]] = {}  # arrival frame -> frames it re-delivers
    resent = 0  # each retransmission is one more message on the network
    for frame_index, true_frame in enumerate(truth):
        for late in retransmissions.pop(frame_index, []):
            index, received = _over_wire(wire, late, truth[late], receiver.last_emitted)
            collector.add(receiver.receive(index, received))
        values = sender.offer(frame_index, true_frame, delivered)
        mirror[frame_index] = sender.expected
        sent[frame_index] = values is not None
        arrived[frame_index] = sent[frame_index] and arrives()
        if arrived[frame_index]:
            index, received = _over_wire(wire, frame_index, true_frame, receiver.last_emitted)
            collector.add(receiver.receive(index, received))
            continue
        if sent[frame_index] and retransmit_delay is not None:
            retransmissions.setdefault(frame_index + retransmit_delay, []).append(frame_index)
            resent += 1
        collector.add(receiver.predict_until(frame_index))
    return PredictiveRun(collector.output(sender.sent + resent), mirror, sent, arrived)


@dataclass(frozen=True)
class Setting:
    """One point of the sweep (m, n for the fixed schedule; threshold, max_gap predictive)."""

    policy: str
    wire: str
    forecaster: str
    m: int | None = None
    n: int | None = None
    threshold: float | None = None
    max_gap: int | None = None


def simulate(setting: Setting, forecaster: Forecaster, truth: np.ndarray,
             drop_probability: float = 0.0, seed: int = 0,
             retransmit_delay: int | None = None) -> ClipOutput:
    """What the receiver emits for one clip under `setting`; retransmit_delay as in
    simulate_predictive (the fixed schedule's receiver drops late messages: best effort)."""
    loss = dict(drop_probability=drop_probability, seed=seed)
    if setting.policy == FIXED:
        return simulate_fixed(truth, forecaster, setting.m, setting.n, setting.wire, **loss)
    return simulate_predictive(truth, forecaster, setting.threshold, setting.max_gap,
                               setting.wire, retransmit_delay=retransmit_delay, **loss).output


def evaluate_setting(setting: Setting, forecaster: Forecaster, clips: Sequence[np.ndarray],
                     drop_probability: float = 0.0, seed: int = 0,
                     retransmit_delay: int | None = None) -> Tally:
    """Squared errors and messages of one setting over every clip; drop_probability > 0 loses
    that share of the messages (clip c seeded by seed + c); retransmit_delay as in simulate."""
    tally = Tally()
    for clip_number, truth in enumerate(clips):
        output = simulate(setting, forecaster, truth, drop_probability, seed + clip_number,
                          retransmit_delay)  # fmt: skip
        tally.add_clip(truth, output.frames, output.forecast, output.messages)
    return tally


def point(setting: Setting, tally: Tally, fps: float, payload: dict[str, int]) -> dict:
    """The JSON contract's entry of one setting."""
    messages_per_second = tally.messages / tally.frames * fps
    return {
        "policy": setting.policy,
        "wire": setting.wire,
        "forecaster": setting.forecaster,
        "m": setting.m,
        "n": setting.n,
        "threshold": setting.threshold,
        "max_gap": setting.max_gap,
        "payload_bytes_per_second": messages_per_second * payload[setting.wire],
        "wire_bytes_per_second": messages_per_second
        * (payload[setting.wire] + wires.TRANSPORT_OVERHEAD_BYTES),
        "mse_all": tally.mse_all,
        "mse_predicted": tally.mse_predicted,
    }


def every_frame(fps: float) -> dict[str, float]:
    """The reference: every frame sent as today's float32 Keypoint60."""
    return {"payload_bytes_per_second": wires.payload_bytes(wires.FLOAT32) * fps}


def sweep(forecasters: Sequence[str], wire_names: Sequence[str], max_m: int,
          thresholds: Sequence[float], max_gaps: Sequence[int]) -> list[Setting]:
    """Fixed M = N = 1..max_m and predictive (threshold x max_gap), per forecaster and wire."""
    settings = []
    for forecaster in forecasters:
        for wire in wire_names:
            settings += [Setting(FIXED, wire, forecaster, m=k, n=k) for k in range(1, max_m + 1)]
            settings += [Setting(PREDICTIVE, wire, forecaster, threshold=float(threshold),
                                 max_gap=int(gap))
                         for gap in max_gaps for threshold in thresholds]
    return settings
