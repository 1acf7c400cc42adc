"""Unit checks of the ROS adapters without processes: conversions, parameters, node helpers."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.stream.meters import ALL_FRAMES

pytestmark = pytest.mark.ros


# --- conversions ---------------------------------------------------------------------------


def _image(pixels: np.ndarray, encoding: str, pad: int = 0):
    from sensor_msgs.msg import Image

    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    if pad:
        rows = np.concatenate([rows, np.full((height, pad), 77, np.uint8)], axis=1)
    message = Image(height=height, width=width, encoding=encoding, step=rows.shape[1])
    message.data = rows.tobytes()
    return message


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_images_of_every_encoding_become_rgb(encoding):
    from kp_motion.ros.conversions import image_to_array

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    stored = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=-1),
        "bgra8": np.concatenate([rgb[..., ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=-1),
        "mono8": rgb[..., :1],
    }[encoding]
    # Rows padded beyond width * channels (a legal `step`) must not leak into the pixels.
    frame = image_to_array(_image(np.ascontiguousarray(stored), encoding, pad=3))
    expected = np.repeat(rgb[..., :1], 3, axis=-1) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize(
    ("encoding", "height", "width", "cut", "complaint"),
    [
        ("16UC1", 4, 4, 0, "unsupported image encoding"),
        ("rgb8", 0, 4, 0, "zero-size"),
        ("rgb8", 4, 4, 5, "needs"),
    ],
)
def test_malformed_images_are_refused_with_the_reason(encoding, height, width, cut, complaint):
    from sensor_msgs.msg import Image

    from kp_motion.ros.conversions import image_to_array

    message = Image(height=height, width=width, encoding=encoding, step=width * 3)
    message.data = bytes(max(0, height * width * 3 - cut))
    with pytest.raises(ValueError, match=complaint):
        image_to_array(message)


def test_rgb_frame_and_keypoints_round_trip_with_their_headers():
    from kp_motion.ros.conversions import (
        array_to_image,
        image_to_array,
        keypoints_to_message,
        message_values,
        ns_to_stamp,
        stamp_to_ns,
    )

    stamp_ns = 1_764_000_000_123_456_789
    assert stamp_to_ns(ns_to_stamp(stamp_ns)) == stamp_ns
    frame = np.random.default_rng(1).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    image = array_to_image(frame, ns_to_stamp(stamp_ns), "cam")
    assert (image.encoding, image.step, image.header.frame_id) == ("rgb8", 12, "cam")
    np.testing.assert_array_equal(image_to_array(image), frame)

    values = np.linspace(-1, 1, 60, dtype=np.float32)
    message = keypoints_to_message(values, frame_index=7, origin=2, model_id="id",
                                   stamp=ns_to_stamp(stamp_ns), frame_id="cam")
    assert (message.frame_index, message.origin, message.model_id) == (7, 2, "id")
    assert stamp_to_ns(message.header.stamp) == stamp_ns
    np.testing.assert_array_equal(message_values(message), values)


def test_keypoint_values_with_nan_or_wrong_length_are_refused():
    from types import SimpleNamespace

    from kp_motion.ros.conversions import message_values

    nan_values = np.zeros(60, np.float32)
    nan_values[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        message_values(SimpleNamespace(values=nan_values, frame_index=3))
    with pytest.raises(ValueError, match="59 values"):
        message_values(SimpleNamespace(values=np.zeros(59, np.float32), frame_index=3))


# --- parameters: config/nodes.yaml is the one source of truth --------------------------------


def _node_classes():
    from kp_motion.ros.camera_node import CameraNode
    from kp_motion.ros.forecaster_node import ForecasterNode
    from kp_motion.ros.keypoint_detector_node import KeypointDetectorNode
    from kp_motion.ros.renderer_node import RendererNode
    from kp_motion.ros.sender_node import SenderNode
    from kp_motion.ros.stats_node import StatsNode

    return [CameraNode, KeypointDetectorNode, SenderNode, ForecasterNode, RendererNode,
            StatsNode]


def test_every_node_declares_exactly_its_table_entry():
    """The nodes declare NODE_PARAMETERS (the table argparse and the launch arguments also
    come from) with ROS descriptors carrying the table's description, range and choices."""
    from kp_motion.graph_config.parameters import NODE_PARAMETERS
    from kp_motion.ros.common import descriptor

    assert {c.config_key for c in _node_classes()} == set(NODE_PARAMETERS)
    for params in NODE_PARAMETERS.values():
        for param in params:
            described = descriptor(param)
            assert described.name == param.name
            assert described.description == param.description
            if param.kind is int and param.minimum is not None:
                assert described.integer_range[0].to_value == param.maximum
            if param.kind is float and param.minimum is not None:
                assert described.floating_point_range[0].from_value == param.minimum
            if param.choices:
                assert all(c in described.additional_constraints for c in param.choices)


def test_a_node_declares_the_table_s_parameters_with_the_yaml_defaults(ros_env):
    """A live node (stats: no model to load) as `ros2 param describe` / `get` would see it:
    the table's names and descriptions, config/nodes.yaml's defaults, a set value kept."""
    import rclpy

    from kp_motion.graph_config.parameters import NODE_PARAMETERS, node_parameter_defaults
    from kp_motion.ros.stats_node import StatsNode

    try:
        stats = _node_in_process(StatsNode, {"m": "3"})
        params = NODE_PARAMETERS["stats"]
        described = stats.describe_parameters([param.name for param in params])
        values = {param.name: stats.get_parameter(param.name).value for param in params}
    finally:
        rclpy.try_shutdown()
    assert [d.description for d in described] == [param.description for param in params]
    assert values == {**node_parameter_defaults("stats"), "m": 3}


def test_exit_process_flushes_output_and_keeps_the_status(ros_env, python_exe):
    import subprocess

    script = (
        "import sys; from kp_motion.ros.common import exit_process; "
        "print('summary line', end=''); sys.stderr.write('last words'); exit_process(3)"
    )
    result = subprocess.run(
        [python_exe, "-c", script], env=ros_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout == "summary line" and result.stderr.endswith("last words")


def _tiny_image(stamp_ns: int):
    """A 2x2 black rgb8 image stamped `stamp_ns`: a stand-in frame where only its arrival counts."""
    from sensor_msgs.msg import Image

    from kp_motion.ros.conversions import ns_to_stamp

    image = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12))
    image.header.stamp = ns_to_stamp(stamp_ns)
    return image


def test_the_runner_sink_keeps_every_frame_while_its_callbacks_are_held_up(tmp_path, ros_env):
    """The sink writes video in its callbacks and shares one executor with the capture
    recorder; a stall of a second (an encoder starting on a busy machine) must not cost
    frames. A short reader history drops the oldest unread ones (a CI run once recorded 13
    of 16)."""
    import time

    import rclpy
    from rclpy.duration import Duration
    from sensor_msgs.msg import Image

    from kp_motion.ros.qos import RELIABLE_IMAGE_QOS
    from kp_motion.ros.recorder import Sink
    from kp_motion.topics import TOPICS

    sink = Sink(tmp_path, 20.0, record_receiver=False, record_sender=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("camera_stand_in", context=context)
        publisher = node.create_publisher(Image, TOPICS["image"], RELIABLE_IMAGE_QOS)
        deadline = time.monotonic() + 30
        while publisher.get_subscription_count() < 1:
            assert time.monotonic() < deadline, "the sink's subscription never matched"
            time.sleep(0.05)
        time.sleep(0.5)  # the sink's side of discovery
        frames = 40
        with sink.lock:  # the sink's callbacks wait on this: a recorder stuck for 1.5 s
            for index in range(frames):
                publisher.publish(_tiny_image(1_000_000_000 + index))
                time.sleep(1.5 / frames)
        assert publisher.wait_for_all_acked(Duration(seconds=10))
        deadline = time.monotonic() + 10
        while len(sink.captured) < frames and time.monotonic() < deadline:
            time.sleep(0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        record = sink.close(tmp_path)
    assert record["captured_stamps_ns"] == [1_000_000_000 + i for i in range(frames)]


def _spin_until(executor, condition, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)


def _node_in_process(node_class, parameters: dict[str, str]):
    """`node_class` built in this process on the default context, with `parameters` set."""
    import rclpy

    arguments = ["--ros-args"]
    for name, value in parameters.items():
        arguments += ["-p", f"{name}:={value}"]
    rclpy.init(args=arguments)
    return node_class()


def _publish_while_stalled(executor, publisher, messages, seconds: float = 1.5) -> None:
    """Publish `messages` over `seconds` while nothing spins `executor`: the readers' callbacks
    are held up the way a busy executor holds them (DDS still delivers into their histories)."""
    import time

    from rclpy.duration import Duration

    _spin_until(executor, lambda: publisher.get_subscription_count() >= 1, 30)
    assert publisher.get_subscription_count() >= 1, "the reader never matched"
    _spin_until(executor, lambda: False, 0.5)  # the reader's side of discovery
    for message in messages:
        publisher.publish(message)
        time.sleep(seconds / len(messages))
    assert publisher.wait_for_all_acked(Duration(seconds=10))


def test_the_detector_keeps_every_clip_frame_while_its_callback_is_held_up(tmp_path, ros_env):
    """With reliable_images (a recorded clip) the detector must not lose frames to a stall of
    its executor (a slow first frame, a busy machine): each one it drops is a frame the
    receiver never renders."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from ros_helpers import clip_frames, make_checkpoint
    from sensor_msgs.msg import Image

    from kp_motion.msg import Keypoint60
    from kp_motion.ros.conversions import array_to_image, ns_to_stamp
    from kp_motion.ros.keypoint_detector_node import KeypointDetectorNode
    from kp_motion.ros.qos import CLIP_IMAGE_QOS, KEYPOINT_QOS

    checkpoint = make_checkpoint(tmp_path / "model")
    received = []
    try:
        detector = _node_in_process(KeypointDetectorNode, {
            "checkpoint": str(checkpoint), "device": "cpu", "m": "1", "n": "0", "fps": "20.0",
            "reliable_images": "true", "wait_for_subscribers": "0"})
        clip = rclpy.create_node("clip_stand_in")
        clip.create_subscription(Keypoint60, "keypoints",
                                 lambda message: received.append(message.frame_index),
                                 KEYPOINT_QOS)
        images = clip.create_publisher(Image, "image", CLIP_IMAGE_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(detector)
        executor.add_node(clip)
        frames = [array_to_image(frame, ns_to_stamp(index * 50_000_000), "cam")
                  for index, frame in enumerate(clip_frames(40))]  # fmt: skip
        _publish_while_stalled(executor, images, frames)
        _spin_until(executor, lambda: len(received) >= len(frames), 20)
    finally:
        rclpy.try_shutdown()
    assert received == list(range(len(frames)))


def test_the_stats_node_counts_every_rendered_frame_while_its_callback_is_held_up(ros_env):
    """The stats summary's latency count is every rendered frame (the graph test checks it
    against the clip's length), so a stalled executor must not cost it frames either."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from kp_motion.ros.qos import RENDERED_QOS
    from kp_motion.ros.stats_node import StatsNode

    try:
        stats = _node_in_process(StatsNode, {"m": "1", "n": "0"})
        renderer = rclpy.create_node("renderer_stand_in")
        rendered = renderer.create_publisher(Image, "rendered", RENDERED_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(stats)
        executor.add_node(renderer)
        frames = [_tiny_image(1_000_000_000 + index) for index in range(40)]
        _publish_while_stalled(executor, rendered, frames)
        _spin_until(executor, lambda: stats.stats.rendered >= len(frames), 20)
        counted = stats.summary()["rendered"]
    finally:
        rclpy.try_shutdown()
    assert counted["frames"] == len(frames)
    assert counted["latency"][ALL_FRAMES]["count"] == len(frames)


def test_a_late_recorder_in_a_namespace_still_gets_a_clips_frames(tmp_path, ros_env):
    """Nobody waits for the recorder: a clip's camera keeps its frames (transient local), and
    the runner's recorder, started after they were sent, in the graph's namespace, records
    them all; a graph in another namespace is not heard."""
    import time

    import rclpy
    from sensor_msgs.msg import Image

    from kp_motion.ros.qos import CLIP_IMAGE_QOS
    from kp_motion.ros.recorder import Sink
    from kp_motion.topics import resolved

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("camera_stand_in", context=context)
        ours = node.create_publisher(Image, resolved("image", "robot1"), CLIP_IMAGE_QOS)
        theirs = node.create_publisher(Image, resolved("image", "robot2"), CLIP_IMAGE_QOS)
        frames = 20
        for index in range(frames):
            ours.publish(_tiny_image(1_000_000_000 + index))
            theirs.publish(_tiny_image(5_000_000_000 + index))
        sink = Sink(tmp_path, 20.0, record_receiver=False, record_sender=True,
                    namespace="/robot1", clip=True)
        deadline = time.monotonic() + 30
        while len(sink.captured) < frames and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # anything from robot2 would have arrived by now
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        record = sink.close(tmp_path)
    assert record["captured_stamps_ns"] == [1_000_000_000 + i for i in range(frames)]


def test_the_readme_qos_table_is_the_code_s():
    from conftest import REPO_ROOT
    from kp_motion.ros.qos import qos_table_markdown

    readme = (REPO_ROOT / "README.md").read_text()
    assert "\n".join(qos_table_markdown()) in readme


def test_a_deprecated_wait_parameter_set_warns_and_an_unset_one_does_not(ros_env, monkeypatch):
    import rclpy

    from kp_motion.ros.common import KpMotionNode
    from kp_motion.ros.forecaster_node import ForecasterNode

    warnings: list[str] = []

    class Logger:
        def warning(self, text, **_):
            warnings.append(text)

        def info(self, text, **_):
            pass

    monkeypatch.setattr(KpMotionNode, "get_logger", lambda self: Logger())
    for wait, expected in (("0", 0), ("2", 1)):
        warnings.clear()
        try:
            _node_in_process(ForecasterNode, {"forecaster": "hold-last",
                                              "wait_for_subscribers": wait})
        finally:
            rclpy.try_shutdown()
        deprecated = [text for text in warnings if "deprecated" in text]
        assert len(deprecated) == expected, warnings
    assert "wait_for_subscribers=2 is deprecated" in deprecated[0]
    assert "QoS" in deprecated[0]
