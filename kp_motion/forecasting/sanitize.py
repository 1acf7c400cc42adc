"""Make forecast (and received) frames safe to render, and count every repair.

A forecaster that runs autoregressively can drift into NaN, Inf, far-away positions or
near-singular Jacobians; the renderer inverts the Jacobians, so one bad matrix would ruin a
frame. Every frame that leaves (or enters) a forecaster goes through `Sanitizer`, which applies
the project's guard (kp_motion.jacobian) and keeps running counts of what it corrected.

The guard's SVD costs ~0.1 ms per frame, a noticeable share of a forecaster step. Almost every
frame is already valid, so a closed-form check of the 2x2 singular values runs first and the
guard runs only for frames that fail it (or sit so close to a limit that rounding could matter).
"""

from __future__ import annotations

import numpy as np
import torch

from kp_motion.jacobian import (
    MAX_SINGULAR_VALUE,
    MIN_SINGULAR_VALUE,
    POSITION_LIMIT,
    guard_jacobians,
    guard_positions,
)
from kp_motion.keypoints import NUM_VALUES, POSITION_VALUES

# Frames within this relative distance of a guard limit are handed to the guard itself.
_LIMIT_MARGIN = 1e-4


def _singular_values_squared(jacobians: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(smallest, largest) squared singular values of (..., 4) row-major 2x2 matrices."""
    a, b, c, d = (jacobians[..., i].astype(np.float64) for i in range(4))
    frobenius = a * a + b * b + c * c + d * d
    det = a * d - b * c
    largest = 0.5 * (frobenius + np.sqrt(np.maximum(frobenius**2 - 4.0 * det * det, 0.0)))
    # s_min^2 = det^2 / s_max^2 is the numerically stable form of the smaller root.
    smallest = np.where(largest > 0, det * det / np.maximum(largest, 1e-300), 0.0)
    return smallest, largest


def frames_need_guard(frames: np.ndarray) -> np.ndarray:
    """Boolean (...,) mask of frames the guard might change (cheap, conservative test)."""
    positions = frames[..., :POSITION_VALUES]
    jacobians = frames[..., POSITION_VALUES:].reshape(*frames.shape[:-1], -1, 4)
    finite = np.isfinite(frames).all(axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        positions_ok = (np.abs(positions) <= POSITION_LIMIT * (1 - _LIMIT_MARGIN)).all(axis=-1)
        smallest, largest = _singular_values_squared(jacobians)
        low = (MIN_SINGULAR_VALUE * (1 + _LIMIT_MARGIN)) ** 2
        high = (MAX_SINGULAR_VALUE * (1 - _LIMIT_MARGIN)) ** 2
        jacobians_ok = ((smallest >= low) & (largest <= high)).all(axis=-1)
    return ~(finite & positions_ok & jacobians_ok)


def guard_frames(frames: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Apply the project guard to (..., 60) frames.

    Returns (safe frames, keypoint positions corrected, Jacobian matrices corrected).
    """
    lead = frames.shape[:-1]
    positions = frames[..., :POSITION_VALUES].reshape(*lead, -1, 2)
    jacobians = frames[..., POSITION_VALUES:].reshape(*lead, -1, 2, 2)
    safe_positions, positions_fixed = guard_positions(positions)
    safe_jacobians, jacobians_fixed = guard_jacobians(jacobians)
    safe = torch.cat([safe_positions.reshape(*lead, -1), safe_jacobians.reshape(*lead, -1)], -1)
    return safe, positions_fixed, jacobians_fixed


class Sanitizer:
    """Callable that returns safe float32 frames and counts corrections.

    `positions` counts keypoint positions repaired (non-finite or beyond the position limit),
    `jacobians` counts 2x2 Jacobians repaired (non-finite or singular values out of range).
    """

    def __init__(self) -> None:
        self.positions = 0
        self.jacobians = 0

    @property
    def total(self) -> int:
        return self.positions + self.jacobians

    def reset_counts(self) -> None:
        self.positions = 0
        self.jacobians = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(..., 60) array -> safe float32 array of the same shape (a copy only if repaired)."""
        frames = np.asarray(frames, dtype=np.float32)
        if frames.shape[-1:] != (NUM_VALUES,):
            raise ValueError(f"expected frames of {NUM_VALUES} values, got shape {frames.shape}")
        needs = frames_need_guard(frames)
        if not needs.any():
            return frames
        repaired = frames.copy()
        safe, positions_fixed, jacobians_fixed = guard_frames(torch.from_numpy(frames[needs]))
        repaired[needs] = safe.numpy()
        self.positions += positions_fixed
        self.jacobians += jacobians_fixed
        return repaired

    def as_dict(self) -> dict[str, int]:
        return {"positions_corrected": self.positions, "jacobians_corrected": self.jacobians}
