"""The block protocol: observe k, predict k, advance 2k, until fewer than 2k frames remain."""

from __future__ import annotations

import numpy as np
import pytest
from forecast_helpers import ramp

from kp_motion.data.keypoint_sequences import KeypointSequence
from kp_motion.forecasting.base import Forecaster
from kp_motion.forecasting.baselines import ConstantVelocityForecaster, HoldLastForecaster
from kp_motion.forecasting.protocol import (
    block_indices,
    compare_forecasters,
    protocol_mse,
    run_protocol,
)


def test_block_indices_on_a_known_length():
    # 27 frames, k = 5: blocks start at 0, 10, 20; the last 7 frames (< 2k) are not used.
    blocks = block_indices(27, 5)
    assert blocks == [(range(0, 5), range(5, 10)), (range(10, 15), range(15, 20))]
    assert block_indices(30, 5)[-1] == (range(20, 25), range(25, 30))
    assert block_indices(9, 5) == []
    assert len(block_indices(24, 6)) == 2
    with pytest.raises(ValueError, match="k must be"):
        block_indices(10, 0)


def test_run_protocol_rows_lags_and_values():
    line = ramp(26)
    result = run_protocol(HoldLastForecaster(), line, k=4)
    expected_rows = [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23]
    np.testing.assert_array_equal(result.rows, expected_rows)
    np.testing.assert_array_equal(result.lags, [1, 2, 3, 4] * 3)
    np.testing.assert_array_equal(result.targets, line[expected_rows])
    # Hold-last repeats the last observed frame of its block (rows 3, 11, 19).
    np.testing.assert_array_equal(result.predicted, line[np.repeat([3, 11, 19], 4)])
    # frame_indices map rows to video frame numbers.
    numbered = run_protocol(HoldLastForecaster(), line, 4, frame_indices=np.arange(26) + 100)
    np.testing.assert_array_equal(numbered.frame_indices, np.array(expected_rows) + 100)


class CountingForecaster(Forecaster):
    """Predicts frames filled with the number of true frames observed since the last reset."""

    def __init__(self) -> None:
        super().__init__()
        self.observed = 0

    def _observe(self, frame: np.ndarray) -> None:
        self.observed += 1

    def _predict_next(self, sample: bool) -> np.ndarray:
        # 0.01 per observed frame keeps the values inside the sanitiser's position limit.
        return np.full(60, 0.01 * self.observed, np.float32)

    def _reset(self) -> None:
        self.observed = 0


def test_reset_per_block_flag_decides_what_the_forecaster_remembers():
    line = ramp(30)  # k = 3: 5 blocks
    reset = run_protocol(CountingForecaster(), line, k=3, reset_per_block=True)
    carried = run_protocol(CountingForecaster(), line, k=3, reset_per_block=False)
    np.testing.assert_allclose(reset.predicted[:, 0], [0.03] * 15)
    np.testing.assert_allclose(
        carried.predicted[:, 0], np.repeat([0.03, 0.06, 0.09, 0.12, 0.15], 3)
    )


def test_protocol_mse_over_sequences_and_gaps():
    line = ramp(40)
    sequence = KeypointSequence(
        "clip", line, np.concatenate([np.arange(20), np.arange(30, 50)]).astype(np.int64)
    )
    # The sequence is split at its frame-index gap into two runs of 20 frames: 2 blocks each.
    score = protocol_mse(HoldLastForecaster(), [sequence], k=5)
    assert score.frames == 2 * 2 * 5
    hold = run_protocol(HoldLastForecaster(), line[:20], 5)
    second = run_protocol(HoldLastForecaster(), line[20:], 5)
    expected = np.concatenate([hold.squared_errors(), second.squared_errors()]).mean()
    assert score.mse == pytest.approx(expected, rel=1e-6)
    assert protocol_mse(ConstantVelocityForecaster(), [line], k=5).mse < 1e-10
    with pytest.raises(ValueError, match="long enough"):
        protocol_mse(HoldLastForecaster(), [line[:9]], k=5)


def test_compare_forecasters_rows():
    rows = compare_forecasters(
        {"hold-last": HoldLastForecaster(), "constant-velocity": ConstantVelocityForecaster()},
        [ramp(30)], block_sizes=[3, 6],
    )  # fmt: skip
    assert [(row["model"], row["k"]) for row in rows] == [
        ("hold-last", 3), ("constant-velocity", 3), ("hold-last", 6), ("constant-velocity", 6),
    ]  # fmt: skip
    assert rows[0]["mse"] > rows[1]["mse"]
