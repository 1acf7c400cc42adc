"""Shared pieces of the forecasting tests: tiny model settings and smooth synthetic data."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from kp_motion.forecasting.settings import (
    EvaluationSettings,
    ForecasterSettings,
    load_settings,
)
from kp_motion.keypoints import NUM_KEYPOINTS


def tiny_settings(**train_overrides) -> ForecasterSettings:
    """The shipped model sizes with a short training setup (seconds on one core).

    Per-step cost is dominated by per-operation overhead at these batch sizes, so shrinking the
    models would save little time; they would learn motion more slowly, though.
    """
    shipped = load_settings()
    small = dict(
        steps=200, batch_size=16, window_length=16, learning_rate=3e-3, eval_interval=50,
        eval_windows=32, patience=0,
    )  # fmt: skip
    return ForecasterSettings(
        rnn=shipped.rnn,
        vae=dataclasses.replace(shipped.vae, horizon=8),  # context + horizon <= window
        vrnn=shipped.vrnn,
        linear_ar=shipped.linear_ar,
        direct_linear=shipped.direct_linear,
        train=dataclasses.replace(shipped.train, **{**small, **train_overrides}),
        evaluation=EvaluationSettings(block_sizes=[4, 6], reset_per_block=True),
    )


def ramp(length: int, start: float = -0.5, slope: float = 0.01) -> np.ndarray:
    """(length, 60) frames moving in a straight line: positions and Jacobians change linearly."""
    steps = np.arange(length, dtype=np.float64)[:, None]
    positions = start + slope * steps * np.ones((1, 2 * NUM_KEYPOINTS))
    jacobians = np.tile(np.eye(2).ravel(), NUM_KEYPOINTS)[None] * (1.0 + 0.005 * steps)
    return np.concatenate([positions, jacobians], axis=1).astype(np.float32)


def single_thread() -> None:
    torch.set_num_threads(1)
