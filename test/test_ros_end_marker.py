"""The end of a predictive stream over real DDS: a sender node (capture + detection) and a
forecaster node in one namespace. The clip's last frames are withheld; the sender's end marker
tells the forecaster where the stream ends, so it forecasts up to the last captured frame and
not one frame more."""

from __future__ import annotations

import time

import pytest
from ros_helpers import child_env, make_checkpoint, write_clip

from kp_motion.keypoints import Origin

pytestmark = pytest.mark.ros

MODEL_WAIT_S = 120  # node start-up (torch import, model load) on 2 busy cores
QUIET_S = 2.0  # after the clip's end, how long no more frames must come
NAMESPACE = "end_test"
FRAMES, MAX_GAP = 15, 10  # refreshes 0 and 10 are sent; 11..14 withheld


def _process(graph_role: str, node: str, tmp_path, env, **options):
    from kp_motion.ros.commands import command_line
    from kp_motion.ros.graph import build_graph
    from kp_motion.ros.options import GraphOptions
    from kp_motion.ros.processes import NodeProcess

    # A threshold no forecast exceeds: only the refreshes travel. The wait budget outlasts the
    # run, so nothing is forecast by a deadline: only packets and the end marker move the output.
    specs = build_graph("transfer", GraphOptions(
        role=graph_role, namespace=NAMESPACE, device="cpu", fps=20.0, policy="predictive",
        wire="compact", threshold=1000.0, max_gap=MAX_GAP, wait_budget=60.0,
        forecaster="hold-last", **options))
    (spec,) = [spec for spec in specs if spec.name == node]
    folder = tmp_path / node
    return NodeProcess(spec, command_line(spec, folder / "parameters"), folder / f"{node}.log",
                       env=env)


def test_the_sender_end_marker_stops_the_forecast_at_the_last_captured_frame(tmp_path, ros_env):
    import rclpy

    from kp_motion.msg import Keypoint60
    from kp_motion.ros.qos import KEYPOINT_QOS
    from kp_motion.topics import resolved

    env = child_env(ros_env)
    checkpoint = make_checkpoint(tmp_path / "model")
    clip = write_clip(tmp_path / "clip", FRAMES)
    forecaster = _process("receiver", "forecaster", tmp_path, env, source_image="unused.png")
    processes = [forecaster]
    rclpy.init()
    shown: dict[int, int] = {}
    try:
        probe = rclpy.create_node("end_probe")
        probe.create_subscription(
            Keypoint60, resolved("keypoints_full", NAMESPACE),
            lambda message: shown.__setitem__(int(message.frame_index), int(message.origin)),
            KEYPOINT_QOS)
        deadline = time.monotonic() + MODEL_WAIT_S
        while not forecaster.ready.is_set():
            assert forecaster.alive() and time.monotonic() < deadline, "\n".join(forecaster.tail)
            rclpy.spin_once(probe, timeout_sec=0.1)
        sender = _process("sender", "sender", tmp_path, env, input=str(clip),
                          checkpoint=str(checkpoint))
        processes.append(sender)
        quiet_since = None
        while quiet_since is None or time.monotonic() - quiet_since < QUIET_S:
            assert all(p.alive() for p in processes), "\n".join(sender.tail)
            assert time.monotonic() < deadline + MODEL_WAIT_S, sorted(shown)
            before = len(shown)
            rclpy.spin_once(probe, timeout_sec=0.1)
            if len(shown) != before:
                quiet_since = None
            elif sender.input_ended.is_set() and quiet_since is None:
                quiet_since = time.monotonic()
        probe.destroy_node()
    finally:
        rclpy.try_shutdown()
        for process in processes:
            process.stop(10.0)
    expected = {i: int(Origin.DETECTED if i % MAX_GAP == 0 else Origin.PREDICTED)
                for i in range(FRAMES)}
    assert shown == expected
