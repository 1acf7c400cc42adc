"""stats: what the keypoint stream costs on the network and how late the rendered frames are.

Topics (relative names, remapped by the graph):
    network         Keypoint60 as transmitted: messages/s and bytes/s (serialised CDR size,
                    rclpy.serialization), frames missing from the index sequence
    keypoints_full  Keypoint60 full-rate stream: frames per origin (detected, predicted,
                    concealed), and each stamp's origin for the latency split
    rendered        sensor_msgs/Image: end-to-end latency = arrival time - header.stamp
                    (capture time for detected frames; forecast frames carry an extrapolated
                    stamp, so their latency is reported separately)
    /diagnostics    diagnostic_msgs/DiagnosticArray every report_period seconds

At exit the summary is written as JSON to summary_path (when set).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

# The schedule module pulls in torch (seconds to import): import it at start-up, not on the
# first gap in the stream.
from kp_motion.forecasting.schedule import is_transmitted
from kp_motion.keypoints import Origin
from kp_motion.msg import Keypoint60
from kp_motion.ros.common import (
    KEYPOINT_QOS,
    RECORDER_QOS,
    KpMotionNode,
    Param,
    exit_process,
    run_node,
)
from kp_motion.ros.conversions import stamp_to_ns

ORIGIN_NAMES = {int(origin): origin.name.lower() for origin in Origin}
STAMP_MEMORY = 10_000  # stamps remembered to look up a rendered frame's origin


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
        "mean_ms": float(values.mean()),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": float(values.max()),
    }


class IndexGaps:
    """Frames missing from an increasing frame_index sequence (transmitted ones only)."""

    def __init__(self, m: int, n: int) -> None:
        self.m, self.n = m, n
        self.last: int | None = None
        self.missing = 0

    def add(self, frame_index: int) -> None:
        if self.last is not None and frame_index > self.last + 1:
            self.missing += sum(
                is_transmitted(index, self.m, self.n) for index in range(self.last + 1, frame_index)
            )
        if self.last is None or frame_index > self.last:
            self.last = frame_index


class StatsNode(KpMotionNode):
    config_key = "stats"
    params = (
        Param("report_period", float, "seconds between diagnostics and log lines", 0.1, 3600.0),
        Param("summary_path", str, "JSON summary written at exit (empty = none)"),
        Param("fps", float, "frame rate of the stream (for bytes per stream second)", 0.1, 1000.0),
        Param("m", int, "transmitted frames per cycle (to count lost frames)", 1, 10_000),
        Param("n", int, "withheld frames per cycle", 0, 10_000),
    )

    def __init__(self) -> None:
        super().__init__()
        self.network = RateMeter()
        self.gaps = IndexGaps(self.settings["m"], self.settings["n"])
        self.origins = {name: 0 for name in ORIGIN_NAMES.values()}
        self.stamp_origin: OrderedDict[int, str] = OrderedDict()
        self.latencies: dict[str, list[float]] = {name: [] for name in ORIGIN_NAMES.values()}
        self.rendered = 0
        self.started = time.time()
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Keypoint60, "network", self._on_network, KEYPOINT_QOS)
        self.create_subscription(Keypoint60, "keypoints_full", self._on_full, KEYPOINT_QOS)
        # Every rendered frame is counted, and its latency kept, even while this executor is busy.
        self.create_subscription(Image, "rendered", self._on_rendered, RECORDER_QOS)
        self.create_timer(self.settings["report_period"], self._report)
        self.announce_ready()

    def _on_network(self, message: Keypoint60) -> None:
        self.network.add(len(serialize_message(message)), time.monotonic())
        self.gaps.add(int(message.frame_index))

    def _on_full(self, message: Keypoint60) -> None:
        name = ORIGIN_NAMES.get(int(message.origin))
        if name is None:
            self.reject("unknown origin", f"origin {message.origin} of frame {message.frame_index}")
            return
        self.origins[name] += 1
        self.stamp_origin[stamp_to_ns(message.header.stamp)] = name
        while len(self.stamp_origin) > STAMP_MEMORY:
            self.stamp_origin.popitem(last=False)

    def _on_rendered(self, message: Image) -> None:
        latency = (self.get_clock().now().nanoseconds - stamp_to_ns(message.header.stamp)) / 1e9
        origin = self.stamp_origin.get(stamp_to_ns(message.header.stamp), "detected")
        self.latencies[origin].append(latency)
        self.rendered += 1

    def summary(self) -> dict[str, Any]:
        network = self.network.summary()
        full_frames = sum(self.origins.values())
        stream_seconds = full_frames / self.settings["fps"]
        network["bytes_per_stream_second"] = network["bytes"] / stream_seconds if full_frames else 0
        network["frames_lost"] = self.gaps.missing
        all_latencies = [value for values in self.latencies.values() for value in values]
        latency = {"all": latency_summary(all_latencies)}
        latency.update({name: latency_summary(values) for name, values in self.latencies.items()})
        return {
            "network": network,
            "keypoints_full": {"frames": full_frames, **self.origins},
            "rendered": {"frames": self.rendered, "latency": latency},
            "rejected": dict(self.rejected),
            "schedule": {"m": self.settings["m"], "n": self.settings["n"]},
            "fps": self.settings["fps"],
        }

    def _report(self) -> None:
        summary = self.summary()
        network, latency = summary["network"], summary["rendered"]["latency"]["all"]
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name="kp_motion: stream",
                                  hardware_id=self.get_name())
        status.message = (
            f"{network['bytes_per_second']:.0f} B/s, {network['messages_per_second']:.1f} msg/s "
            f"on the network; {summary['rendered']['frames']} frames rendered"
        )
        pairs = {
            "network_bytes_per_second": network["bytes_per_second"],
            "network_messages_per_second": network["messages_per_second"],
            "network_messages": network["messages"],
            "frames_lost": network["frames_lost"],
            "frames_detected": summary["keypoints_full"]["detected"],
            "frames_predicted": summary["keypoints_full"]["predicted"],
            "frames_concealed": summary["keypoints_full"]["concealed"],
            "frames_rendered": summary["rendered"]["frames"],
            "latency_mean_ms": latency.get("mean_ms", float("nan")),
            "latency_p95_ms": latency.get("p95_ms", float("nan")),
        }
        status.values = [KeyValue(key=key, value=f"{value:g}") for key, value in pairs.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics.publish(array)
        self.get_logger().info(status.message, throttle_duration_sec=10.0)

    def write_summary(self) -> None:
        path = self.settings["summary_path"]
        if path:
            Path(path).expanduser().write_text(json.dumps(self.summary(), indent=2) + "\n")

    def on_exit(self) -> None:
        self.write_summary()


def main(args: list[str] | None = None) -> int:
    return run_node(StatsNode, args)


if __name__ == "__main__":
    exit_process(main())
