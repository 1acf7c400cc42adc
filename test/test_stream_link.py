"""The graph's sender and receiver for predictive transmission and the compact wire, without
ROS: KeypointSender with a mirror, the packet unpacker, the frame clock and deadlines, and the
stats' payload and wire rates."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.forecasting.baselines import HoldLastForecaster
from kp_motion.keypoints import NUM_VALUES, Origin
from kp_motion.stream import wire
from kp_motion.stream.meters import StreamStats
from kp_motion.stream.predictive import PredictiveSender
from kp_motion.stream.receiving import (
    KeypointReceiver,
    PacketUnpacker,
    PredictiveStream,
    StreamDescription,
    due_frame,
    frame_stamp_ns,
)
from kp_motion.stream.sender import NON_FINITE, WITHHELD, KeypointSender

PERIOD_NS = 100_000_000  # 10 fps


def _walk(frames: int, seed: int = 0) -> np.ndarray:
    """Keypoint frames that move in steps: some frames jump, most stay."""
    rng = np.random.default_rng(seed)
    steps = np.where(rng.random((frames, 1)) < 0.3, rng.normal(0, 0.1, (frames, NUM_VALUES)), 0)
    return (np.cumsum(steps, axis=0) * 0.5).clip(-0.9, 0.9).astype(np.float32)


def _send(truth: np.ndarray, wire_name: str, threshold: float, max_gap: int):
    detections = iter(truth)
    sender = KeypointSender(lambda frame: next(detections), 10.0, 1, 0,
                            predictive=PredictiveSender(HoldLastForecaster(), threshold, max_gap),
                            wire=wire_name)
    return [sender.capture(i * PERIOD_NS, None) for i in range(len(truth))], sender


def test_predictive_sender_sends_what_the_mirror_cannot_forecast_and_every_refresh():
    truth = _walk(40)
    captures, sender = _send(truth, wire.COMPACT, threshold=1e-4, max_gap=16)
    sent = [c.frame_index for c in captures if c.values is not None]
    assert {0, 16, 32} <= set(sent) and len(sent) < len(truth)
    assert all(c.reason == WITHHELD for c in captures if c.values is None)
    assert sender.gate.withheld == len(truth) - len(sent)
    for capture in captures:  # what is sent is what the compact wire delivers
        if capture.values is not None:
            delivered = wire.quantized(truth[capture.frame_index])
            np.testing.assert_array_equal(capture.values, delivered)


def test_graph_receiver_output_matches_the_mirror_frame_by_frame_over_packets():
    truth = _walk(40, seed=1)
    captures, sender = _send(truth, wire.COMPACT, threshold=1e-3, max_gap=16)
    unpacker = PacketUnpacker(hold=100)
    receiver = KeypointReceiver(PredictiveStream(HoldLastForecaster(), 16), warn=lambda _: None)
    packets = [wire.encode(0, c.frame_index, c.values) for c in captures if c.values is not None]
    # The first packets arrive before the stream description: held, then unpacked in order.
    assert unpacker.unpack(packets[0]) == []
    messages = unpacker.describe(StreamDescription(0, "model", "camera", 0, 10.0))
    for packet in packets[1:]:
        messages += unpacker.unpack(packet)
    emitted = [frame for index, values in messages
               for frame in receiver.receive("model", index, values).frames]
    emitted += receiver.receiver.predict_until(len(truth) - 1)
    assert [frame.frame_index for frame in emitted] == list(range(len(truth)))
    sent = {c.frame_index for c in captures if c.values is not None}
    assert [frame.origin for frame in emitted] == [
        Origin.DETECTED if i in sent else Origin.PREDICTED for i in range(len(truth))]
    # hold-last forecasts the last received frame: within the threshold of every true frame
    errors = [np.mean((frame.values - truth[frame.frame_index]) ** 2) for frame in emitted
              if frame.origin == Origin.PREDICTED]
    assert max(errors) <= 1e-3
    assert receiver.receiver.stats.detected == len(sent)


def test_a_packet_of_another_stream_or_malformed_is_refused_with_its_reason():
    unpacker = PacketUnpacker(hold=2)
    unpacker.describe(StreamDescription(3, "model", "camera", 0, 10.0))
    with pytest.raises(ValueError, match="stream 4"):
        unpacker.unpack(wire.encode(4, 0, np.zeros(NUM_VALUES)))
    with pytest.raises(ValueError, match="74 bytes"):
        unpacker.unpack(b"\x10\x03")
    # the 16-bit index unwraps against the last one received
    assert unpacker.unpack(wire.encode(3, 65_535, np.zeros(NUM_VALUES)))[0][0] == 65_535
    assert unpacker.unpack(wire.encode(3, 65_537, np.zeros(NUM_VALUES)))[0][0] == 65_537


def test_a_non_finite_detection_is_forecast_by_mirror_and_receiver_alike():
    truth = _walk(6)
    truth[3] = np.nan
    captures, sender = _send(truth, wire.FLOAT32, threshold=0.0, max_gap=100)
    assert [c.reason for c in captures] == [None, None, None, NON_FINITE, None, None]


def test_frame_clock_and_deadlines():
    origin = 5 * PERIOD_NS
    assert frame_stamp_ns(origin, PERIOD_NS, 3) == 8 * PERIOD_NS
    wait = PERIOD_NS // 2
    # frame 0 is due one period plus the wait budget after its capture time
    assert due_frame(origin + PERIOD_NS + wait - 1, origin, PERIOD_NS, wait) == -1
    assert due_frame(origin + PERIOD_NS + wait, origin, PERIOD_NS, wait) == 0
    assert due_frame(origin + 4 * PERIOD_NS + wait, origin, PERIOD_NS, wait) == 3


def test_stream_stats_payload_and_wire_rates_per_second_of_video():
    stats = StreamStats(fps=10.0, m=1, n=0, overhead_bytes=84, count_gaps=False)
    for index in (0, 7):
        stats.on_network(80, index, float(index))
    for _ in range(20):
        stats.on_full(int(Origin.PREDICTED), 0)
    network = stats.summary()["network"]
    assert network["payload_bytes_per_second"] == pytest.approx(160 / 2.0)
    assert network["wire_bytes_per_second"] == pytest.approx((160 + 2 * 84) / 2.0)
    assert network["frames_sent_share"] == pytest.approx(0.1)
    assert network["frames_lost"] is None


def test_graph_cli_refuses_two_comparisons_at_once_in_one_line(capsys):
    from kp_motion.cli.main import main

    status = main(["graph", "transfer", "--compare-without-prediction", "--compare-policies"])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert "choose one of --compare-without-prediction and --compare-policies" in error
    assert len(error.splitlines()) == 1


def test_policy_comparison_report_puts_both_runs_side_by_side(tmp_path):
    from kp_motion.ros.reports import write_policy_comparison

    def run(messages: int, size: float) -> dict:
        return {"graph": "transfer", "options": {"policy": "x"}, "frames_captured": 50,
                "frames_rendered": 50, "frames_detected": messages, "frames_predicted": 1,
                "frames_concealed": 0, "network_messages": messages, "network_frames_lost": 0,
                "network_bytes_per_second": 1.0, "network_bytes_per_stream_second": 1.0,
                "network_mean_message_bytes": size,
                "payload_bytes_per_second": messages * size / 2.0,
                "wire_bytes_per_second": messages * (size + 84) / 2.0,
                "frames_sent_share": messages / 50, "latency_ms": {}}

    comparison = write_policy_comparison(run(25, 312.0), run(5, 80.0), tmp_path)
    assert comparison["payload_bytes_per_second_ratio"] == pytest.approx(5 * 80 / (25 * 312))
    report = (tmp_path / "report.md").read_text()
    assert "| | fixed | predictive |" in report
    assert "| share of captured frames sent |0.500 |0.100 |" in report


def test_the_end_marker_packet_ends_the_output_at_the_last_captured_frame():
    truth = _walk(40, seed=2)
    # A threshold no forecast exceeds: only the refreshes 0, 16, 32 are sent; 33..39 withheld.
    captures, sender = _send(truth, wire.COMPACT, threshold=1e3, max_gap=16)
    packets = [wire.encode(0, c.frame_index, c.values) for c in captures if c.values is not None]
    packets.append(wire.end_marker(0, sender.predictive.end()))
    assert wire.decode(packets[-1]).end and not wire.decode(packets[0]).end
    unpacker = PacketUnpacker(hold=100)
    unpacker.describe(StreamDescription(0, "model", "camera", 0, 10.0))
    stream = PredictiveStream(HoldLastForecaster(), 16)
    receiver = KeypointReceiver(stream, warn=lambda _: None)
    emitted = []
    for packet in packets:
        for index, values in unpacker.unpack(packet):
            # What the forecaster node does: values None is the end marker.
            emitted += (stream.end(index) if values is None
                        else receiver.receive("model", index, values).frames)
    emitted += stream.predict_until(1000)  # deadlines long past: nothing after the end
    assert [frame.frame_index for frame in emitted] == list(range(len(truth)))
    assert stream.stats.concealed == 0  # every refresh arrived: nothing was lost
