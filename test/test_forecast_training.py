"""Training: each learned forecaster, trained for a few hundred steps on smooth synthetic
trajectories, forecasts better than holding the last frame (block protocol, k = 6); the kept
checkpoint is the one with the best validation score of the chosen criterion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from forecast_helpers import ramp, single_thread, tiny_settings

from kp_motion.forecasting.baselines import HoldLastForecaster
from kp_motion.forecasting.checkpoint import (
    build_model,
    load_forecaster,
    load_model,
    save_checkpoint,
)
from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.protocol import block_windows, protocol_mse
from kp_motion.forecasting.settings import LEARNED_KINDS
from kp_motion.forecasting.synthetic import synthetic_sequences
from kp_motion.forecasting.train import (
    batched_protocol_mse,
    protocol_scores,
    sample_windows,
    split_sequences,
    time_flip,
    train_forecaster,
)

single_thread()

# Many short sequences: with few, the models memorise each sequence's motion (its rest pose
# identifies it) instead of learning to extrapolate.
TRAIN = synthetic_sequences(200, 48, seed=1)
VAL = synthetic_sequences(4, 120, seed=2)


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_trained_forecaster_beats_hold_last(kind, tmp_path):
    # The VAE's steps are ~8x cheaper than the VRNN's; it gets more of them.
    settings = tiny_settings(steps=400 if kind == "vae" else 200)
    result = train_forecaster(kind, TRAIN, VAL, settings, tmp_path / kind, progress=False)
    assert result.steps_run == settings.train.steps
    assert (tmp_path / kind / "weights.safetensors").is_file()
    scores = [entry["val_protocol_mse"] for entry in result.history]
    assert result.selected_by == "protocol"
    assert result.best_score == min(scores) < scores[0]
    learned = protocol_mse(load_forecaster(tmp_path / kind), VAL, k=6).mse
    # The kept weights are those of the best validation (VAL is the validation set here).
    best = next(entry for entry in result.history if entry["step"] == result.best_step)
    assert learned == pytest.approx(best["val_mse_k6"], rel=1e-4)
    hold_last = protocol_mse(HoldLastForecaster(), VAL, k=6).mse
    print(f"{kind}: protocol MSE k=6 {learned:.3e} vs hold-last {hold_last:.3e}")
    assert learned < 0.75 * hold_last


def test_training_is_reproducible_with_a_seed(tmp_path):
    settings = tiny_settings(steps=20, eval_interval=10)
    first = train_forecaster("rnn", TRAIN, VAL, settings, tmp_path / "a", progress=False)
    second = train_forecaster("rnn", TRAIN, VAL, settings, tmp_path / "b", progress=False)
    assert first.history == second.history
    weights = [(tmp_path / f / "weights.safetensors").read_bytes() for f in ("a", "b")]
    assert weights[0] == weights[1]


def test_patience_stops_early_and_keeps_the_best(tmp_path):
    # A learning rate of 0.5 makes validation worse after the first evaluation.
    settings = tiny_settings(steps=200, eval_interval=5, patience=2, learning_rate=0.5)
    result = train_forecaster("rnn", TRAIN, VAL, settings, tmp_path, progress=False)
    assert result.steps_run < 200
    assert result.best_score == min(entry["val_protocol_mse"] for entry in result.history)


def test_select_by_loss_keeps_the_lowest_validation_loss(tmp_path):
    settings = tiny_settings(steps=60, eval_interval=10, select_by="loss")
    result = train_forecaster("vrnn", TRAIN, VAL, settings, tmp_path, progress=False)
    losses = [entry["val_loss"] for entry in result.history]
    assert result.selected_by == "loss" and result.best_score == min(losses)
    best = next(entry for entry in result.history if entry["step"] == result.best_step)
    assert best["val_loss"] == min(losses)
    with pytest.raises(ValueError, match="select_by must be one of"):
        train_forecaster("rnn", TRAIN, VAL, tiny_settings(select_by="elbo"), tmp_path / "x")


def test_protocol_selection_needs_a_long_enough_validation_sequence(tmp_path):
    short = [ramp(10)]  # long enough for a training window of 6, not for a block of 2 x 6
    settings = tiny_settings(steps=5, window_length=6)
    settings.evaluation.block_sizes = [6]
    with pytest.raises(ValueError, match="no validation sequence has the 2k"):
        train_forecaster("rnn", TRAIN, short, settings, tmp_path, progress=False)


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_batched_protocol_mse_equals_the_streaming_protocol(kind, tmp_path):
    # An untrained model with random weights (not the hold-last start) makes the check strict.
    torch.manual_seed(0)
    settings = tiny_settings()
    model = build_model(kind, settings.model_settings(kind))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    standardizer = Standardizer.fit(VAL, std_floor=0.01)
    save_checkpoint(tmp_path, model, standardizer, {})
    forecaster = load_forecaster(tmp_path)
    streaming = protocol_mse(forecaster, VAL, k=6).mse
    # The batch has no sanitiser; at 0.05 the VRNN proposed Jacobians it had to repair.
    assert forecaster.corrections == 0
    blocks = torch.from_numpy(block_windows(VAL, 6))
    assert blocks.shape == (4 * 10, 12, 60)  # 120 frames: 10 blocks of 12 per sequence
    batched = batched_protocol_mse(load_model(tmp_path)[0], standardizer, blocks)
    assert batched == pytest.approx(streaming, rel=1e-4)
    scores = protocol_scores(
        model, standardizer, {6: blocks, 4: torch.from_numpy(block_windows(VAL, 4))}
    )
    expected = np.sqrt(scores["val_mse_k6"] * scores["val_mse_k4"])
    assert scores["val_protocol_mse"] == pytest.approx(expected)


def test_windows_and_split():
    runs = [np.arange(10)[:, None] * np.ones((1, 60)), np.arange(5)[:, None] * np.ones((1, 60))]
    windows = sample_windows(np.random.default_rng(0), runs, batch_size=50, length=6)
    assert windows.shape == (50, 6, 60)
    assert (np.diff(windows[:, :, 0], axis=1) == 1).all()  # consecutive frames of one run
    assert windows[:, 0, 0].max() <= 4  # the 5-frame run is too short for a window of 6
    train, val = split_sequences(list(range(10)), val_fraction=0.2, seed=0)
    assert len(train) == 8 and len(val) == 2 and not set(train) & set(val)
    only, same = split_sequences([7], val_fraction=0.2, seed=0)
    assert only is same
    with pytest.raises(ValueError, match="window_length"):
        train_forecaster("rnn", [np.zeros((5, 60))], VAL, tiny_settings(), "unused")


def test_time_flip_reverses_the_chosen_share_of_windows():
    windows = np.arange(400 * 5 * 60, dtype=np.float32).reshape(400, 5, 60)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(time_flip(rng, windows, 0.0), windows)
    np.testing.assert_array_equal(time_flip(rng, windows, 1.0), windows[:, ::-1])
    half = time_flip(rng, windows, 0.5)
    reversed_rows = (half == windows[:, ::-1]).all(axis=(1, 2))
    kept_rows = (half == windows).all(axis=(1, 2))
    assert (reversed_rows ^ kept_rows).all() and 160 < reversed_rows.sum() < 240
    with pytest.raises(ValueError, match="time_flip is a probability"):
        train_forecaster("rnn", TRAIN, VAL, tiny_settings(time_flip=1.5), "unused")
