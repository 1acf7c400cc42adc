"""Node processes over real DDS: malformed input is logged and skipped, start-up errors exit
non-zero with one readable line, SIGINT / SIGTERM end a node cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
from ros_helpers import SIZE, child_env, make_checkpoint, write_clip

from conftest import REPO_ROOT

pytestmark = pytest.mark.ros

MODEL_WAIT_S = 90  # node start-up (torch import, model load) on 2 busy cores


def _start(spec, env, log_dir):
    from kp_motion.ros.commands import command_line
    from kp_motion.ros.processes import NodeProcess

    return NodeProcess(spec, command_line(spec, log_dir / "parameters"),
                       log_dir / f"{spec.name}.log", env=env)


def _wait_ready(processes, timeout_s=MODEL_WAIT_S):
    deadline = time.monotonic() + timeout_s
    for process in processes:
        while not process.ready.wait(0.1):
            assert process.alive(), "\n".join(process.tail)
            assert time.monotonic() < deadline, f"{process.name} not ready:\n" + "\n".join(
                process.tail)


class Probe:
    """The test's own rclpy node: publishers and recorded subscriptions."""

    def __init__(self):
        import rclpy

        rclpy.init()
        self.node = rclpy.create_node("malformed_input_probe")
        self.received: dict[str, list] = {}

    def listen(self, message_type, topic, qos):
        self.received[topic] = []
        self.node.create_subscription(message_type, topic, self.received[topic].append, qos)

    def spin_until(self, condition, timeout_s: float) -> bool:
        import rclpy

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if condition():
                return True
        return False

    def close(self):
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown()


def _bad_images(stamp):
    from sensor_msgs.msg import Image

    wrong_encoding = Image(height=SIZE, width=SIZE, encoding="32FC1", step=SIZE * 4)
    wrong_encoding.data = bytes(SIZE * SIZE * 4)
    zero_size = Image(height=0, width=0, encoding="rgb8", step=0)
    for image in (wrong_encoding, zero_size):
        image.header.stamp = stamp
    return [wrong_encoding, zero_size]


def test_malformed_input_is_logged_and_skipped_and_nodes_keep_serving(tmp_path, ros_env):
    from ros_helpers import clip_frames
    from sensor_msgs.msg import Image

    from kp_motion.models.checkpoint import load_model, model_id
    from kp_motion.msg import Keypoint60
    from kp_motion.ros.conversions import array_to_image, keypoints_to_message, ns_to_stamp
    from kp_motion.ros.graph import NodeSpec
    from kp_motion.ros.qos import CLIP_IMAGE_QOS, KEYPOINT_QOS, RENDERED_QOS

    checkpoint = make_checkpoint(tmp_path / "model")
    identifier = model_id(*load_model(checkpoint)[:2])
    source = write_clip(tmp_path / "source", 1) / "000000.png"
    specs = [
        NodeSpec("keypoint_detector", "keypoint_detector", "sender",
                 {"checkpoint": str(checkpoint), "device": "cpu", "m": 1, "n": 0, "fps": 10.0,
                  "reliable_images": True, "wait_for_subscribers": 1},
                 (("image", "/t/image"), ("keypoints", "/t/detected"))),
        NodeSpec("forecaster", "forecaster", "receiver",
                 {"forecaster": "hold-last", "m": 1, "n": 0, "wait_for_subscribers": 1},
                 (("keypoints", "/t/network"), ("keypoints_full", "/t/full"))),
        NodeSpec("renderer", "renderer", "receiver",
                 {"checkpoint": str(checkpoint), "device": "cpu", "source_image": str(source),
                  "overlay": False},
                 (("keypoints", "/t/render_in"), ("rendered", "/t/rendered"))),
    ]
    env = child_env(ros_env)
    processes = [_start(spec, env, tmp_path) for spec in specs]
    probe = Probe()
    try:
        probe.listen(Keypoint60, "/t/detected", KEYPOINT_QOS)
        probe.listen(Keypoint60, "/t/full", KEYPOINT_QOS)
        probe.listen(Image, "/t/rendered", RENDERED_QOS)
        # a clip's camera (the detector has reliable_images)
        images = probe.node.create_publisher(Image, "/t/image", CLIP_IMAGE_QOS)
        network = probe.node.create_publisher(Keypoint60, "/t/network", KEYPOINT_QOS)
        render_in = probe.node.create_publisher(Keypoint60, "/t/render_in", KEYPOINT_QOS)
        _wait_ready(processes)
        assert probe.spin_until(lambda: all(p.get_subscription_count() for p in
                                            (images, network, render_in)), 30)
        probe.spin_until(lambda: False, 0.5)  # let discovery settle on the nodes' side

        stamp = ns_to_stamp(1_000_000_000)
        for bad in _bad_images(stamp):
            images.publish(bad)
        images.publish(array_to_image(clip_frames(1)[0], ns_to_stamp(1_000_000_000), "cam"))

        good = np.tile(np.array([0.1, -0.2], np.float32), 10).tolist() + [1, 0, 0, 1] * 10
        nan_values = np.array(good, np.float32)
        nan_values[3] = np.nan

        def keypoints(values, index, model):
            return keypoints_to_message(np.asarray(values, np.float32), frame_index=index,
                                        origin=0, model_id=model,
                                        stamp=ns_to_stamp(2_000_000_000 + index), frame_id="cam")

        network.publish(keypoints(nan_values, 0, identifier))
        network.publish(keypoints(good, 1, identifier))
        render_in.publish(keypoints(good, 0, "another-detector"))
        render_in.publish(keypoints(nan_values, 1, identifier))
        render_in.publish(keypoints(good, 2, identifier))

        received = probe.received
        assert probe.spin_until(
            lambda: received["/t/detected"] and received["/t/full"] and received["/t/rendered"],
            60), {topic: len(messages) for topic, messages in received.items()}
        probe.spin_until(lambda: False, 0.5)  # anything else that would (wrongly) arrive
    finally:
        probe.close()
        codes = [process.stop(10.0) for process in processes]

    # Each node skipped the bad message and served the good one after it.
    assert [m.frame_index for m in received["/t/detected"]] == [0]
    assert [m.frame_index for m in received["/t/full"]] == [1]
    assert len(received["/t/rendered"]) == 1
    assert received["/t/rendered"][0].header.stamp.nanosec == 2
    assert (received["/t/rendered"][0].height, received["/t/rendered"][0].width) == (SIZE, SIZE)
    logs = {spec.name: (tmp_path / f"{spec.name}.log").read_text() for spec in specs}
    assert "unsupported image encoding '32FC1'" in logs["keypoint_detector"]
    assert "zero-size image" in logs["keypoint_detector"]
    assert "NaN" in logs["forecaster"]
    assert "refusing keypoints with model_id 'another-detector'" in logs["renderer"]
    assert "NaN" in logs["renderer"]
    assert codes == [0, 0, 0], logs


def test_start_up_errors_exit_non_zero_with_one_readable_line(tmp_path, ros_env):
    from kp_motion.ros.commands import command_line
    from kp_motion.ros.graph import NodeSpec

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"this is not a video")
    cases = [
        (NodeSpec("camera", "camera", "sender", {"input": str(tmp_path / "none.mp4")}),
         "input not found"),
        (NodeSpec("camera", "camera", "sender", {"input": str(corrupt)}),
         "no frames could be decoded"),
        (NodeSpec("camera", "camera", "sender", {"fps": 0.0}), "out of range"),
        (NodeSpec("renderer", "renderer", "receiver", {"checkpoint": str(tmp_path / "nope")}),
         "checkpoint not found"),
        (NodeSpec("forecaster", "forecaster", "receiver", {"forecaster": "oracle"}),
         "is not one of"),
    ]
    env = child_env(ros_env)
    processes = [subprocess.Popen(command_line(spec, tmp_path / f"parameters{index}"), env=env,
                                  cwd=REPO_ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for index, (spec, _) in enumerate(cases)]
    for process, (spec, complaint) in zip(processes, cases, strict=True):
        stdout, stderr = process.communicate(timeout=MODEL_WAIT_S)
        errors = [line for line in (stdout + stderr).splitlines() if "[ERROR]" in line]
        assert process.returncode == 2, (spec.name, stderr)
        assert len(errors) == 1 and complaint in errors[0], stderr
        assert "Traceback" not in stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_node_cleanly_and_stats_writes_its_summary(tmp_path, ros_env,
                                                                     stop_signal):
    from diagnostic_msgs.msg import DiagnosticArray

    from kp_motion.ros.graph import READY_MARKER, NodeSpec

    summary = tmp_path / "stats.json"
    spec = NodeSpec("stats", "stats", "receiver",
                    {"summary_path": str(summary), "report_period": 0.2})
    process = _start(spec, child_env(ros_env), tmp_path)
    probe = Probe()
    try:
        probe.listen(DiagnosticArray, "/diagnostics", 10)
        _wait_ready([process])
        assert probe.spin_until(lambda: probe.received["/diagnostics"], 30)
    finally:
        probe.close()
    status = probe.received["/diagnostics"][0].status[0]
    assert status.name == "kp_motion: stream"
    assert {"network_bytes_per_second", "latency_detected_mean_ms", "frames_concealed"} <= {
        pair.key for pair in status.values}
    process.process.send_signal(stop_signal)
    assert process.process.wait(30) == 0
    process.close()
    assert json.loads(summary.read_text())["network"]["messages"] == 0
    assert READY_MARKER in (tmp_path / "stats.log").read_text()


def test_the_deprecated_wait_parameters_still_hold_the_renderer_and_say_so(tmp_path, ros_env):
    from sensor_msgs.msg import Image

    from kp_motion.models.checkpoint import load_model, model_id
    from kp_motion.msg import Keypoint60
    from kp_motion.ros.conversions import keypoints_to_message, ns_to_stamp
    from kp_motion.ros.graph import NodeSpec
    from kp_motion.ros.qos import KEYPOINT_QOS, RENDERED_QOS

    checkpoint = make_checkpoint(tmp_path / "model")
    identifier = model_id(*load_model(checkpoint)[:2])
    source = write_clip(tmp_path / "source", 1) / "000000.png"
    spec = NodeSpec("renderer", "renderer", "receiver",
                    {"checkpoint": str(checkpoint), "device": "cpu", "source_image": str(source),
                     "wait_for_subscribers": 1, "wait_for_overlay_subscribers": 1},
                    (("keypoints", "/w/in"), ("rendered", "/w/rendered"),
                     ("overlay", "/w/overlay")))
    process = _start(spec, child_env(ros_env), tmp_path)
    probe = Probe()
    try:
        keypoints_in = probe.node.create_publisher(Keypoint60, "/w/in", KEYPOINT_QOS)
        loaded = probe.spin_until(lambda: any("generator" in line for line in process.tail),
                                  MODEL_WAIT_S)
        assert loaded, "\n".join(process.tail)
        probe.listen(Image, "/w/rendered", RENDERED_QOS)
        # One of two outputs watched: frames would be lost to the overlay's consumer.
        assert not probe.spin_until(lambda: keypoints_in.get_subscription_count(), 3.0)
        assert not process.ready.is_set()
        probe.listen(Image, "/w/overlay", RENDERED_QOS)
        assert probe.spin_until(lambda: keypoints_in.get_subscription_count(), 30)
        _wait_ready([process])
        probe.spin_until(lambda: False, 0.5)  # let discovery settle on the node's side
        values = np.tile(np.array([0.1, -0.2], np.float32), 10).tolist() + [1, 0, 0, 1] * 10
        keypoints_in.publish(keypoints_to_message(
            np.asarray(values, np.float32), frame_index=0, origin=0, model_id=identifier,
            stamp=ns_to_stamp(3_000_000_000), frame_id="cam"))
        received = probe.received
        assert probe.spin_until(lambda: received["/w/rendered"] and received["/w/overlay"], 60)
    finally:
        probe.close()
        code = process.stop(10.0)
    assert code == 0
    log = (tmp_path / "renderer.log").read_text()
    assert "parameter wait_for_subscribers=1 is deprecated" in log
    assert "parameter wait_for_overlay_subscribers=1 is deprecated" in log
