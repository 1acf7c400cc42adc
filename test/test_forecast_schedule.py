"""The streaming schedule: which frames the sender passes, and the Receiver on scripted streams
(withheld frames predicted, lost frames concealed, duplicates dropped, new streams reset)."""

from __future__ import annotations

import numpy as np
import pytest
from forecast_helpers import ramp

from kp_motion.forecasting.baselines import ConstantVelocityForecaster
from kp_motion.forecasting.schedule import Receiver, is_last_transmitted, is_transmitted
from kp_motion.keypoints import Origin

D, P, C = Origin.DETECTED, Origin.PREDICTED, Origin.CONCEALED
LINE = ramp(300, slope=0.004)  # constant velocity forecasts a straight line exactly


def test_is_transmitted_passes_the_first_m_of_every_m_plus_n():
    assert [is_transmitted(i, 3, 2) for i in range(11)] == [1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1]
    assert all(is_transmitted(i, 4, 0) for i in range(9))
    assert [i for i in range(12) if is_last_transmitted(i, 3, 2)] == [2, 7]
    with pytest.raises(ValueError, match="M >= 1"):
        is_transmitted(0, 0, 2)
    with pytest.raises(ValueError, match="frame_index"):
        is_transmitted(-1, 3, 2)


def summary(emitted) -> list[tuple[int, Origin]]:
    return [(frame.frame_index, frame.origin) for frame in emitted]


def test_receiver_on_a_scripted_stream():
    receiver = Receiver(ConstantVelocityForecaster(), m=3, n=2, max_gap=60)

    def receive(index: int):
        emitted = receiver.receive(index, LINE[index])
        for frame in emitted:  # every emitted frame, true or forecast, is the line's value
            np.testing.assert_allclose(frame.values, LINE[frame.frame_index], atol=1e-5)
        return summary(emitted)

    assert receive(0) == [(0, D)]
    assert receive(1) == [(1, D)]
    assert receive(2) == [(2, D), (3, P), (4, P)]  # withheld frames right after frame 2
    assert receive(5) == [(5, D)]
    assert receive(6) == [(6, D)]
    # Frame 7 is lost: noticed when 10 arrives; 8 and 9 were withheld, so they stay PREDICTED.
    assert receive(10) == [(7, C), (8, P), (9, P), (10, D)]
    assert receive(6) == []  # a duplicate
    assert receive(11) == [(11, D)]
    assert receive(12) == [(12, D), (13, P), (14, P)]
    # Nothing arrives: the timeout path conceals the transmitted frames 15..17.
    assert summary(receiver.predict_until(17)) == [(15, C), (16, C), (17, C)]
    assert receive(16) == []  # arrived too late: already concealed
    assert receive(20) == [(18, P), (19, P), (20, D)]
    assert receiver.last_emitted == 20
    stats = receiver.stats
    assert (stats.received, stats.detected, stats.dropped) == (11, 9, 2)
    assert (stats.predicted, stats.concealed, stats.resets) == (8, 4, 0)


def test_receiver_resets_on_far_jumps_and_restarts():
    receiver = Receiver(ConstantVelocityForecaster(), m=3, n=2, max_gap=10)
    receiver.receive(0, LINE[0])
    receiver.receive(1, LINE[1])
    # Jump ahead by more than max_gap: a new stream, nothing invented for frames 2..99.
    assert summary(receiver.receive(100, LINE[100])) == [(100, D)]
    assert receiver.stats.resets == 1
    emitted = receiver.receive(101, LINE[101])
    assert summary(emitted) == [(101, D)]
    # Index falls back far: a restarted sender; the forecaster starts from scratch (after one
    # frame constant velocity has no velocity, so it holds that frame).
    assert summary(receiver.receive(1, LINE[1])) == [(1, D)]
    emitted = receiver.receive(2, LINE[2])
    assert summary(emitted) == [(2, D), (3, P), (4, P)]
    np.testing.assert_allclose(emitted[1].values, LINE[3], atol=1e-5)
    assert receiver.stats.resets == 2 and receiver.stats.dropped == 0


def test_predict_until_stops_max_gap_after_the_last_received_frame():
    receiver = Receiver(ConstantVelocityForecaster(), m=5, n=0, max_gap=4)
    assert receiver.predict_until(10) == []  # nothing received yet: nothing to forecast from
    receiver.receive(0, LINE[0])
    assert summary(receiver.predict_until(100)) == [(i, C) for i in range(1, 5)]
    assert receiver.predict_until(200) == []
    assert receiver.stats.concealed == 4


def test_receiver_sanitises_received_frames_and_rejects_bad_ones():
    receiver = Receiver(ConstantVelocityForecaster(), m=2, n=1)
    frame = LINE[0].copy()
    frame[0] = np.nan
    (emitted,) = receiver.receive(0, frame)
    assert np.isfinite(emitted.values).all() and receiver.stats.inputs_corrected == 1
    with pytest.raises(ValueError, match="shape"):
        receiver.receive(1, np.zeros(10))
    with pytest.raises(ValueError, match="max_gap"):
        Receiver(ConstantVelocityForecaster(), m=2, n=5, max_gap=3)
