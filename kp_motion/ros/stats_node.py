"""stats: what the keypoint stream costs on the network and how late the rendered frames are.

Topics (relative names, remapped by the graph):
    network         Keypoint60 as transmitted (wire float32): messages/s and bytes/s (serialised
                    CDR size, rclpy.serialization), frames missing from the index sequence
    packets         KeypointPacket as transmitted (wire compact), counted the same way
                    (policy predictive: no lost frames are counted, a gap is mostly withheld)
    keypoints_full  Keypoint60 full-rate stream: frames per origin (detected, predicted,
                    concealed), and each stamp's origin for the latency split
    rendered        sensor_msgs/Image: end-to-end latency = arrival time - header.stamp
                    (capture time for detected frames; forecast frames carry an extrapolated
                    stamp, so their latency is reported separately, and the diagnostics quote
                    the detected frames' latency)
    /diagnostics    diagnostic_msgs/DiagnosticArray every report_period seconds

The arithmetic is kp_motion.stream.meters.StreamStats; this node feeds it one call per message.
At exit the summary is written as JSON to summary_path (when set).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from kp_motion.msg import Keypoint60, KeypointPacket
from kp_motion.names import COMPACT, PREDICTIVE
from kp_motion.ros.common import (
    KpMotionNode,
    exit_process,
    run_node,
)
from kp_motion.ros.conversions import stamp_to_ns
from kp_motion.ros.qos import KEYPOINT_QOS, RECORDER_QOS
from kp_motion.stream.meters import StreamStats


class StatsNode(KpMotionNode):
    config_key = "stats"

    def __init__(self) -> None:
        super().__init__()
        s = self.settings
        from kp_motion.stream.wire import TRANSPORT_OVERHEAD_BYTES

        self.stats = StreamStats(s["fps"], s["m"], s["n"], TRANSPORT_OVERHEAD_BYTES,
                                 count_gaps=s["policy"] != PREDICTIVE)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.last_packet_index: int | None = None  # packets carry frame_index mod 2^16
        if s["wire"] == COMPACT:
            self.create_subscription(KeypointPacket, "packets", self._on_packet, KEYPOINT_QOS)
        else:
            self.create_subscription(Keypoint60, "network", self._on_network, KEYPOINT_QOS)
        self.create_subscription(Keypoint60, "keypoints_full", self._on_full, KEYPOINT_QOS)
        # Every rendered frame is counted, and its latency kept, even while this executor is busy.
        self.create_subscription(Image, "rendered", self._on_rendered, RECORDER_QOS)
        self.create_timer(s["report_period"], self._report)
        self.announce_ready()

    def _on_network(self, message: Keypoint60) -> None:
        self.stats.on_network(len(serialize_message(message)), int(message.frame_index),
                              time.monotonic())

    def _on_packet(self, message: KeypointPacket) -> None:
        from kp_motion.stream.wire import decode, unwrap_index

        try:
            packet = decode(bytes(message.packet))
        except ValueError as error:
            self.reject("malformed packet", str(error))
            return
        frame_index = unwrap_index(packet.frame_index, self.last_packet_index)
        self.last_packet_index = max(frame_index, self.last_packet_index or 0)
        self.stats.on_network(len(serialize_message(message)), frame_index, time.monotonic(),
                              carries_frame=not packet.end)

    def _on_full(self, message: Keypoint60) -> None:
        if not self.stats.on_full(int(message.origin), stamp_to_ns(message.header.stamp)):
            self.reject("unknown origin", f"origin {message.origin} of frame {message.frame_index}")

    def _on_rendered(self, message: Image) -> None:
        self.stats.on_rendered(stamp_to_ns(message.header.stamp),
                               self.get_clock().now().nanoseconds)

    def summary(self) -> dict[str, Any]:
        return self.stats.summary(self.rejected)

    def _report(self) -> None:
        summary = self.summary()
        # Capture-to-display latency: only detected frames carry a capture stamp.
        network, latency = summary["network"], summary["rendered"]["latency"]["detected"]
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name="kp_motion: stream",
                                  hardware_id=self.get_name())
        status.message = (
            f"{network['bytes_per_second']:.0f} B/s, {network['messages_per_second']:.1f} msg/s "
            f"on the network; per second of video {network['payload_bytes_per_second']:.0f} B "
            f"payload, {network['wire_bytes_per_second']:.0f} B on the wire, "
            f"{100 * network['frames_sent_share']:.0f} % of frames sent; "
            f"{summary['rendered']['frames']} frames rendered"
        )
        pairs = {
            "network_bytes_per_second": network["bytes_per_second"],
            "network_messages_per_second": network["messages_per_second"],
            "network_messages": network["messages"],
            "payload_bytes_per_second": network["payload_bytes_per_second"],
            "wire_bytes_per_second": network["wire_bytes_per_second"],
            "frames_sent_share": network["frames_sent_share"],
            "frames_lost": (network["frames_lost"] if network["frames_lost"] is not None
                            else float("nan")),
            "frames_detected": summary["keypoints_full"]["detected"],
            "frames_predicted": summary["keypoints_full"]["predicted"],
            "frames_concealed": summary["keypoints_full"]["concealed"],
            "frames_rendered": summary["rendered"]["frames"],
            "latency_detected_mean_ms": latency.get("mean_ms", float("nan")),
            "latency_detected_p95_ms": latency.get("p95_ms", float("nan")),
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
