"""H.264 for context: the bitrate libx264 needs to reach a given PSNR on a clip.

A clip (T, H, W, 3) uint8 RGB is encoded in memory (PyAV, libx264, yuv420p, average-bitrate
rate control, mp4 container), decoded back and scored with the clip PSNR of metrics.video_psnr
(10 log10(1 / mean per-frame MSE), pixels in [0, 1]). A bisection over the requested bitrate,
on a log scale, finds the lowest tested bitrate whose PSNR reaches the target. The reported
bitrate is the measured one: the H.264 payload (sum of encoded packet sizes, container headers
excluded) in kbit/s over the clip's duration, since the encoder does not hit the requested rate
exactly, least of all on short clips.

yuv420p needs even frame sizes, so an odd last row/column is cropped from both the encoded clip
and the reference it is scored against.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from kp_motion.evaluation.metrics import video_psnr


@dataclass(frozen=True)
class EncodedClip:
    requested_kbps: float
    payload_bytes: int
    container_bytes: int
    kbps: float  # measured payload bitrate
    psnr: float


@dataclass
class BitrateMatch:
    """Result of the bitrate search for one target PSNR."""

    target_psnr: float
    reached: bool  # False when even the highest bitrate tried stays below the target
    best: EncodedClip  # lowest-bitrate encoding that reached the target (else the highest tried)
    trials: list[EncodedClip] = field(default_factory=list)
    # True when already the lowest bitrate allowed reaches the target: the bitrate H.264 really
    # needs may be lower still (an upper bound, not a match).
    at_minimum: bool = False

    @property
    def kbps(self) -> float:
        return self.best.kbps

    def as_dict(self) -> dict[str, float | bool | int]:
        return {
            "target_psnr": self.target_psnr,
            "reached": self.reached,
            "kbps": self.best.kbps,
            "psnr": self.best.psnr,
            "requested_kbps": self.best.requested_kbps,
            "trials": len(self.trials),
            "at_minimum": self.at_minimum,
        }


def _even_crop(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected a (T, H, W, 3) uint8 RGB clip, got {frames.shape} {frames.dtype}"
        )
    height, width = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    if height == 0 or width == 0 or frames.shape[0] == 0:
        raise ValueError(f"clip too small to encode: {frames.shape}")
    return frames[:, :height, :width]


def encode_decode(
    frames: np.ndarray, fps: float, kbps: float, preset: str = "medium"
) -> tuple[np.ndarray, int, int]:
    """Encode with libx264 at ~kbps, decode; -> (decoded frames, payload bytes, mp4 bytes)."""
    frames = _even_crop(frames)
    buffer = io.BytesIO()
    payload = 0
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(kbps * 1000)
        # One thread: evaluation runs beside other work, and results must not depend on it.
        stream.codec_context.options = {"preset": preset, "threads": "1"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                payload += packet.size
                container.mux(packet)
        for packet in stream.encode():
            payload += packet.size
            container.mux(packet)
    data = buffer.getvalue()
    with av.open(io.BytesIO(data), mode="r") as container:
        decoded = np.stack(
            [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        )
    if decoded.shape != frames.shape:
        raise RuntimeError(f"H.264 round trip changed the clip: {frames.shape} -> {decoded.shape}")
    return decoded, payload, len(data)


def clip_psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Clip PSNR (of the mean per-frame MSE) of two uint8 clips, pixels scaled to [0, 1]."""
    difference = (reference.astype(np.float64) - decoded.astype(np.float64)) / 255.0
    frame_mse = (difference**2).reshape(difference.shape[0], -1).mean(axis=1)
    return video_psnr(frame_mse)


def measure(frames: np.ndarray, fps: float, kbps: float, preset: str = "medium") -> EncodedClip:
    """Encode at a requested bitrate and measure the real bitrate and PSNR."""
    frames = _even_crop(frames)
    decoded, payload, container_bytes = encode_decode(frames, fps, kbps, preset)
    duration = frames.shape[0] / fps
    return EncodedClip(
        requested_kbps=kbps,
        payload_bytes=payload,
        container_bytes=container_bytes,
        kbps=payload * 8 / 1000 / duration,
        psnr=clip_psnr(frames, decoded),
    )


def bitrate_for_psnr(
    frames: np.ndarray,
    fps: float,
    target_psnr: float,
    min_kbps: float = 1.0,
    max_kbps: float = 20000.0,
    relative_tolerance: float = 0.05,
    max_trials: int = 16,
    preset: str = "medium",
) -> BitrateMatch:
    """Lowest bitrate (bisection on log scale) at which H.264 reaches `target_psnr` dB."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 0 < min_kbps < max_kbps:
        raise ValueError(f"need 0 < min_kbps < max_kbps, got {min_kbps}, {max_kbps}")
    if math.isnan(target_psnr):
        raise ValueError("target PSNR is NaN")
    trials: list[EncodedClip] = []

    def trial(kbps: float) -> EncodedClip:
        result = measure(frames, fps, kbps, preset)
        trials.append(result)
        return result

    high = trial(max_kbps)
    if high.psnr < target_psnr:
        return BitrateMatch(target_psnr, reached=False, best=high, trials=trials)
    low = trial(min_kbps)
    if low.psnr >= target_psnr:
        return BitrateMatch(target_psnr, reached=True, best=low, trials=trials, at_minimum=True)
    # Invariant: `low` misses the target, `high` reaches it.
    while high.requested_kbps / low.requested_kbps > 1 + relative_tolerance:
        if len(trials) >= max_trials:
            break
        middle = trial(math.sqrt(low.requested_kbps * high.requested_kbps))
        if middle.psnr >= target_psnr:
            high = middle
        else:
            low = middle
    reaching = [t for t in trials if t.psnr >= target_psnr]
    best = min(reaching, key=lambda t: t.kbps)
    return BitrateMatch(target_psnr, reached=True, best=best, trials=trials)
