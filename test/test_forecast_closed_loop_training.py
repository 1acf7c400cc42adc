"""Closed-loop training pieces: the free-running loss, the VRNN's KL annealing and free bits,
the VRNN's mean of sampled rollouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from forecast_helpers import ramp, single_thread, tiny_settings

from kp_motion.forecasting.base import LearnedForecaster
from kp_motion.forecasting.checkpoint import build_model
from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.settings import LEARNED_KINDS
from kp_motion.forecasting.synthetic import synthetic_sequences
from kp_motion.forecasting.train import closed_loop_loss, train_forecaster

single_thread()


@pytest.mark.parametrize("kind", LEARNED_KINDS)
def test_closed_loop_loss_of_an_untrained_model_is_hold_last(kind):
    """Untrained models predict no change; their free-running error along a ramp is that of
    holding the last observed frame, lag by lag."""
    model = build_model(kind, tiny_settings().model_settings(kind)).eval()
    windows = torch.from_numpy(ramp(16)[None])
    k = 4
    lags = torch.arange(1, k + 1, dtype=torch.float32)[:, None]
    slopes = windows[0, 1] - windows[0, 0]  # per-frame change of each value
    expected = (lags * slopes).pow(2).mean()  # motion_scale is 1 in an untrained model
    with torch.no_grad():
        loss = float(closed_loop_loss(model, windows, k))
        assert loss == pytest.approx(float(expected), rel=1e-4)
    with pytest.raises(ValueError, match="shorter than 2k"):
        closed_loop_loss(model, windows, 9)


def test_vrnn_kl_annealing_and_free_bits():
    settings = tiny_settings().vrnn
    model = build_model("vrnn", settings)
    windows = torch.from_numpy(np.stack(synthetic_sequences(4, 12, seed=0)))
    torch.manual_seed(0)
    model.schedule_loss(0, kl_warmup_steps=100, free_bits=0.0)
    loss, parts = model.training_loss(windows)
    assert float(loss.detach()) == pytest.approx(parts["nll"], rel=1e-5)  # KL weight 0 at step 0
    torch.manual_seed(0)
    model.schedule_loss(100, kl_warmup_steps=100, free_bits=50.0)
    loss, parts = model.training_loss(windows)
    # Every latent dimension sits under its 50 free nats: the KL term is the constant floor.
    floor = settings.kl_weight * settings.latent_size * 50.0 / 60
    assert float(loss.detach()) - parts["nll"] == pytest.approx(floor, rel=1e-5)


def test_vrnn_sample_mean_of_one_rollout_is_that_rollout():
    model = build_model("vrnn", tiny_settings().vrnn)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    values = synthetic_sequences(1, 10, seed=3)[0]
    forecaster = LearnedForecaster(model, Standardizer.fit([values], 0.01))
    predictions = []
    for call in ("sample", "mean of 1"):
        forecaster.reset()
        for frame in values:
            forecaster.observe(frame)
        torch.manual_seed(5)
        if call == "sample":
            predictions.append(forecaster.predict(4, sample=True))
        else:
            predictions.append(forecaster.predict_sample_mean(4, samples=1))
    np.testing.assert_allclose(predictions[0], predictions[1], atol=1e-6)
    torch.manual_seed(5)
    assert not np.allclose(forecaster.predict_sample_mean(4, samples=8), predictions[0])


def test_training_with_the_closed_loop_objective_records_it(tmp_path):
    settings = tiny_settings(
        steps=4, eval_interval=2, closed_loop_weight=1.0, closed_loop_k=[4, 6],
        kl_warmup_steps=2, free_bits=0.1,
    )  # fmt: skip
    runs = synthetic_sequences(6, 40, seed=1)
    result = train_forecaster("vrnn", runs[:4], runs[4:], settings, tmp_path, progress=False)
    assert result.steps_run == 4
    assert all(np.isfinite(entry["val_protocol_mse"]) for entry in result.history)
    with pytest.raises(ValueError, match="shorter than 2 x the largest closed_loop_k"):
        train_forecaster("rnn", runs[:4], runs[4:], tiny_settings(closed_loop_weight=1.0,
                         closed_loop_k=[12]), tmp_path / "x", progress=False)  # fmt: skip
