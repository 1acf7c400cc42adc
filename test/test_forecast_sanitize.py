"""The sanitiser: forecasts and received frames are never NaN/Inf, never carry Jacobians the
renderer's guard would reject, and every repair is counted."""

from __future__ import annotations

import numpy as np
import torch
from forecast_helpers import single_thread, tiny_settings

from kp_motion.forecasting.base import LearnedForecaster
from kp_motion.forecasting.checkpoint import build_model
from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.sanitize import Sanitizer, guard_frames
from kp_motion.jacobian import MAX_SINGULAR_VALUE, MIN_SINGULAR_VALUE, POSITION_LIMIT
from kp_motion.keypoints import unpack

single_thread()


def valid_frame() -> np.ndarray:
    frame = np.zeros(60, np.float32)
    frame[:20] = np.linspace(-0.9, 0.9, 20)
    frame[20:] = np.tile([1.1, 0.2, -0.1, 0.9], 10)
    return frame


def assert_renderable(frames: np.ndarray) -> None:
    positions, jacobians = unpack(frames)
    assert np.isfinite(frames).all()
    assert (np.abs(positions) <= POSITION_LIMIT).all()
    singular = np.linalg.svd(jacobians.astype(np.float64), compute_uv=False)
    assert (singular >= MIN_SINGULAR_VALUE - 1e-5).all()
    assert (singular <= MAX_SINGULAR_VALUE + 1e-4).all()


def test_valid_frames_pass_untouched():
    sanitizer = Sanitizer()
    frame = valid_frame()
    np.testing.assert_array_equal(sanitizer(frame), frame)
    assert sanitizer.total == 0


def test_nan_inf_singular_and_huge_values_are_repaired_and_counted():
    sanitizer = Sanitizer()
    frame = valid_frame()
    frame[0] = np.nan  # keypoint 0 position
    frame[3] = 7.0  # keypoint 1 position beyond the limit
    frame[20:24] = [np.inf, 0, 0, 1]  # Jacobian 0 non-finite -> identity
    frame[24:28] = 0.0  # Jacobian 1 singular
    frame[28:32] = [1e4, 0, 0, 1]  # Jacobian 2 huge
    safe = sanitizer(frame)
    assert_renderable(safe)
    assert safe[0] == 0.0 and safe[3] == POSITION_LIMIT
    np.testing.assert_array_equal(safe[20:24], [1, 0, 0, 1])
    np.testing.assert_array_equal(safe[32:], frame[32:])  # untouched Jacobians stay as they were
    assert sanitizer.positions == 2 and sanitizer.jacobians == 3
    assert sanitizer.total == 5


def test_batches_and_cheap_check_agree_with_the_guard():
    rng = np.random.default_rng(0)
    frames = rng.normal(0.0, 0.6, size=(200, 60)).astype(np.float32)
    frames[:, 20:] *= rng.choice([0.01, 1.0, 30.0], size=(200, 1)).astype(np.float32)
    sanitizer = Sanitizer()
    safe = sanitizer(frames)
    reference, positions_fixed, jacobians_fixed = guard_frames(torch.from_numpy(frames))
    np.testing.assert_allclose(safe, reference.numpy(), rtol=1e-5, atol=1e-6)
    assert (sanitizer.positions, sanitizer.jacobians) == (positions_fixed, jacobians_fixed)
    assert_renderable(safe)


def test_a_diverging_forecaster_still_emits_renderable_frames():
    settings = tiny_settings()
    model = build_model("rnn", settings.rnn)
    with torch.no_grad():
        model.head.bias.fill_(1e6)  # every step adds a huge change
    forecaster = LearnedForecaster(model, Standardizer.identity())
    forecaster.observe(valid_frame())
    predicted = forecaster.predict(5)
    assert_renderable(predicted)
    assert forecaster.corrections >= 5 * 20  # 10 positions + 10 Jacobians per frame


def test_corrupt_observed_frame_cannot_poison_the_state():
    model = build_model("vrnn", tiny_settings().vrnn)
    forecaster = LearnedForecaster(model, Standardizer.identity())
    frame = valid_frame()
    frame[5] = np.nan
    forecaster.observe(frame)
    assert forecaster.corrections == 1
    assert np.isfinite(forecaster.predict(3)).all()
