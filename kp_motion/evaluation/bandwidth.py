"""Bandwidth of the transmitted keypoint stream: serialised Keypoint60 size and bytes per second.

Size of one serialised Keypoint60 (what rclpy.serialization.serialize_message returns: the
4-byte CDR encapsulation header, then the little-endian CDR body). In the body every primitive
is aligned to its own size (at most 8), counted from the start of the body, not of the header:

    field                          bytes                         offset after (frame_id of F
                                                                 chars, model_id of M chars)
    header.stamp.sec      int32    4                             4
    header.stamp.nanosec  uint32   4                             8
    header.frame_id       string   4 (length incl. NUL) + F + 1  13 + F
    frame_index           uint64   pad to 8, then 8              align8(13 + F) + 8 = a
    origin                uint8    1                             a + 1
    model_id              string   pad to 4, 4 + M + 1           align4(a + 1) + 5 + M = b
    values                float32[60] (fixed: no length)  pad to 4, then 240

    size = 4 + align4(b) + 240

F and M are UTF-8 byte counts. Transport overhead (RTPS submessage headers, UDP/IP) is not
included: it depends on the DDS vendor and on how samples are batched into datagrams.

With prediction the sender transmits M frames and withholds N of every M + N (the method's
protocol: k true, k predicted, so M = N = k), so the stream rate scales by M / (M + N).
"""

from __future__ import annotations

from dataclasses import dataclass

from kp_motion.keypoints import NUM_VALUES

CDR_ENCAPSULATION_BYTES = 4
FLOAT32_BYTES = 4


def _align(offset: int, alignment: int) -> int:
    return (offset + alignment - 1) // alignment * alignment


class CdrSizer:
    """Running size of a CDR body: add fields in declaration order, read `size`."""

    def __init__(self) -> None:
        self.size = 0

    def primitive(self, width: int, count: int = 1) -> CdrSizer:
        """`count` primitives of `width` bytes (a fixed-size array when count > 1)."""
        if width not in (1, 2, 4, 8):
            raise ValueError(f"CDR primitives are 1, 2, 4 or 8 bytes wide, not {width}")
        self.size = _align(self.size, width) + width * count
        return self

    def string(self, text: str) -> CdrSizer:
        """uint32 length (including the terminating NUL), then the bytes and the NUL."""
        self.primitive(4)
        self.size += len(text.encode("utf-8")) + 1
        return self

    def sequence(self, width: int, count: int) -> CdrSizer:
        """Unbounded sequence: uint32 element count, then the elements.

        The elements are aligned even when there are none: Fast-CDR (ROS 2's default
        serializer) does so, and an empty int64 sequence after a count can cost 4 bytes.
        """
        self.primitive(4)
        self.primitive(width, count)
        return self


def keypoint60_message_bytes(frame_id: str, model_id: str) -> int:
    """Serialised size of one Keypoint60 message, encapsulation header included."""
    body = CdrSizer()
    body.primitive(4).primitive(4).string(frame_id)  # std_msgs/Header
    body.primitive(8)  # frame_index
    body.primitive(1)  # origin
    body.string(model_id)
    body.primitive(FLOAT32_BYTES, NUM_VALUES)  # values
    return CDR_ENCAPSULATION_BYTES + body.size


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
    frame_id: str = "camera",
    model_id: str = "",
) -> StreamBandwidth:
    """Bandwidth of a Keypoint60 stream at `fps` sending M = sent_frames of M + N frames."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if sent_frames < 1 or withheld_frames < 0:
        raise ValueError(
            f"need at least one sent frame and no negative withheld count, "
            f"got M={sent_frames}, N={withheld_frames}"
        )
    return StreamBandwidth(
        message_bytes=keypoint60_message_bytes(frame_id, model_id),
        fps=float(fps),
        sent_frames=sent_frames,
        withheld_frames=withheld_frames,
    )
