"""The runner's recorder: an rclpy node in the runner's process that writes what the graph
produced as it arrives (rendered and overlay videos, the full-rate keypoints, capture stamps
in frames.json)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from kp_motion.topics import GRAPH_TOPICS


class Sink:
    """An rclpy node in the runner process that writes the graph's outputs as they arrive."""

    def __init__(self, output_dir: Path, fps: float, record_receiver: bool,
                 record_sender: bool, namespace: str = "", clip: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from kp_motion.data.video_io import VideoWriter
        from kp_motion.msg import Keypoint60
        from kp_motion.ros.qos import LIVE_RECORDER_QOS, RECORDER_QOS

        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context,
                   signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        # In the graph's namespace, so that the graph's relative topic names resolve alike.
        self.node = rclpy.create_node("kp_motion_runner_sink", context=self.context,
                                      namespace=namespace or None)
        self.lock = threading.Lock()
        self.captured: list[int] = []
        self.keypoints: list[dict[str, int]] = []
        self.rendered: list[int] = []
        self.overlays = 0
        self.last_output = time.monotonic()
        self.errors: list[str] = []
        self.writers = {}
        self.records_capture = record_sender
        if record_receiver:
            self.writers = {
                "rendered": VideoWriter(output_dir / "rendered.mp4", fps),
                "overlay": VideoWriter(output_dir / "overlay.mp4", fps),
            }
            self.node.create_subscription(Image, GRAPH_TOPICS["rendered"], self._on_rendered,
                                          RECORDER_QOS)
            self.node.create_subscription(Image, GRAPH_TOPICS["overlay"], self._on_overlay,
                                          RECORDER_QOS)
            self.node.create_subscription(Keypoint60, GRAPH_TOPICS["keypoints_full"],
                                          self._on_keypoints, RECORDER_QOS)
        if record_sender:
            # A clip's camera keeps its frames for late readers: this reader asks for them,
            # so frames sent before discovery completed are not lost to the record.
            self.node.create_subscription(Image, GRAPH_TOPICS["image"], self._on_capture,
                                          RECORDER_QOS if clip else LIVE_RECORDER_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from kp_motion.ros.common import spin_once

        while spin_once(self.executor, self.context):  # until close() shuts the context down
            pass

    def _write(self, which: str, message) -> None:
        from kp_motion.ros.conversions import image_to_array

        try:
            self.writers[which].write(image_to_array(message))
        except ValueError as error:
            self.errors.append(f"{which}: {error}")

    def _on_rendered(self, message) -> None:
        from kp_motion.ros.conversions import stamp_to_ns

        self._write("rendered", message)
        with self.lock:
            self.rendered.append(stamp_to_ns(message.header.stamp))
            self.last_output = time.monotonic()

    def _on_overlay(self, message) -> None:
        self._write("overlay", message)
        with self.lock:
            self.overlays += 1

    def _on_keypoints(self, message) -> None:
        from kp_motion.ros.conversions import stamp_to_ns

        with self.lock:
            self.keypoints.append({"frame_index": int(message.frame_index),
                                   "origin": int(message.origin),
                                   "stamp_ns": stamp_to_ns(message.header.stamp)})
            self.last_output = time.monotonic()

    def _on_capture(self, message) -> None:
        from kp_motion.ros.conversions import stamp_to_ns

        with self.lock:
            self.captured.append(stamp_to_ns(message.header.stamp))
            if not self.writers:  # with a receiver, its outputs say when the graph is done
                self.last_output = time.monotonic()

    @property
    def expects_output(self) -> bool:
        """Whether anything is recorded at all (a sender node offers no image to record)."""
        return bool(self.writers) or self.records_capture

    def has_output(self) -> bool:
        """Whether every stream recorded here (rendered frames, captured frames) has delivered
        a frame yet: each reader has matched its writer."""
        with self.lock:
            return ((bool(self.rendered) or not self.writers)
                    and (bool(self.captured) or not self.records_capture))

    def quiet_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_output

    def close(self, output_dir: Path) -> dict[str, Any]:
        import rclpy

        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        for writer in self.writers.values():
            writer.close()
        record = {
            "captured_stamps_ns": self.captured,
            "keypoints": self.keypoints,
            "rendered_stamps_ns": self.rendered,
            "overlay_frames": self.overlays,
            "errors": self.errors,
        }
        (output_dir / "frames.json").write_text(json.dumps(record) + "\n")
        for name, writer in self.writers.items():
            if writer.count == 0:  # nothing arrived: leave no empty file behind
                (output_dir / f"{name}.mp4").unlink(missing_ok=True)
        return record
