"""Training: each learned forecaster, trained for a few hundred steps on smooth synthetic
trajectories, forecasts better than holding the last frame (block protocol, k = 6)."""

from __future__ import annotations

import numpy as np
import pytest
from forecast_helpers import single_thread, tiny_settings

from kp_motion.forecasting.baselines import HoldLastForecaster
from kp_motion.forecasting.checkpoint import load_forecaster
from kp_motion.forecasting.protocol import protocol_mse
from kp_motion.forecasting.settings import LEARNED_KINDS
from kp_motion.forecasting.synthetic import synthetic_sequences
from kp_motion.forecasting.train import sample_windows, split_sequences, train_forecaster

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
    losses = [entry["val_loss"] for entry in result.history]
    assert result.best_val_loss == min(losses) < losses[0]
    learned = protocol_mse(load_forecaster(tmp_path / kind), VAL, k=6).mse
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
    assert result.best_val_loss == min(entry["val_loss"] for entry in result.history)


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
