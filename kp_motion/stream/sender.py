"""The sender's side of the stream: which frame a capture is, whether it is transmitted, and
its keypoints.

frame_index comes from the capture stamps (FrameIndexer): 0 for the first image, then each image
advances it by the number of frame periods (1 / fps) between its stamp and the previous one's,
at least 1. An image lost before detection thus leaves a gap in frame_index (which the receiver
conceals) instead of shifting every later index, and timing jitter below half a period changes
nothing.

Transmit policy: fixed (the method's schedule): of every m + n frames the first m are detected
and transmitted, the other n are withheld (the receiver forecasts them;
kp_motion.forecasting.schedule). predictive: every frame is detected and offered to a mirror of
the receiver's forecaster (kp_motion.stream.predictive.PredictiveSender), which withholds it
when the receiver's forecast is close enough; a transmitted frame carries the values the
receiver decodes from the wire. drop_probability simulates a lossy network by also dropping
that share of the transmitted frames (seeded), after the policy decided (the mirror believes
them sent, as a real sender would).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from kp_motion.names import FLOAT32

# Why a captured frame is not transmitted.
WITHHELD = "withheld"  # the schedule leaves it to the receiver's forecaster
DROPPED = "dropped"  # lost on the simulated network
NON_FINITE = "non-finite detection"  # the detector produced NaN or inf


class FrameIndexer:
    """Capture stamps (ns) -> frame indices, counting frame periods between consecutive stamps."""

    def __init__(self, fps: float) -> None:
        self.period_ns = 1e9 / fps
        self.last_stamp: int | None = None
        self.first_stamp: int | None = None  # capture stamp of frame_index 0: the frame clock
        self.last_index = -1

    def index(self, stamp_ns: int) -> int:
        if self.last_stamp is None:
            steps = 1
            self.first_stamp = stamp_ns
        else:
            # A stamp that goes backwards (a restarted camera) still advances by one frame.
            steps = max(1, round((stamp_ns - self.last_stamp) / self.period_ns))
        self.last_stamp = stamp_ns
        self.last_index += steps
        return self.last_index


class TransmitGate:
    """Decides per frame_index whether a frame goes on the network (schedule + simulated loss)."""

    def __init__(self, m: int, n: int, drop_probability: float, seed: int) -> None:
        from kp_motion.forecasting.schedule import is_transmitted

        is_transmitted(0, m, n)  # validates the schedule
        self._is_transmitted = is_transmitted
        self.m, self.n = m, n
        self.drop_probability = drop_probability
        self._random = np.random.default_rng(seed)
        self.withheld = 0
        self.dropped = 0
        self.passed = 0

    def scheduled(self, frame_index: int) -> bool:
        """True when the schedule transmits this frame (it must then be detected)."""
        if self._is_transmitted(frame_index, self.m, self.n):
            return True
        self.withheld += 1
        return False

    def survives_network(self) -> bool:
        """The simulated network: False for a transmitted frame that gets lost."""
        if self.drop_probability > 0 and self._random.random() < self.drop_probability:
            self.dropped += 1
            return False
        self.passed += 1
        return True


def upscale_note(shape: tuple[int, ...], model_size: tuple[int, int], what: str) -> str | None:
    """A warning when an image smaller than the model's input (e.g. 1x1) is about to be
    enlarged to it: the model then sees a blur, and its keypoints mean little."""
    height, width = shape[:2]
    if height >= model_size[0] and width >= model_size[1]:
        return None
    return (f"{what} of {width}x{height} pixels is upscaled to the model's "
            f"{model_size[1]}x{model_size[0]}: its keypoints will be unreliable")


class FrameDetector:
    """A FOMM keypoint detector as a function of one uint8 RGB frame -> its 60 values.

    `warn` hears (once per input size) that a frame smaller than the model is upscaled.
    """

    def __init__(self, kp_detector, image_size: tuple[int, int], device,
                 warn: Callable[[str], None] | None = None) -> None:
        self.kp_detector = kp_detector
        self.image_size = image_size
        self.device = device
        self.warn = warn
        self._sizes_warned: set[tuple[int, ...]] = set()

    def _check_size(self, frame: np.ndarray) -> None:
        note = upscale_note(frame.shape, self.image_size, "an input image")
        if note and self.warn is not None and frame.shape[:2] not in self._sizes_warned:
            self._sizes_warned.add(frame.shape[:2])
            self.warn(note)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import torch

        from kp_motion.data.video_io import resize_frame, to_tensor
        from kp_motion.models.animator import keypoints_to_values

        self._check_size(frame)
        frame = resize_frame(frame, self.image_size)
        with torch.inference_mode():
            keypoints = self.kp_detector(to_tensor(frame).to(self.device))
        return keypoints_to_values(keypoints)[0]


@dataclass(frozen=True)
class Capture:
    """What became of one captured frame: values is None when it is not transmitted."""

    frame_index: int
    values: np.ndarray | None
    reason: str | None = None  # WITHHELD, DROPPED or NON_FINITE when values is None


class KeypointSender:
    """Captured frames -> the keypoints to transmit: index, policy, detect, simulated loss.

    `predictive` (a PredictiveSender) replaces the fixed m/n schedule; `wire` says which values
    the receiver decodes, which is what the mirror must take."""

    def __init__(self, detect: Callable[[np.ndarray], np.ndarray], fps: float, m: int, n: int,
                 drop_probability: float = 0.0, seed: int = 0, predictive=None,
                 wire: str = FLOAT32) -> None:
        from kp_motion.stream.wire import delivered

        self.detect = detect
        self.indexer = FrameIndexer(fps)
        self.gate = TransmitGate(m, n, drop_probability, seed)
        self.predictive = predictive
        self.delivered = partial(delivered, wire)
        delivered(wire, np.zeros(60, np.float32))  # an unknown wire fails here, at start-up
        self.captured = 0

    def capture(self, stamp_ns: int, frame: np.ndarray) -> Capture:
        frame_index = self.indexer.index(stamp_ns)
        self.captured += 1
        if self.predictive is None and not self.gate.scheduled(frame_index):
            return Capture(frame_index, None, WITHHELD)
        values = self.detect(frame)
        finite = bool(np.isfinite(values).all())
        if self.predictive is not None:
            # The mirror sees every frame (a non-finite one it forecasts, as the receiver will).
            values = self.predictive.offer(frame_index, values, self.delivered)
            if finite and values is None:
                self.gate.withheld += 1
                return Capture(frame_index, None, WITHHELD)
        if not finite:
            return Capture(frame_index, None, NON_FINITE)
        if not self.gate.survives_network():
            return Capture(frame_index, None, DROPPED)
        return Capture(frame_index, values)

    def summary(self) -> str:
        gate = self.gate
        policy = "predictive" if self.predictive is not None else "fixed"
        return (f"policy {policy}: received {self.captured} images "
                f"(last frame_index {self.indexer.last_index}): "
                f"{gate.passed} sent, {gate.withheld} withheld, {gate.dropped} dropped by the "
                "simulated network")
