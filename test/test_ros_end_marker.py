"""The end of a predictive stream over real DDS, in one namespace. The clip's last frames are
withheld; an end marker tells the forecaster where the stream ends, so it forecasts up to the
last captured frame and not one frame more. Role sender: the sender node (capture + detection)
sends it when its clip ends. Role both: the camera announces its clip's end (clip_end) and the
keypoint_detector sends the marker once it has processed that last frame."""

from __future__ import annotations

import time

import pytest
from ros_helpers import child_env, make_checkpoint, write_clip

from kp_motion.keypoints import Origin

pytestmark = pytest.mark.ros

MODEL_WAIT_S = 120  # node start-up (torch import, model load) on 2 busy cores
QUIET_S = 2.0  # after the clip's end, how long no more frames must come
SETTLE_S = 1.0  # after the probe has discovered the chain, before the clip starts
NAMESPACE = "end_test"
FRAMES, MAX_GAP = 15, 10  # refreshes 0 and 10 are sent; 11..14 withheld
# A threshold no forecast exceeds: only the refreshes travel. The wait budget outlasts the
# run, so nothing is forecast by a deadline: only packets and the end marker move the output.
PREDICTIVE = dict(policy="predictive", wire="compact", threshold=1000.0, max_gap=MAX_GAP,
                  wait_budget=60.0)
FIXED_M, FIXED_N = 2, 3  # frames 0, 1, 5, 6, 10, 11 sent; 12..14 withheld


def _process(graph_role: str, node: str, tmp_path, env, **options):
    from kp_motion.graph_config.options import GraphOptions
    from kp_motion.ros.commands import command_line
    from kp_motion.ros.graph import build_graph
    from kp_motion.ros.processes import NodeProcess

    specs = build_graph("transfer", GraphOptions(
        role=graph_role, namespace=NAMESPACE, device="cpu", fps=20.0, forecaster="hold-last",
        **{**PREDICTIVE, **options}))
    (spec,) = [spec for spec in specs if spec.name == node]
    folder = tmp_path / node
    return NodeProcess(spec, command_line(spec, folder / "parameters"), folder / f"{node}.log",
                       env=env)


def _shown_frames(receivers: list, start_capture, capture_topic: str,
                  published: tuple[str, ...] = ("keypoints_full",)) -> dict[int, int]:
    """frame_index -> origin of the forecaster's output: `receivers` (processes) are started;
    once they are ready, subscribed to `capture_topic` and publishing `published` (graph topic
    names), start_capture() starts the capture node; collected until the capture's clip ended
    and no frame came for QUIET_S."""
    import rclpy

    from kp_motion.msg import Keypoint60
    from kp_motion.ros.qos import KEYPOINT_QOS
    from kp_motion.topics import resolved

    processes = list(receivers)
    rclpy.init()
    shown: dict[int, int] = {}
    try:
        probe = rclpy.create_node("end_probe")
        probe.create_subscription(
            Keypoint60, resolved("keypoints_full", NAMESPACE),
            lambda message: shown.__setitem__(int(message.frame_index), int(message.origin)),
            KEYPOINT_QOS)
        deadline = time.monotonic() + MODEL_WAIT_S
        # Ready (model loaded) is not yet discovered: a 15-frame clip can be over before DDS
        # has matched the chain's readers and writers, so wait until the probe sees them all,
        # then give the nodes' own matching a moment more.
        def discovered() -> bool:
            return (probe.count_subscribers(resolved(capture_topic, NAMESPACE)) >= 1
                    and all(probe.count_publishers(resolved(topic, NAMESPACE)) >= 1
                            for topic in published))

        while not all(p.ready.is_set() for p in processes) or not discovered():
            for process in processes:
                assert process.alive() and time.monotonic() < deadline, "\n".join(process.tail)
            rclpy.spin_once(probe, timeout_sec=0.1)
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            rclpy.spin_once(probe, timeout_sec=0.1)
        capture = start_capture()
        processes.append(capture)
        quiet_since = None
        while quiet_since is None or time.monotonic() - quiet_since < QUIET_S:
            for process in processes:
                assert process.alive(), "\n".join(process.tail)
            assert time.monotonic() < deadline + MODEL_WAIT_S, sorted(shown)
            before = len(shown)
            rclpy.spin_once(probe, timeout_sec=0.1)
            if len(shown) != before:
                quiet_since = None
            elif capture.input_ended.is_set() and quiet_since is None:
                quiet_since = time.monotonic()
        probe.destroy_node()
    finally:
        rclpy.try_shutdown()
        for process in processes:
            process.stop(10.0)
    return shown


def test_the_sender_end_marker_stops_the_forecast_at_the_last_captured_frame(tmp_path, ros_env):
    env = child_env(ros_env)
    checkpoint = make_checkpoint(tmp_path / "model")
    clip = write_clip(tmp_path / "clip", FRAMES)
    forecaster = _process("receiver", "forecaster", tmp_path, env, source_image="unused.png")
    shown = _shown_frames([forecaster], lambda: _process(
        "sender", "sender", tmp_path, env, input=str(clip), checkpoint=str(checkpoint)),
        "network_packets")
    expected = {i: int(Origin.DETECTED if i % MAX_GAP == 0 else Origin.PREDICTED)
                for i in range(FRAMES)}
    assert shown == expected


@pytest.mark.parametrize("schedule", ["predictive", "fixed"])
def test_the_camera_s_clip_end_ends_the_detector_s_stream_at_the_last_frame(
        tmp_path, ros_env, schedule):
    """Role both. Predictive over compact: without the camera's clip_end the detector sends no
    marker and frames 11..14 never come out. Fixed over float32: no marker is sent, and the
    schedule's receiver forecasts the trailing withheld frames as before."""
    env = child_env(ros_env)
    checkpoint = make_checkpoint(tmp_path / "model")
    clip = write_clip(tmp_path / "clip", FRAMES)
    options = {} if schedule == "predictive" else dict(policy="fixed", wire="float32",
                                                       m=FIXED_M, n=FIXED_N)
    receivers = [
        _process("both", "forecaster", tmp_path, env, source_image="unused.png", **options),
        _process("both", "keypoint_detector", tmp_path, env, input=str(clip),
                 source_image="unused.png", checkpoint=str(checkpoint), **options),
    ]
    network = "network_packets" if schedule == "predictive" else "network"
    shown = _shown_frames(receivers, lambda: _process(
        "both", "camera", tmp_path, env, input=str(clip), source_image="unused.png", **options),
        "image", published=("keypoints_full", network))
    if schedule == "predictive":
        sent = {i for i in range(FRAMES) if i % MAX_GAP == 0}
    else:
        sent = {i for i in range(FRAMES) if i % (FIXED_M + FIXED_N) < FIXED_M}
    assert shown == {i: int(Origin.DETECTED if i in sent else Origin.PREDICTED)
                     for i in range(FRAMES)}
