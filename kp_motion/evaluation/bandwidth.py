"""Bandwidth of the transmitted keypoint stream: bytes per message and bytes per second.

The bytes per message are measured, not computed from a copy of the message's fields: a
Keypoint60 filled as the graph's camera and detector fill it (header.frame_id = the camera's
frame_id default in config/nodes.yaml, model_id = the evaluated detector's id) is serialised
to CDR (kp_motion.stream.message; 4-byte encapsulation header included). Transport overhead
(RTPS submessage headers, UDP/IP) is not included: it depends on the DDS vendor and on how
samples are batched into datagrams.

With prediction the sender transmits M frames and withholds N of every M + N (the method's
protocol: k true, k predicted, so M = N = k), so the stream rate scales by M / (M + N).
"""

from __future__ import annotations

from dataclasses import dataclass

from kp_motion.stream.message import keypoint60_bytes


@dataclass(frozen=True)
class StreamBandwidth:
    """Keypoint stream rates at one fps, with and without prediction."""

    message_bytes: int
    fps: float
    sent_frames: int  # M: frames transmitted per cycle
    withheld_frames: int  # N: frames predicted by the receiver per cycle

    @property
    def full_bytes_per_second(self) -> float:
        """Every frame transmitted."""
        return self.message_bytes * self.fps

    @property
    def sent_fraction(self) -> float:
        return self.sent_frames / (self.sent_frames + self.withheld_frames)

    @property
    def predicted_bytes_per_second(self) -> float:
        """Only M of every M + N frames transmitted."""
        return self.full_bytes_per_second * self.sent_fraction

    @property
    def ratio(self) -> float:
        """Predicted-stream rate divided by full-stream rate (= M / (M + N))."""
        return self.predicted_bytes_per_second / self.full_bytes_per_second

    def as_dict(self) -> dict[str, float | int]:
        return {
            "message_bytes": self.message_bytes,
            "fps": self.fps,
            "sent_frames": self.sent_frames,
            "withheld_frames": self.withheld_frames,
            "full_bytes_per_second": self.full_bytes_per_second,
            "predicted_bytes_per_second": self.predicted_bytes_per_second,
            "full_kbit_per_second": self.full_bytes_per_second * 8 / 1000,
            "predicted_kbit_per_second": self.predicted_bytes_per_second * 8 / 1000,
            "ratio": self.ratio,
        }


def stream_bandwidth(
    fps: float,
    sent_frames: int,
    withheld_frames: int,
    model_id: str,
    frame_id: str | None = None,
) -> StreamBandwidth:
    """Bandwidth of the graph's Keypoint60 stream at `fps` sending M = sent_frames of M + N
    frames; frame_id defaults to the one the graph sends."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if sent_frames < 1 or withheld_frames < 0:
        raise ValueError(
            f"need at least one sent frame and no negative withheld count, "
            f"got M={sent_frames}, N={withheld_frames}"
        )
    return StreamBandwidth(
        message_bytes=keypoint60_bytes(model_id, frame_id),
        fps=float(fps),
        sent_frames=sent_frames,
        withheld_frames=withheld_frames,
    )
