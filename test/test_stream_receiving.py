"""The forecaster node's stream logic without ROS (kp_motion.stream.receiving): one detector
per stream, corrected inputs warned about and counted."""

from __future__ import annotations

import numpy as np

from kp_motion.forecasting.baselines import HoldLastForecaster
from kp_motion.forecasting.schedule import Receiver
from kp_motion.keypoints import NUM_VALUES, Origin
from kp_motion.stream.receiving import WARN_PERIOD_S, KeypointReceiver


def _frame(level: float) -> np.ndarray:
    values = np.zeros(NUM_VALUES, np.float32)
    values[:20] = level  # positions
    values[20:] = np.tile([1.0, 0.0, 0.0, 1.0], 10)  # identity Jacobians
    return values


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _stream(m=2, n=0):
    warnings: list[str] = []
    clock = Clock()
    stream = KeypointReceiver(Receiver(HoldLastForecaster(), m, n), warnings.append, clock)
    return stream, warnings, clock


def test_keypoints_of_another_detector_never_reach_the_forecaster():
    stream, warnings, _ = _stream(m=1, n=1)
    first = stream.receive("detector-a", 0, _frame(0.1))
    assert [f.origin for f in first.frames] == [Origin.DETECTED, Origin.PREDICTED]
    for index in (2, 4):
        refused = stream.receive("detector-b", index, _frame(0.9))
        assert refused.refused and refused.frames == []
    assert len(warnings) == 1 and "'detector-b'" in warnings[0] and "'detector-a'" in warnings[0]
    after = stream.receive("detector-a", 2, _frame(0.2))
    # The hold-last forecast of frame 3 repeats detector a's frame 2: b's 0.9 never got in.
    assert [f.frame_index for f in after.frames] == [2, 3]
    np.testing.assert_allclose(after.frames[-1].values[:20], 0.2)
    assert stream.receiver.stats.received == 2
    assert "2 refused with a foreign model_id" in stream.summary()


def test_corrected_inputs_are_warned_about_and_counted():
    stream, warnings, clock = _stream()
    huge = _frame(0.1)
    huge[0] = 1e30
    result = stream.receive("a", 0, huge)
    assert result.corrected >= 1
    assert abs(result.frames[0].values[0]) < 1e3, "the sanitiser clamped the position"
    assert len(warnings) == 1 and "corrected" in warnings[0] and "frame 0" in warnings[0]
    stream.receive("a", 1, huge)
    assert len(warnings) == 1, "repeated corrections are throttled"
    clock.now += WARN_PERIOD_S
    stream.receive("a", 2, huge)
    assert len(warnings) == 2
    corrected = stream.receiver.stats.inputs_corrected
    assert corrected >= 3
    assert f"{corrected} input values corrected" in stream.summary(malformed=4)
    assert "4 malformed" in stream.summary(malformed=4)


def test_clean_inputs_warn_about_nothing():
    stream, warnings, _ = _stream()
    for index in range(4):
        assert stream.receive("a", index, _frame(0.01 * index)).corrected == 0
    assert warnings == [] and stream.receiver.stats.inputs_corrected == 0
