"""Forecaster models: shapes, the Gaussian terms of the losses, the common interface
(observe / predict / reset, state across blocks, gaps), save/load and the benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from forecast_helpers import ramp, single_thread, tiny_settings

from kp_motion.forecasting.base import LearnedForecaster
from kp_motion.forecasting.baselines import ConstantVelocityForecaster, HoldLastForecaster
from kp_motion.forecasting.benchmark import benchmark_forecasters
from kp_motion.forecasting.checkpoint import (
    build_model,
    load_forecaster,
    load_model,
    save_checkpoint,
)
from kp_motion.forecasting.distributions import gaussian_kl, gaussian_nll
from kp_motion.forecasting.normalization import Standardizer, motion_scale
from kp_motion.forecasting.settings import LEARNED_KINDS
from kp_motion.forecasting.synthetic import synthetic_sequences

single_thread()


def learned_forecaster(kind: str, seed: int = 0) -> LearnedForecaster:
    """An untrained model with non-trivial output weights (so that it does more than hold)."""
    torch.manual_seed(seed)
    settings = tiny_settings()
    model = build_model(kind, settings.model_settings(kind))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("weight") and parameter.abs().sum() == 0:
                parameter.normal_(0.0, 0.05)  # the zero-initialised output layers
    frames = synthetic_sequences(2, 80, seed=seed)
    standardizer = Standardizer.fit(frames, std_floor=0.01)
    model.set_motion_scale(motion_scale([standardizer.normalize(f) for f in frames], 1e-3))
    return LearnedForecaster(model, standardizer)


# --- Gaussian terms ---------------------------------------------------------------------------


def test_kl_of_identical_gaussians_is_zero():
    mean = torch.tensor([[0.3, -1.2, 4.0]])
    std = torch.tensor([[0.5, 2.0, 0.1]])
    assert torch.allclose(gaussian_kl(mean, std, mean, std), torch.zeros(1), atol=1e-6)


def test_kl_matches_closed_form_by_hand():
    # KL(N(1, 0.5^2) || N(0, 1)) = log(1/0.5) + (0.25 + 1) / 2 - 1/2
    expected = math.log(2.0) + 1.25 / 2 - 0.5
    kl = gaussian_kl(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]),
                     torch.tensor([1.0]))  # fmt: skip
    assert kl.item() == pytest.approx(expected, rel=1e-6)
    assert kl.item() > 0


def test_gaussian_nll_matches_hand_computation():
    value = torch.tensor([1.0, 2.0])
    mean = torch.tensor([0.0, 2.5])
    std = torch.tensor([2.0, 0.5])
    by_hand = sum(
        0.5 * math.log(2 * math.pi) + math.log(s) + (v - m) ** 2 / (2 * s * s)
        for v, m, s in [(1.0, 0.0, 2.0), (2.0, 2.5, 0.5)]
    )
    assert gaussian_nll(value, mean, std).item() == pytest.approx(by_hand, rel=1e-6)


# --- shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_training_loss_is_finite_scalar_with_gradients(kind):
    settings = tiny_settings()
    model = build_model(kind, settings.model_settings(kind))
    windows = torch.randn(3, settings.train.window_length, 60) * 0.1
    loss, parts = model.training_loss(windows)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert parts and all(math.isfinite(v) for v in parts.values())


@pytest.mark.parametrize("kind", [*LEARNED_KINDS, "hold-last", "constant-velocity"])
def test_predict_shapes_and_types(kind):
    forecaster = learned_forecaster(kind) if kind in LEARNED_KINDS else load_forecaster(kind)
    frames = synthetic_sequences(1, 20, seed=3)[0]
    assert forecaster.predict(0).shape == (0, 60)
    for frame in frames[:5]:
        forecaster.observe(frame)
    predicted = forecaster.predict(7)
    assert predicted.shape == (7, 60) and predicted.dtype == np.float32
    assert np.isfinite(predicted).all()
    sampled = forecaster.predict(3, sample=True)
    assert sampled.shape == (3, 60)


def test_bad_inputs_are_named():
    forecaster = HoldLastForecaster()
    with pytest.raises(ValueError, match="shape"):
        forecaster.observe(np.zeros(59))
    with pytest.raises(ValueError, match="non-negative"):
        forecaster.predict(-1)


def test_sampled_mode_draws_and_mean_mode_is_deterministic():
    forecaster = learned_forecaster("vrnn")
    frames = synthetic_sequences(1, 10, seed=4)[0]

    def run(sample: bool) -> np.ndarray:
        forecaster.reset()
        for frame in frames:
            forecaster.observe(frame)
        return forecaster.predict(5, sample=sample)

    np.testing.assert_array_equal(run(False), run(False))
    assert not np.allclose(run(True), run(True))


# --- interface: predict commits, alternation, gaps --------------------------------------------


def test_predicted_frames_are_committed_like_observed_ones():
    # For the RNN a predicted frame advances the state exactly like observing it.
    frames = synthetic_sequences(1, 10, seed=5)[0]
    first, second = learned_forecaster("rnn"), learned_forecaster("rnn")
    for frame in frames:
        first.observe(frame)
        second.observe(frame)
    predicted = first.predict(3)
    for frame in predicted:
        second.observe(frame)
    np.testing.assert_allclose(first.predict(2), second.predict(2), atol=1e-5)


def test_constant_velocity_alternation_and_gap_on_a_straight_line():
    # On a straight line constant velocity is exact, across observe M / predict N cycles and
    # across a gap filled by prediction: any state bookkeeping error would show.
    line = ramp(60)
    forecaster = ConstantVelocityForecaster()
    t = 0
    for _ in range(4):  # observe 3, predict 2
        for _ in range(3):
            forecaster.observe(line[t])
            t += 1
        np.testing.assert_allclose(forecaster.predict(2), line[t : t + 2], atol=1e-5)
        t += 2
    gap = 6  # frames lost: predict to fill, then resume observing
    np.testing.assert_allclose(forecaster.predict(gap), line[t : t + gap], atol=1e-5)
    t += gap
    forecaster.observe(line[t])
    np.testing.assert_allclose(forecaster.predict(3), line[t + 1 : t + 4], atol=1e-5)


def test_hold_last_repeats_and_reset_forgets():
    line = ramp(5)
    forecaster = HoldLastForecaster()
    for frame in line:
        forecaster.observe(frame)
    np.testing.assert_array_equal(forecaster.predict(3), np.repeat(line[-1:], 3, axis=0))
    forecaster.reset()
    rest = forecaster.predict(1)[0]  # nothing observed: keypoints at 0, identity Jacobians
    np.testing.assert_array_equal(rest[:20], 0)
    np.testing.assert_array_equal(rest[20:24], [1, 0, 0, 1])


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_learned_alternation_is_reproducible_after_reset(kind):
    forecaster = learned_forecaster(kind)
    frames = synthetic_sequences(1, 40, seed=6)[0]

    def stream() -> np.ndarray:
        forecaster.reset()
        outputs, t = [], 0
        while t + 5 <= len(frames):  # observe 3 / predict 2, indefinitely
            for frame in frames[t : t + 3]:
                forecaster.observe(frame)
            outputs.append(forecaster.predict(2))
            t += 5
        outputs.append(forecaster.predict(4))  # a gap: predict to fill ...
        forecaster.observe(frames[0])  # ... then resume with a true frame
        outputs.append(forecaster.predict(1))
        return np.concatenate(outputs)

    first = stream()
    np.testing.assert_array_equal(first, stream())
    assert np.isfinite(first).all()
    # State carries across blocks: the recurrent models remember earlier blocks, so a fresh
    # forecaster that saw only the last block differs; the VAE's state is its context window
    # (the last 2 frames), so it must agree.
    fresh = learned_forecaster(kind)
    for frame in frames[35:38]:
        fresh.observe(frame)
    forecaster.reset()
    for t in range(0, 35, 5):
        for frame in frames[t : t + 3]:
            forecaster.observe(frame)
        forecaster.predict(2)
    for frame in frames[35:38]:
        forecaster.observe(frame)
    carried, fresh_prediction = forecaster.predict(2), fresh.predict(2)
    if kind == "vae":
        np.testing.assert_allclose(carried, fresh_prediction, atol=1e-6)
    else:
        assert not np.allclose(carried, fresh_prediction)


# --- save / load ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_checkpoint_round_trip(kind, tmp_path):
    original = learned_forecaster(kind, seed=7)
    save_checkpoint(tmp_path / kind, original.model, original.standardizer, {"note": "test"})
    loaded = load_forecaster(tmp_path / kind)
    frames = synthetic_sequences(1, 12, seed=8)[0]
    for frame in frames:
        original.observe(frame)
        loaded.observe(frame)
    np.testing.assert_allclose(loaded.predict(6), original.predict(6), atol=1e-6)
    _, standardizer, manifest = load_model(tmp_path / kind)
    np.testing.assert_array_equal(standardizer.std, original.standardizer.std)
    assert manifest["kind"] == kind and manifest["training"] == {"note": "test"}


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_forecaster(tmp_path / "missing")
    original = learned_forecaster("rnn")
    folder = save_checkpoint(tmp_path / "rnn", original.model, original.standardizer)
    (folder / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="safetensors"):
        load_forecaster(folder)
    (folder / "forecaster.yaml").write_text("format_version: 1\nkind: lstm\nmodel: {}\n")
    with pytest.raises(ValueError, match="unknown kind"):
        load_forecaster(folder)


# --- benchmark --------------------------------------------------------------------------------


def test_benchmark_rows():
    rows = benchmark_forecasters(device="cpu", repeats=3, train_steps=1, settings=tiny_settings())
    assert [row.model for row in rows] == [*LEARNED_KINDS, "hold-last", "constant-velocity"]
    for row in rows:
        assert row.observe_ms > 0 and row.predict_ms > 0
        assert (row.train_sequences_per_s is None) == (row.model not in LEARNED_KINDS)
    assert all(row.train_sequences_per_s > 0 for row in rows[:3])
