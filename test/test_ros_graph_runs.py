"""Both graphs end to end: `kp-motion graph` starts every node as its own process, frames and
keypoints travel over real DDS (loopback, a test-private domain), tiny random models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ros_helpers import child_env, make_checkpoint, read_frames_record, run_cli, write_clip

from conftest import REPO_ROOT
from kp_motion.keypoints import Origin
from kp_motion.stream.meters import ALL_FRAMES

pytestmark = pytest.mark.ros

FPS = 20.0  # 5e7 ns per frame: extrapolated stamps land exactly on the capture timeline
RUN_TIMEOUT_S = 240


def _run_graph(tmp_path, ros_env, graph, frames, extra):
    checkpoint = make_checkpoint(tmp_path / "model")
    clip = write_clip(tmp_path / "clip", frames)
    output = tmp_path / "out"
    args = ["graph", graph, "--input", str(clip), "--checkpoint", str(checkpoint),
            "--device", "cpu", "--fps", str(FPS), "--output", str(output), "--settle", "1.0",
            "--timeout", str(RUN_TIMEOUT_S - 30), *extra]
    result = run_cli(args, child_env(ros_env), REPO_ROOT, RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((output / "report.json").read_text())
    assert set(report["exit_codes"].values()) == {0}, report["exit_codes"]
    return output, read_frames_record(output), report


def _check_stream(record, expected_origins: dict[int, Origin]):
    """The full-rate stream holds exactly the expected frames, and every rendered frame carries
    the capture stamp of its frame."""
    captured = record["captured_stamps_ns"]
    assert np.all(np.diff(captured) == 1e9 / FPS), "the camera's clip timeline"
    keypoints = record["keypoints"]
    assert [k["frame_index"] for k in keypoints] == sorted(expected_origins)
    assert {k["frame_index"]: Origin(k["origin"]) for k in keypoints} == expected_origins
    assert [k["stamp_ns"] for k in keypoints] == [captured[k["frame_index"]] for k in keypoints]
    assert record["rendered_stamps_ns"] == [k["stamp_ns"] for k in keypoints]
    assert record["overlay_frames"] == len(keypoints)


@pytest.mark.slow
def test_reconstruction_graph_renders_every_frame_with_capture_stamps(tmp_path, ros_env):
    from kp_motion.data.video_io import read_video
    from kp_motion.forecasting.schedule import is_transmitted

    frames, m, n = 16, 2, 2  # whole cycles: no forecast runs past the clip
    output, record, report = _run_graph(
        tmp_path, ros_env, "reconstruction", frames,
        ["--forecaster", "hold-last", "--m", str(m), "--n", str(n)])
    assert len(record["captured_stamps_ns"]) == frames
    expected = {i: Origin.DETECTED if is_transmitted(i, m, n) else Origin.PREDICTED
                for i in range(frames)}
    _check_stream(record, expected)
    assert read_video(output / "rendered.mp4").shape[0] == frames
    assert read_video(output / "overlay.mp4").shape[0] == frames
    assert report["network_messages"] == sum(is_transmitted(i, m, n) for i in range(frames))
    assert report["frames_predicted"] == frames - report["network_messages"]
    assert report["latency_ms"][ALL_FRAMES]["count"] == frames
    renderer_log = (output / "logs" / "renderer.log").read_text()
    assert "source image set" in renderer_log  # from the camera's latched first frame


@pytest.mark.slow
@pytest.mark.parametrize("wire", ["float32", "compact"])
def test_transfer_graph_conceals_frames_lost_on_the_network(tmp_path, ros_env, wire):
    from ros_helpers import clip_frames

    from kp_motion.data.video_io import write_image
    from kp_motion.forecasting.schedule import is_last_transmitted, is_transmitted
    from kp_motion.stream.sender import TransmitGate
    from kp_motion.stream.wire import payload_bytes

    frames, m, n, drop, seed = 20, 3, 1, 0.3, 5
    source = write_image(tmp_path / "face.png", clip_frames(1, seed=9)[0])
    # The gate's simulated loss, replayed: one draw per transmitted frame, in frame order.
    gate = TransmitGate(m, n, drop, seed)
    sent = [i for i in range(frames) if gate.scheduled(i) and gate.survives_network()]
    lost = [i for i in range(frames) if is_transmitted(i, m, n) and i not in sent]
    assert len(lost) >= 3 and lost[0] > sent[0], "seed chosen so that the test means something"

    output, record, report = _run_graph(
        tmp_path, ros_env, "transfer", frames,
        ["--source-image", str(source), "--forecaster", "constant-velocity", "--m", str(m),
         "--n", str(n), "--drop-probability", str(drop), "--drop-seed", str(seed),
         "--wire", wire])
    # Lost frames after the last one received cannot be noticed (no later frame arrives).
    last = sent[-1] + (n if is_last_transmitted(sent[-1], m, n) else 0)
    expected = {}
    for index in range(sent[0], last + 1):
        if not is_transmitted(index, m, n):
            expected[index] = Origin.PREDICTED
        else:
            expected[index] = Origin.DETECTED if index in sent else Origin.CONCEALED
    _check_stream(record, expected)
    assert report["network_messages"] == len(sent)
    assert report["network_mean_message_bytes"] == payload_bytes(wire)  # that wire's messages
    assert report["network_frames_lost"] == len([i for i in lost if i < sent[-1]])
    assert report["frames_concealed"] == list(expected.values()).count(Origin.CONCEALED)


@pytest.mark.slow
def test_ctrl_c_stops_every_node_cleanly_and_keeps_the_outputs(tmp_path, ros_env):
    import os
    import signal
    import subprocess
    import sys
    import time

    checkpoint = make_checkpoint(tmp_path / "model")
    clip = write_clip(tmp_path / "clip", 300)  # 15 s at 20 fps: interrupted long before
    output = tmp_path / "out"
    runner = subprocess.Popen(
        [sys.executable, "-m", "kp_motion.cli.main", "graph", "reconstruction", "--input",
         str(clip), "--checkpoint", str(checkpoint), "--device", "cpu", "--fps", str(FPS),
         "--forecaster", "hold-last", "--output", str(output)],
        env=child_env(ros_env), cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
        # A terminal's Ctrl-C reaches a runner whose SIGINT is not ignored; CI may start the
        # suite with SIGINT ignored (a background job), which exec would pass on.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in runner.stderr:  # wait until the graph runs, then give it a moment
            if "running the reconstruction graph" in line:
                break
        time.sleep(1.0)
        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, runner_stderr = runner.communicate(timeout=60)
    except BaseException:
        os.killpg(runner.pid, signal.SIGKILL)
        raise
    assert (output / "report.json").is_file(), runner_stderr[-3000:]
    report = json.loads((output / "report.json").read_text())
    assert report["exit_codes"] == dict.fromkeys(
        ["camera", "keypoint_detector", "forecaster", "renderer", "stats"], 0)
    record = read_frames_record(output)
    assert 0 < len(record["rendered_stamps_ns"]) < 300
    assert (output / "stats.json").is_file() and (output / "rendered.mp4").is_file()


def test_a_node_that_fails_at_start_up_stops_the_graph_with_its_reason(tmp_path, ros_env):
    checkpoint = tmp_path / "broken"
    checkpoint.mkdir()
    (checkpoint / "model.yaml").write_text("name: broken\n")
    (checkpoint / "weights.safetensors").write_bytes(b"not safetensors")
    clip = write_clip(tmp_path / "clip", 4)
    # The sender's side only (the sender node: capture + detection): one process, the same
    # failure path.
    result = run_cli(["graph", "reconstruction", "--role", "sender", "--input", str(clip),
                      "--checkpoint", str(checkpoint), "--device", "cpu",
                      "--output", str(tmp_path / "out")], child_env(ros_env), REPO_ROOT, 120)
    assert result.returncode == 2
    assert "kp-motion graph: error: node sender exited with status 2 during start-up" \
        in result.stderr
    assert "cannot start" in result.stderr and str(checkpoint) in result.stderr  # its log tail
    assert not (tmp_path / "out" / "report.json").exists()


# A threshold no forecast exceeds: only the refreshes (every max_gap-th frame) are sent, so
# which frames travel is known; the last frame is one, so nothing is left to a deadline or to
# the end marker (test_ros_end_marker.py tests that). The wait budget outlasts the run:
# withheld frames are forecast when the next packet arrives, independent of this machine's
# speed (the deadline has its own tests).
PREDICTIVE_ONLY_REFRESHES = ["--forecaster", "hold-last", "--policy", "predictive", "--wire",
                             "compact", "--threshold", "1000", "--wait-budget", "60"]


@pytest.mark.slow
def test_predictive_policy_over_the_compact_wire_renders_every_frame(tmp_path, ros_env):
    from kp_motion.stream.wire import TRANSPORT_OVERHEAD_BYTES, payload_bytes

    frames, max_gap = 21, 10
    output, record, report = _run_graph(
        tmp_path, ros_env, "reconstruction", frames,
        [*PREDICTIVE_ONLY_REFRESHES, "--max-gap", str(max_gap)])
    assert len(record["captured_stamps_ns"]) == frames
    sent = [i for i in range(frames) if i % max_gap == 0]
    expected = {i: Origin.DETECTED if i in sent else Origin.PREDICTED for i in range(frames)}
    _check_stream(record, expected)
    # The camera's clip end makes the detector send the end marker: one more message, with its
    # bytes, but no frame sent.
    messages = len(sent) + 1
    assert report["network_messages"] == messages
    assert report["frames_sent_share"] == pytest.approx(len(sent) / frames)
    video_seconds = frames / FPS
    assert report["payload_bytes_per_second"] == pytest.approx(
        messages * payload_bytes("compact") / video_seconds)
    assert report["wire_bytes_per_second"] == pytest.approx(
        messages * (payload_bytes("compact") + TRANSPORT_OVERHEAD_BYTES) / video_seconds)


@pytest.mark.slow
def test_predictive_policy_keeps_every_frame_when_messages_are_lost(tmp_path, ros_env):
    from kp_motion.stream.sender import TransmitGate

    frames, max_gap, drop, seed = 31, 10, 0.3, 1
    refreshes = list(range(0, frames, max_gap))
    gate = TransmitGate(1, 0, drop, seed)  # the sender's loss: one draw per sent message
    arrived = [i for i in refreshes if gate.survives_network()]
    assert arrived[0] == 0 and arrived[-1] == refreshes[-1] and len(arrived) < len(refreshes), \
        "seed chosen so that a message between the first and the last is lost"
    output, record, report = _run_graph(
        tmp_path, ros_env, "reconstruction", frames,
        [*PREDICTIVE_ONLY_REFRESHES, "--max-gap", str(max_gap), "--drop-probability", str(drop),
         "--drop-seed", str(seed)])
    # The output stays complete; from a lost refresh to the next arrival frames are CONCEALED.
    expected, concealing = {}, False
    for i in range(frames):
        concealing = i not in arrived and (concealing or i in refreshes)
        expected[i] = (Origin.DETECTED if i in arrived
                       else Origin.CONCEALED if concealing else Origin.PREDICTED)
    assert Origin.CONCEALED in expected.values()
    _check_stream(record, expected)
    assert report["network_messages"] == len(arrived) + 1  # and the end marker (never dropped)
