"""Predictive transmission: the sender's mirror and the receiver agree bit for bit; with lost
messages the output stays complete and the divergence ends where the design says."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.evaluation.rate_distortion import simulate_predictive
from kp_motion.forecasting.baselines import HoldLastForecaster
from kp_motion.forecasting.named import load_named_forecaster
from kp_motion.forecasting.synthetic import synthetic_sequences
from kp_motion.keypoints import Origin
from kp_motion.stream import wire
from kp_motion.stream.predictive import PredictiveReceiver, frame_error, is_refresh
from kp_motion.stream.receiving import PredictiveStream

MAX_GAP = 20
THRESHOLD = 2e-4


@pytest.fixture(scope="module")
def clip():
    return synthetic_sequences(1, 160, seed=11, noise_std=0.003)[0]


def forecasters():
    return {"hold-last": HoldLastForecaster(),
            "direct-linear": load_named_forecaster("vox-256/direct-linear")}


@pytest.mark.parametrize("name", ["hold-last", "direct-linear"])
@pytest.mark.parametrize("wire_name", wire.WIRES)
def test_mirror_and_receiver_agree_bit_for_bit(clip, name, wire_name):
    run = simulate_predictive(clip, forecasters()[name], THRESHOLD, MAX_GAP, wire_name)
    output = run.output
    assert 0 < run.sent.sum() < len(clip)  # the policy both sends and withholds
    assert np.array_equal(output.frames, run.mirror)
    assert np.array_equal(output.forecast, ~run.sent)
    # Sent frames arrive as the wire delivers them; forecast ones are within the threshold.
    assert np.array_equal(output.frames[run.sent], wire.delivered(wire_name, clip[run.sent]))
    for index in np.flatnonzero(~run.sent):
        assert frame_error(output.frames[index], clip[index]) <= THRESHOLD
    # Refresh frames are always sent, so no gap exceeds max_gap.
    assert run.sent[[i for i in range(len(clip)) if is_refresh(i, MAX_GAP)]].all()
    assert np.diff(np.flatnonzero(run.sent)).max() <= MAX_GAP


def _diverged(run) -> np.ndarray:
    return (run.output.frames != run.mirror).any(axis=1)


@pytest.mark.parametrize("name", ["hold-last", "direct-linear"])
def test_with_a_fifth_of_messages_lost_output_is_complete_and_divergence_ends(clip, name):
    run = simulate_predictive(clip, forecasters()[name], THRESHOLD, MAX_GAP, wire.COMPACT,
                              drop_probability=0.2, seed=2)
    assert len(run.output.frames) == len(clip)  # one frame per captured frame
    assert np.isfinite(run.output.frames).all()
    lost = run.sent & ~run.arrived
    assert lost.any() and _diverged(run).any()  # losses happened and mattered
    # Where the divergence must have ended: at the next arrived message (hold-last: its state
    # is the last frame), or at the next arrived refresh (direct-linear remembers more).
    if name == "hold-last":
        resync = run.arrived
    else:
        resync = run.arrived & np.array([is_refresh(i, MAX_GAP) for i in range(len(clip))])
    synced = True
    for index in range(len(clip)):
        if lost[index]:
            synced = False
        elif resync[index]:
            synced = True
        if synced:
            assert not _diverged(run)[index], f"frame {index} differs after a resync"
        if run.arrived[index]:
            assert not _diverged(run)[index]  # a received frame is never wrong


@pytest.mark.parametrize("name", ["hold-last", "direct-linear"])
def test_over_a_reliable_link_a_late_message_resyncs_the_receiver_on_arrival(clip, name):
    delay = 3
    run = simulate_predictive(clip, forecasters()[name], THRESHOLD, MAX_GAP, wire.COMPACT,
                              drop_probability=0.2, seed=2, retransmit_delay=delay)
    lost = np.flatnonzero(run.sent & ~run.arrived)
    assert len(lost) and _diverged(run).any()
    # Frames shown before the retransmission arrives may differ; from its arrival on, none.
    for index in np.flatnonzero(_diverged(run)):
        assert ((lost <= index) & (index < lost + delay)).any(), f"frame {index} still differs"


def test_receiver_drops_late_messages_and_caps_concealment():
    receiver = PredictiveReceiver(HoldLastForecaster(), max_gap=5)
    frame = np.zeros(60, np.float32)
    assert [f.frame_index for f in receiver.receive(0, frame)] == [0]
    assert [f.frame_index for f in receiver.receive(3, frame)] == [1, 2, 3]
    assert receiver.receive(2, frame) == []
    assert receiver.stats.late == 1 and receiver.stats.repaired == 1
    assert receiver.receive(2, frame) == []  # a duplicate is not replayed twice
    assert receiver.stats.repaired == 1
    # A dead sender: nothing is forecast more than 2 * max_gap frames past the last message.
    assert receiver.predict_until(100)[-1].frame_index == 3 + 10


def test_lost_first_messages_still_give_one_frame_per_captured_frame(clip):
    from kp_motion.evaluation.rate_distortion import simulate_fixed

    predictive = simulate_predictive(clip[:40], HoldLastForecaster(), THRESHOLD, MAX_GAP,
                                     wire.COMPACT, drop_probability=0.9, seed=1).output
    fixed = simulate_fixed(clip[:40], HoldLastForecaster(), 2, 2, wire.COMPACT,
                           drop_probability=0.9, seed=1)
    for output in (predictive, fixed):
        assert output.frames.shape == (40, 60) and output.forecast[0]


def test_a_non_finite_detection_is_forecast_on_both_sides(clip):
    from kp_motion.stream.predictive import PredictiveSender

    sender = PredictiveSender(HoldLastForecaster(), THRESHOLD, MAX_GAP)
    receiver = PredictiveReceiver(HoldLastForecaster(), MAX_GAP)
    receiver.receive(0, sender.offer(0, clip[0], wire.quantized))
    broken = clip[1].copy()
    broken[3] = np.nan
    assert sender.offer(1, broken, wire.quantized) is None
    assert np.array_equal(receiver.predict_until(1)[0].values, sender.expected)


def test_frames_lost_before_the_sender_are_forecast_alike_on_both_sides(clip):
    from kp_motion.stream.predictive import PredictiveSender

    sender = PredictiveSender(forecasters()["direct-linear"], THRESHOLD, MAX_GAP)
    receiver = PredictiveReceiver(forecasters()["direct-linear"], MAX_GAP)
    captured = [index for index in range(60) if index not in (7, 8, 31)]
    expected, shown = {}, {}
    for index in captured:
        values = sender.offer(index, clip[index], wire.quantized)
        expected[index] = sender.expected
        emitted = (receiver.predict_until(index) if values is None
                   else receiver.receive(index, values))
        shown.update({frame.frame_index: frame.values for frame in emitted})
    assert sorted(shown) == list(range(60))  # the lost captures are forecast, not skipped
    for index in captured:
        assert np.array_equal(shown[index], expected[index]), index


def _origins(emitted) -> dict[int, Origin]:
    return {frame.frame_index: frame.origin for frame in emitted}


def test_a_lost_refresh_conceals_until_the_next_message():
    receiver = PredictiveReceiver(HoldLastForecaster(), max_gap=5)
    frame = np.zeros(60, np.float32)
    shown = _origins(receiver.receive(0, frame))
    shown |= _origins(receiver.predict_until(4))  # withheld frames: nothing says a loss
    shown |= _origins(receiver.predict_until(7))  # refresh 5 did not come: lost
    shown |= _origins(receiver.receive(10, frame))
    shown |= _origins(receiver.predict_until(12))
    predicted, concealed = Origin.PREDICTED, Origin.CONCEALED
    assert shown == {0: Origin.DETECTED, 1: predicted, 2: predicted, 3: predicted, 4: predicted,
                     5: concealed, 6: concealed, 7: concealed, 8: concealed, 9: concealed,
                     10: Origin.DETECTED, 11: predicted, 12: predicted}
    assert (receiver.stats.forecast, receiver.stats.concealed) == (6, 5)
    # The schedule-receiver view the forecaster node logs counts them apart too.
    stream = PredictiveStream(HoldLastForecaster(), 5)
    stream.receive(0, frame)
    stream.receive(7, frame)
    assert (stream.stats.predicted, stream.stats.concealed) == (4, 2)


def test_the_end_marker_gives_one_frame_per_captured_frame():
    frames, max_gap = 37, 10  # the last received message is frame 30's refresh
    frame = np.zeros(60, np.float32)

    def run(end: bool) -> list[int]:
        receiver = PredictiveReceiver(HoldLastForecaster(), max_gap)
        shown = []
        for index in range(frames):
            emitted = (receiver.receive(index, frame) if is_refresh(index, max_gap)
                       else receiver.predict_until(index - 3))  # deadlines run 3 frames late
            shown += [item.frame_index for item in emitted]
        if end:
            shown += [item.frame_index for item in receiver.end(frames - 1)]
            assert receiver.ended
        shown += [item.frame_index for item in receiver.predict_until(1000)]
        return shown

    assert run(end=True) == list(range(frames))
    # Without the marker the receiver cannot know: it forecasts up to 2 * max_gap past frame 30.
    assert run(end=False) == list(range(30 + 2 * max_gap + 1))


def test_a_message_after_the_end_starts_a_new_stream():
    receiver = PredictiveReceiver(HoldLastForecaster(), max_gap=5)
    frame = np.zeros(60, np.float32)
    receiver.receive(0, frame)
    assert [item.frame_index for item in receiver.end(2)] == [1, 2]
    assert receiver.predict_until(50) == []
    assert [item.frame_index for item in receiver.receive(0, frame)] == []  # a late duplicate
    assert [item.frame_index for item in receiver.receive(3, frame)] == [3]
    assert receiver.stats.resets == 1
    with pytest.raises(ValueError, match="end marker"):
        receiver.end(-1)


def test_the_sender_names_the_last_frame_offered(clip):
    from kp_motion.stream.predictive import PredictiveSender

    sender = PredictiveSender(HoldLastForecaster(), THRESHOLD, MAX_GAP)
    assert sender.end() is None
    for index in (0, 1, 4):
        sender.offer(index, clip[index], wire.quantized)
    assert sender.end() == 4
