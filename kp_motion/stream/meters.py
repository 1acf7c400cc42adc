"""What a keypoint stream costs and how late its frames are: the stats node's arithmetic.

StreamStats takes three kinds of event (a transmitted message of some size, a frame of the
full-rate stream with its origin, a rendered frame with its capture stamp) and sums them up.
Latency is arrival time - capture stamp. Only a detected frame's stamp is a capture time: a
predicted or concealed frame carries a stamp extrapolated from the last received one, which
can lie after the frame's arrival (the forecast is rendered before its frame would have been
captured), so its "latency" can be negative. Latency is therefore reported per origin, and the
summary over every frame is named ALL_FRAMES and counts its negative values.

Rates per second of video (frames of the full-rate stream / fps), as the bandwidth evaluation
(kp-motion bandwidth) counts them: payload_bytes_per_second (serialised messages) and
wire_bytes_per_second (plus the documented per-message transport overhead,
kp_motion.stream.wire.TRANSPORT_OVERHEAD_BYTES), and frames_sent_share, the share of the
stream's frames that were transmitted messages.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from kp_motion.keypoints import Origin

ORIGIN_NAMES = {int(origin): origin.name.lower() for origin in Origin}
STAMP_MEMORY = 10_000  # stamps remembered to look up a rendered frame's origin
# Latency over every rendered frame, forecast ones (extrapolated stamps) included.
ALL_FRAMES = "all_frames_incl_forecast"
ALL_FRAMES_NOTE = ("all_frames_incl_forecast includes predicted and concealed frames, whose "
                   "extrapolated stamps can lie after their arrival (negative latencies); "
                   "detected is capture-to-display")


class RateMeter:
    """Messages and bytes over the span between the first and the last arrival."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.first_bytes = 0
        self.first_time: float | None = None
        self.last_time: float | None = None

    def add(self, size: int, now: float) -> None:
        if self.first_time is None:
            self.first_time, self.first_bytes = now, size
        self.last_time = now
        self.messages += 1
        self.bytes += size

    def summary(self) -> dict[str, float]:
        span = (self.last_time - self.first_time) if self.messages > 1 else 0.0
        # n arrivals span n - 1 intervals: the first message opens the window.
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "duration_s": span,
            "mean_message_bytes": self.bytes / self.messages if self.messages else 0.0,
            "messages_per_second": (self.messages - 1) / span if span > 0 else 0.0,
            "bytes_per_second": (self.bytes - self.first_bytes) / span if span > 0 else 0.0,
        }


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"count": 0}
    values = np.asarray(latencies_s) * 1000.0
    return {
        "count": int(values.size),
        "negative": int((values < 0).sum()),
        "mean_ms": float(values.mean()),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": float(values.max()),
    }


class IndexGaps:
    """Frames missing from an increasing frame_index sequence (transmitted ones only)."""

    def __init__(self, m: int, n: int) -> None:
        # The schedule module pulls in torch (seconds to import): at start-up, not on the
        # first gap in the stream.
        from kp_motion.forecasting.schedule import is_transmitted

        self._is_transmitted = is_transmitted
        self.m, self.n = m, n
        self.last: int | None = None
        self.missing = 0

    def add(self, frame_index: int) -> None:
        if self.last is not None and frame_index > self.last + 1:
            self.missing += sum(
                self._is_transmitted(index, self.m, self.n)
                for index in range(self.last + 1, frame_index)
            )
        if self.last is None or frame_index > self.last:
            self.last = frame_index


class StreamStats:
    """Network rate, frames per origin and end-to-end latency of one run of the graph."""

    def __init__(self, fps: float, m: int, n: int, overhead_bytes: int = 0,
                 count_gaps: bool = True) -> None:
        self.fps, self.m, self.n = fps, m, n
        self.overhead_bytes = overhead_bytes  # transport bytes per message, for wire bytes
        self.network = RateMeter()
        # Lost frames show as gaps of the fixed schedule; a predictive stream's gaps are
        # mostly withheld frames, which nothing here can tell from lost ones (None).
        self.gaps = IndexGaps(m, n) if count_gaps else None
        self.origins = {name: 0 for name in ORIGIN_NAMES.values()}
        self.stamp_origin: OrderedDict[int, str] = OrderedDict()
        self.latencies: dict[str, list[float]] = {name: [] for name in ORIGIN_NAMES.values()}
        self.rendered = 0
        self.frames_sent = 0  # network messages that carried a frame (not the end marker)

    def on_network(self, size: int, frame_index: int, now_s: float,
                   carries_frame: bool = True) -> None:
        """A transmitted message of `size` serialised bytes arrived at `now_s` (monotonic).
        The compact wire's end marker (carries_frame False) costs bytes like any message but
        is no frame sent."""
        self.network.add(size, now_s)
        if not carries_frame:
            return
        self.frames_sent += 1
        if self.gaps is not None:
            self.gaps.add(frame_index)

    def on_full(self, origin: int, stamp_ns: int) -> bool:
        """A frame of the full-rate stream; False for an origin this code does not know."""
        name = ORIGIN_NAMES.get(origin)
        if name is None:
            return False
        self.origins[name] += 1
        self.stamp_origin[stamp_ns] = name
        while len(self.stamp_origin) > STAMP_MEMORY:
            self.stamp_origin.popitem(last=False)
        return True

    def on_rendered(self, stamp_ns: int, now_ns: int) -> None:
        """A rendered frame with capture stamp `stamp_ns` arrived at `now_ns` (same clock)."""
        origin = self.stamp_origin.get(stamp_ns, ORIGIN_NAMES[int(Origin.DETECTED)])
        self.latencies[origin].append((now_ns - stamp_ns) / 1e9)
        self.rendered += 1

    def summary(self, rejected: dict[str, int] | None = None) -> dict[str, Any]:
        network = self.network.summary()
        full_frames = sum(self.origins.values())
        stream_seconds = full_frames / self.fps
        network["bytes_per_stream_second"] = network["bytes"] / stream_seconds if full_frames else 0
        network["frames_lost"] = self.gaps.missing if self.gaps is not None else None
        wire_bytes = network["bytes"] + network["messages"] * self.overhead_bytes
        network["overhead_bytes_per_message"] = self.overhead_bytes
        network["payload_bytes_per_second"] = network["bytes_per_stream_second"]
        network["wire_bytes_per_second"] = wire_bytes / stream_seconds if full_frames else 0
        network["frames_sent"] = self.frames_sent
        network["frames_sent_share"] = self.frames_sent / full_frames if full_frames else 0
        all_latencies = [value for values in self.latencies.values() for value in values]
        latency = {name: latency_summary(values) for name, values in self.latencies.items()}
        latency[ALL_FRAMES] = latency_summary(all_latencies)
        return {
            "network": network,
            "keypoints_full": {"frames": full_frames, **self.origins},
            "rendered": {"frames": self.rendered, "latency": latency,
                         "latency_note": ALL_FRAMES_NOTE},
            "rejected": dict(rejected or {}),
            "schedule": {"m": self.m, "n": self.n},
            "fps": self.fps,
        }
