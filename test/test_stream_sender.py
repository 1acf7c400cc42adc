"""The sender's stream logic without ROS: frame indices from stamps, the transmit gate, and
KeypointSender's one call per captured frame."""

from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import SIZE, clip_frames, make_checkpoint

from kp_motion.forecasting.schedule import is_transmitted
from kp_motion.keypoints import NUM_VALUES
from kp_motion.stream.sender import (
    DROPPED,
    NON_FINITE,
    WITHHELD,
    FrameDetector,
    FrameIndexer,
    KeypointSender,
    TransmitGate,
)

PERIOD_NS = 100_000_000  # 10 fps


def test_frame_indexer_counts_periods_between_stamps():
    indexer = FrameIndexer(fps=10.0)
    stamps = [0, PERIOD_NS, 2 * PERIOD_NS + 30_000_000, 3 * PERIOD_NS, 6 * PERIOD_NS,
              6 * PERIOD_NS + 1]
    # jitter below half a period is ignored; a lost image leaves a gap; never a repeat
    assert [indexer.index(s) for s in stamps] == [0, 1, 2, 3, 6, 7]


def test_transmit_gate_follows_the_schedule_and_drops_a_seeded_share():
    gate = TransmitGate(m=3, n=2, drop_probability=0.0, seed=0)
    assert [gate.scheduled(i) for i in range(10)] == [is_transmitted(i, 3, 2) for i in range(10)]
    lossy = [TransmitGate(1, 0, 0.3, seed=7) for _ in range(2)]
    runs = [[gate.survives_network() for _ in range(2000)] for gate in lossy]
    assert runs[0] == runs[1], "the simulated loss must be reproducible from its seed"
    assert 0.27 < 1 - np.mean(runs[0]) < 0.33


def test_transmit_gate_refuses_an_impossible_schedule():
    with pytest.raises(ValueError):
        TransmitGate(m=0, n=2, drop_probability=0.0, seed=0)


def test_sender_detects_only_what_it_transmits():
    detected = []

    def detect(frame):
        detected.append(int(frame[0, 0, 0]))
        return np.full(NUM_VALUES, 0.1, np.float32)

    sender = KeypointSender(detect, fps=10.0, m=2, n=2)
    frames = [np.full((4, 4, 3), index, np.uint8) for index in range(6)]
    captures = [sender.capture(index * PERIOD_NS, frame) for index, frame in enumerate(frames)]
    assert [c.frame_index for c in captures] == list(range(6))
    assert [c.reason for c in captures] == [None, None, WITHHELD, WITHHELD, None, None]
    assert detected == [0, 1, 4, 5], "withheld frames must not cost a detection"
    assert all(c.values is not None for c in captures if c.reason is None)
    assert "4 sent, 2 withheld, 0 dropped" in sender.summary()


def test_sender_keeps_non_finite_detections_and_simulated_losses_off_the_network():
    values = iter([np.full(NUM_VALUES, np.nan, np.float32)] +
                  [np.zeros(NUM_VALUES, np.float32)] * 400)
    sender = KeypointSender(lambda frame: next(values), fps=10.0, m=1, n=0,
                            drop_probability=0.5, seed=1)
    frame = np.zeros((4, 4, 3), np.uint8)
    captures = [sender.capture(index * PERIOD_NS, frame) for index in range(400)]
    assert captures[0].reason == NON_FINITE and captures[0].values is None
    reasons = [c.reason for c in captures[1:]]
    assert 150 < reasons.count(DROPPED) < 250 and reasons.count(None) == 399 - reasons.count(
        DROPPED)


def test_frame_detector_gives_the_model_s_values_for_any_frame_size(tmp_path):
    from kp_motion.models.checkpoint import load_model

    config, kp_detector, _ = load_model(make_checkpoint(tmp_path / "model"))
    detect = FrameDetector(kp_detector, config.image_size, "cpu")
    frame = clip_frames(1)[0]
    values = detect(frame)
    assert values.shape == (NUM_VALUES,) and np.isfinite(values).all()
    larger = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)  # resized back to SIZE
    assert larger.shape[0] == 2 * SIZE and detect(larger).shape == (NUM_VALUES,)


def test_frame_detector_warns_once_per_size_when_it_upscales_a_tiny_input(tmp_path):
    from kp_motion.models.checkpoint import load_model

    config, kp_detector, _ = load_model(make_checkpoint(tmp_path / "model"))
    warnings: list[str] = []
    detect = FrameDetector(kp_detector, config.image_size, "cpu", warn=warnings.append)
    detect(clip_frames(1)[0])  # the model's own size: nothing to say
    assert warnings == []
    one_pixel = np.full((1, 1, 3), 200, np.uint8)
    for _ in range(3):
        assert detect(one_pixel).shape == (NUM_VALUES,)
    assert len(warnings) == 1
    assert f"1x1 pixels is upscaled to the model's {SIZE}x{SIZE}" in warnings[0]
