"""Linear forecasters: least squares recovers a known autoregression; save / load round trip."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.forecasting.checkpoint import load_forecaster
from kp_motion.forecasting.linear import features, fit_linear, save_linear
from kp_motion.forecasting.settings import LinearSettings


def _ar1_changes(length: int, coefficient: float, seed: int) -> np.ndarray:
    """(length, 60) frames whose changes follow d_{t+1} = coefficient * d_t + noise, around a
    valid frame (identity Jacobians, centred keypoints)."""
    rng = np.random.default_rng(seed)
    changes = np.zeros((length, 60))
    for t in range(1, length):
        changes[t] = coefficient * changes[t - 1] + rng.normal(0, 1e-3, 60)
    base = np.concatenate([np.zeros(20), np.tile([1.0, 0.0, 0.0, 1.0], 10)])
    return (base + np.cumsum(changes, axis=0)).astype(np.float32)


def test_least_squares_recovers_the_autoregression():
    runs = [_ar1_changes(1500, 0.5, seed) for seed in range(4)]
    plain = LinearSettings(lags=3, horizon=3, running_mean=False, group_motion=False, ridge=0.0)
    forecaster = fit_linear("direct-linear", runs, plain)
    last_change = forecaster.coefficients[:, :, 0] / forecaster.feature_scale[:, None, 0]
    # x_{t+h} - x_t = (0.5 + 0.25 + ...) d_t: 0.5, 0.75, 0.875 for h = 1, 2, 3.
    np.testing.assert_allclose(last_change, np.tile([0.5, 0.75, 0.875], (6, 1)), atol=0.05)
    older = forecaster.coefficients[:, :, 1:] / forecaster.feature_scale[:, None, 1:]
    assert np.abs(older).max() < 0.05


def test_round_trip_and_one_step_chaining(tmp_path):
    runs = [_ar1_changes(200, 0.5, seed) for seed in range(2)]
    settings = LinearSettings(lags=2, horizon=1, running_mean=True, group_motion=True, ridge=1e-4)
    fitted = fit_linear("linear-ar", runs, settings)
    loaded = load_forecaster(save_linear(tmp_path / "ar", fitted))
    assert loaded.name == "linear-ar"
    for forecaster in (fitted, loaded):
        forecaster.reset()
        for frame in runs[0][:10]:
            forecaster.observe(frame)
    # Horizon 1 chains ten one-step passes; the loaded copy (float32 weights) agrees.
    np.testing.assert_allclose(loaded.predict(10), fitted.predict(10), atol=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="group_motion needs lags >= 2"):
        fit_linear("direct-linear", [np.zeros((20, 60), np.float32)],
                   LinearSettings(lags=1, horizon=2, running_mean=False, group_motion=True,
                                  ridge=0.0))  # fmt: skip
    with pytest.raises(ValueError, match="unknown linear forecaster kind"):
        fit_linear("quadratic", [], LinearSettings(2, 2, False, False, 0.0))


def test_every_feature_option_matches_its_count():
    recent = np.random.default_rng(0).normal(size=(6, 60))
    for squares in (False, True):
        for common in (False, True):
            for running_mean in (False, True):
                settings = LinearSettings(5, 12, running_mean, True, 1e-4, squares, common)
                assert features(settings, recent, recent[-1]).shape == (60, settings.num_features)


def test_the_common_motion_is_every_channels_mean_change():
    recent = np.zeros((3, 60))
    recent[-1, 0::2][:10] = 1.0  # every keypoint's x moves by 1, nothing else moves
    settings = LinearSettings(2, 1, False, False, 0.0, common_motion=True)
    common = features(settings, recent, recent[-1])[:, 2:]
    np.testing.assert_allclose(common, np.tile([1.0, 0, 0, 0, 0, 0], (60, 1)))


def test_a_checkpoint_from_before_the_options_loads_without_them(tmp_path):
    runs = [_ar1_changes(200, 0.5, seed) for seed in range(2)]
    settings = LinearSettings(lags=2, horizon=2, running_mean=True, group_motion=True, ridge=1e-4)
    folder = save_linear(tmp_path / "old", fit_linear("direct-linear", runs, settings))
    manifest = folder / "forecaster.yaml"
    text = manifest.read_text()
    assert "signed_squares: false" in text
    manifest.write_text(text.replace("  signed_squares: false\n", "").replace(
        "  common_motion: false\n", ""))  # fmt: skip
    loaded = load_forecaster(folder)
    assert not loaded.settings.signed_squares and not loaded.settings.common_motion
