"""Unit checks of the ROS adapters without processes: conversions, parameters, node helpers."""

from __future__ import annotations

import numpy as np
import pytest

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
    from kp_motion.ros.stats_node import StatsNode

    return [CameraNode, KeypointDetectorNode, ForecasterNode, RendererNode, StatsNode]


def test_every_declared_parameter_has_a_yaml_default_of_its_type_and_no_key_is_stray():
    from kp_motion.ros.common import _checked_default
    from kp_motion.ros.graph import WILDCARD, load_nodes_config, node_defaults

    sections = load_nodes_config()
    used_shared = set()
    for node_class in _node_classes():
        defaults = node_defaults(node_class.config_key)
        declared = {param.name for param in node_class.params}
        assert set(sections[node_class.config_key]) <= declared, node_class.config_key
        for param in node_class.params:
            _checked_default(param, defaults[param.name], node_class.config_key)  # type check
            if param.minimum is not None:
                assert param.minimum <= defaults[param.name] <= param.maximum, param.name
            if param.choices:
                assert defaults[param.name] in param.choices, param.name
        used_shared |= declared & set(sections[WILDCARD])
    assert used_shared == set(sections[WILDCARD]), "a /** setting no node declares"
    assert set(sections) == {WILDCARD} | {c.config_key for c in _node_classes()}


def test_graph_sets_only_parameters_that_its_nodes_declare():
    from kp_motion.ros.graph import GRAPHS, GraphOptions, build_graph

    declared = {c.config_key: {p.name for p in c.params} for c in _node_classes()}
    options = GraphOptions(input="clip", source_image="face.png", forecaster="hold-last",
                           forecaster_path="f", m=2, n=1, fps=10.0, device="cpu",
                           checkpoint="c", width=64, height=64, max_frames=5,
                           drop_probability=0.1, drop_seed=3, summary_path="s.json",
                           exit_at_end=True, recorder=True)
    for graph in GRAPHS:
        graph_options = options if graph == "transfer" else GraphOptions(input="clip")
        for spec in build_graph(graph, graph_options):
            assert set(spec.parameters) <= declared[spec.name], (graph, spec.name)


# --- node helpers ------------------------------------------------------------------------------


def test_frame_indexer_counts_periods_between_stamps():
    from kp_motion.ros.keypoint_detector_node import FrameIndexer

    indexer = FrameIndexer(fps=10.0)
    period = 100_000_000
    stamps = [0, period, 2 * period + 30_000_000, 3 * period, 6 * period, 6 * period + 1]
    # jitter below half a period is ignored; a lost image leaves a gap; never a repeat
    assert [indexer.index(s) for s in stamps] == [0, 1, 2, 3, 6, 7]


def test_transmit_gate_follows_the_schedule_and_drops_a_seeded_share():
    from kp_motion.forecasting.schedule import is_transmitted
    from kp_motion.ros.keypoint_detector_node import TransmitGate

    gate = TransmitGate(m=3, n=2, drop_probability=0.0, seed=0)
    assert [gate.scheduled(i) for i in range(10)] == [is_transmitted(i, 3, 2) for i in range(10)]
    lossy = [TransmitGate(1, 0, 0.3, seed=7) for _ in range(2)]
    runs = [[gate.survives_network() for _ in range(2000)] for gate in lossy]
    assert runs[0] == runs[1], "the simulated loss must be reproducible from its seed"
    assert 0.27 < 1 - np.mean(runs[0]) < 0.33


def test_stats_meters():
    from kp_motion.ros.stats_node import IndexGaps, RateMeter, latency_summary

    meter = RateMeter()
    for second in range(5):
        meter.add(300, float(second))
    summary = meter.summary()
    assert summary["bytes_per_second"] == pytest.approx(300.0)
    assert summary["messages_per_second"] == pytest.approx(1.0)
    gaps = IndexGaps(m=2, n=2)
    for index in (0, 1, 5, 8):  # 4 lost (transmitted), 2-3 and 6-7 withheld
        gaps.add(index)
    assert gaps.missing == 1
    latency = latency_summary([0.010, 0.020, 0.030])
    assert latency["mean_ms"] == pytest.approx(20.0) and latency["count"] == 3


def test_overlay_marks_origin_with_a_border_colour():
    from kp_motion.ros.renderer_node import ORIGIN_COLOURS, overlay_frame

    frame = np.zeros((16, 16, 3), np.uint8)
    positions = np.zeros((10, 2), np.float32)
    for origin, colour in ORIGIN_COLOURS.items():
        canvas = overlay_frame(frame, positions, origin)
        assert tuple(canvas[0, 5]) == colour and tuple(canvas[15, 15]) == colour
        assert canvas[8, 8].any(), "keypoints at the centre are drawn"


def test_camera_output_size_keeps_the_aspect_ratio_when_one_side_is_zero():
    from kp_motion.ros.camera_node import output_size

    assert output_size((480, 640, 3), 0, 0) is None
    assert output_size((480, 640, 3), 320, 0) == (240, 320)
    assert output_size((480, 640, 3), 0, 120) == (120, 160)
    assert output_size((480, 640, 3), 64, 64) == (64, 64)


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

    from kp_motion.ros.common import RELIABLE_IMAGE_QOS
    from kp_motion.ros.graph import TOPICS
    from kp_motion.ros.runner import Sink

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
    from kp_motion.ros.common import KEYPOINT_QOS, RELIABLE_IMAGE_QOS
    from kp_motion.ros.conversions import array_to_image, ns_to_stamp
    from kp_motion.ros.keypoint_detector_node import KeypointDetectorNode

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
        images = clip.create_publisher(Image, "image", RELIABLE_IMAGE_QOS)
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

    from kp_motion.ros.common import RENDERED_QOS
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
        _spin_until(executor, lambda: stats.rendered >= len(frames), 20)
        counted = stats.summary()["rendered"]
    finally:
        rclpy.try_shutdown()
    assert counted["frames"] == len(frames) and counted["latency"]["all"]["count"] == len(frames)
