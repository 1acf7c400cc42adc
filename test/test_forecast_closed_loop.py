"""The closed-loop protocol: no forecaster sees a frame it predicts; pooled and per-step MSEs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from forecast_helpers import ramp, single_thread, tiny_settings

from kp_motion.forecasting.base import LearnedForecaster
from kp_motion.forecasting.baselines import BASELINES
from kp_motion.forecasting.checkpoint import build_model, forecaster_set_members, load_forecaster
from kp_motion.forecasting.closed_loop import (
    ORACLE_NAME,
    SampleMeanForecaster,
    closed_loop_errors,
    oracle_errors,
    score_forecasters,
)
from kp_motion.forecasting.linear import fit_linear
from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.protocol import block_indices, run_protocol
from kp_motion.forecasting.settings import LEARNED_KINDS, LINEAR_KINDS
from kp_motion.forecasting.synthetic import synthetic_sequences

single_thread()
K = 6


def _shipped_vox256():
    """Every member of the shipped vox-256 set, plus the VRNN's mean of sampled rollouts."""
    members = forecaster_set_members("vox-256")
    assert set(LEARNED_KINDS + LINEAR_KINDS) <= set(members)
    forecasters = {f"vox-256/{kind}": load_forecaster(folder) for kind, folder in members.items()}
    sampled = load_forecaster(members["vrnn"])
    forecasters["vox-256/vrnn-sample-mean"] = SampleMeanForecaster(sampled, 4)
    return forecasters


def _fresh_models():
    """Every kind built here: learned ones untrained (random weights, motion scale 1), linear
    ones fit on synthetic motion; they need no shipped file."""
    settings = tiny_settings()
    runs = synthetic_sequences(4, 60, seed=1)
    standardizer = Standardizer.fit(runs, settings.train.std_floor)
    forecasters = {}
    for kind in LEARNED_KINDS:
        torch.manual_seed(0)
        model = build_model(kind, settings.model_settings(kind))
        for parameter in model.parameters():  # no zero-initialised output: all weights count
            torch.nn.init.normal_(parameter, std=0.1)
        forecasters[f"fresh/{kind}"] = LearnedForecaster(model, standardizer)
    for kind in LINEAR_KINDS:
        forecasters[f"fresh/{kind}"] = fit_linear(kind, runs, settings.linear_settings(kind))
    forecasters.update({name: baseline() for name, baseline in BASELINES.items()})
    return forecasters


def _predictions(forecaster, values):
    torch.manual_seed(0)  # sampled rollouts draw the same latents on both runs
    return run_protocol(forecaster, values, K, reset_per_block=False).predicted


@pytest.mark.parametrize("source", [_fresh_models, _shipped_vox256])
def test_no_forecaster_sees_a_frame_it_predicts(source):
    """Predicted frames poisoned with NaN: every forecast is finite and identical to the
    forecast from the clean clip. A forecaster given a poisoned frame would have it repaired by
    its sanitiser and forecast something else."""
    clean = synthetic_sequences(1, 5 * K + 3, seed=7)[0]
    poisoned = clean.copy()
    for _, predicted in block_indices(len(clean), K):
        poisoned[predicted.start : predicted.stop] = np.nan
    for name, forecaster in source().items():
        from_poisoned = _predictions(forecaster, poisoned)
        assert np.isfinite(from_poisoned).all(), name
        np.testing.assert_array_equal(from_poisoned, _predictions(forecaster, clean), err_msg=name)


def test_hold_last_on_a_ramp_gives_the_exact_per_step_errors():
    values = ramp(4 * K)  # positions +0.01 per frame, diagonal Jacobian entries +0.005
    score = closed_loop_errors(BASELINES["hold-last"](), [values], K).score()
    lags = np.arange(1, K + 1)
    np.testing.assert_allclose(score.per_step_positions, (0.01 * lags) ** 2, rtol=1e-3)
    # Two of the four entries of each Jacobian move.
    np.testing.assert_allclose(score.per_step_jacobians, (0.005 * lags) ** 2 / 2, rtol=1e-3)
    assert score.frames == 2 * K
    assert score.all == pytest.approx((20 * score.positions + 40 * score.jacobians) / 60)


def test_oracle_is_one_step_behind_and_scored_apart():
    values = ramp(4 * K)
    oracle = oracle_errors([values], K).score()
    np.testing.assert_allclose(oracle.per_step_positions, np.full(K, 0.01**2), rtol=1e-3)
    scores = score_forecasters({"hold-last": BASELINES["hold-last"]()}, [values], [K])
    assert set(scores[K]) == {"hold-last", ORACLE_NAME}


def test_state_carries_across_blocks():
    """The running mean of direct-linear covers every observed block of a clip: scoring the
    clip whole differs from scoring its second half alone."""
    runs = synthetic_sequences(3, 80, seed=2)
    forecaster = fit_linear("direct-linear", runs, tiny_settings().direct_linear)
    clip = runs[0]
    whole = run_protocol(forecaster, clip, K, reset_per_block=False).predicted
    second_half = run_protocol(forecaster, clip[4 * K :], K, reset_per_block=False).predicted
    assert not np.allclose(whole[2 * K : 3 * K], second_half[:K])
