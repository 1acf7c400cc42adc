"""Synthetic smooth keypoint trajectories: a stand-in dataset for tests and for comparing the
forecasters before real detector keypoints exist. Each of the 60 values is a sum of two
sinusoids with random period, phase and amplitude (positions around a random rest pose,
Jacobians around the identity), plus optional Gaussian jitter like a detector's.
Results on this data say nothing about real videos; they only show that a model learns motion.
"""

from __future__ import annotations

import numpy as np

from kp_motion.keypoints import NUM_KEYPOINTS, NUM_VALUES, POSITION_VALUES

PERIOD_RANGE = (20.0, 80.0)  # frames: 0.7 to 2.7 s of motion at 30 fps
POSITION_AMPLITUDE = (0.02, 0.12)
JACOBIAN_AMPLITUDE = (0.02, 0.1)  # keeps singular values well inside the guard's range


def synthetic_sequence(length: int, rng: np.random.Generator, noise_std: float = 0.0) -> np.ndarray:
    """One (length, 60) float32 sequence."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    time = np.arange(length, dtype=np.float64)[:, None, None]  # (T, 1, 1)
    periods = rng.uniform(*PERIOD_RANGE, size=(1, NUM_VALUES, 2))
    phases = rng.uniform(0.0, 2 * np.pi, size=(1, NUM_VALUES, 2))
    amplitudes = np.concatenate(
        [
            rng.uniform(*POSITION_AMPLITUDE, size=(1, POSITION_VALUES, 2)),
            rng.uniform(*JACOBIAN_AMPLITUDE, size=(1, NUM_VALUES - POSITION_VALUES, 2)),
        ],
        axis=1,
    )
    motion = (amplitudes * np.sin(2 * np.pi * time / periods + phases)).sum(axis=-1)
    rest = np.concatenate(
        [
            rng.uniform(-0.6, 0.6, size=POSITION_VALUES),
            np.tile(np.eye(2).ravel(), NUM_KEYPOINTS),
        ]
    )
    values = rest + motion
    if noise_std > 0:
        values = values + rng.normal(0.0, noise_std, size=values.shape)
    return values.astype(np.float32)


def synthetic_sequences(
    count: int, length: int, seed: int, noise_std: float = 0.0
) -> list[np.ndarray]:
    """`count` independent sequences, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    return [synthetic_sequence(length, rng, noise_std) for _ in range(count)]
