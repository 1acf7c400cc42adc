"""Per-dimension standardisation of 60-value keypoint frames.

Positions move by a few hundredths per frame while Jacobian entries sit near 0 or 1; without
standardisation the loss would be dominated by whichever dimensions happen to vary most. The
mean and std come from the training frames only and travel with the model (weights file), so a
forecaster always sees inputs scaled exactly as in training. The std is floored so that a
dimension that barely moves in the training set is not blown up into noise at test time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from kp_motion.keypoints import NUM_VALUES

MEAN_KEY = "normalizer.mean"
STD_KEY = "normalizer.std"


class Standardizer:
    """x_std = (x - mean) / std, per dimension; works on numpy arrays and torch tensors."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        if mean.shape != (NUM_VALUES,) or std.shape != (NUM_VALUES,):
            raise ValueError(
                f"normalisation statistics must have shape ({NUM_VALUES},), "
                f"got mean {mean.shape} and std {std.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise ValueError("normalisation statistics must be finite with a positive std")
        self.mean = mean
        self.std = std
        self._torch_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def identity(cls) -> Standardizer:
        return cls(np.zeros(NUM_VALUES, np.float32), np.ones(NUM_VALUES, np.float32))

    @classmethod
    def fit(cls, sequences: Iterable[np.ndarray], std_floor: float) -> Standardizer:
        """Statistics over all frames of `sequences` (each (T, 60)); std floored at std_floor."""
        if std_floor <= 0:
            raise ValueError(f"std_floor must be positive, got {std_floor}")
        arrays = [np.asarray(values, dtype=np.float64) for values in sequences]
        arrays = [values for values in arrays if len(values)]
        if not arrays:
            raise ValueError("cannot fit normalisation statistics: no training frames")
        frames = np.concatenate(arrays, axis=0)
        if frames.ndim != 2 or frames.shape[1] != NUM_VALUES:
            raise ValueError(f"expected frames of {NUM_VALUES} values, got shape {frames.shape}")
        if not np.isfinite(frames).all():
            raise ValueError("training frames contain NaN or Inf values")
        mean = frames.mean(axis=0)
        std = np.maximum(frames.std(axis=0), std_floor)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def _torch_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._torch_cache:
            self._torch_cache[key] = (
                torch.as_tensor(self.mean, device=like.device, dtype=like.dtype),
                torch.as_tensor(self.std, device=like.device, dtype=like.dtype),
            )
        return self._torch_cache[key]

    def normalize(self, values: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(values, torch.Tensor):
            mean, std = self._torch_stats(values)
            return (values - mean) / std
        return ((np.asarray(values, np.float32) - self.mean) / self.std).astype(np.float32)

    def denormalize(self, values: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(values, torch.Tensor):
            mean, std = self._torch_stats(values)
            return values * std + mean
        return (np.asarray(values, np.float32) * self.std + self.mean).astype(np.float32)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The statistics as named tensors, stored next to the weights."""
        return {
            MEAN_KEY: torch.from_numpy(self.mean.copy()),
            STD_KEY: torch.from_numpy(self.std.copy()),
        }

    @classmethod
    def from_state_tensors(cls, tensors: dict[str, torch.Tensor]) -> Standardizer:
        missing = [key for key in (MEAN_KEY, STD_KEY) if key not in tensors]
        if missing:
            raise ValueError(f"weights file lacks normalisation statistics {missing}")
        return cls(tensors[MEAN_KEY].cpu().numpy(), tensors[STD_KEY].cpu().numpy())


def motion_scale(runs: Iterable[np.ndarray], floor: float) -> np.ndarray:
    """Per-dimension std of frame-to-frame changes of (already standardised) runs, floored.

    The learned forecasters see and predict changes in these units: a change is typically
    ~10x smaller than a frame's spread, and a network that had to dig it out of two nearly equal
    inputs (or produce it as a tiny output) would learn motion slowly.
    """
    changes = [np.diff(np.asarray(run, np.float64), axis=0) for run in runs if len(run) > 1]
    if not changes:
        raise ValueError("cannot measure motion: no run has two consecutive frames")
    stacked = np.concatenate(changes, axis=0)
    return np.maximum(np.sqrt((stacked**2).mean(axis=0)), floor).astype(np.float32)
