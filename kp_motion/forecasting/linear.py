"""Linear forecasters fit by least squares: the linear autoregressive baseline and the direct
multi-horizon model ("direct-linear") designed to beat hold-last on real face keypoints.

Both predict a frame's change from the last frame, x_{t+h} = x_t + w_{c,h} . f_d(t), from a few
features of each value d alone, with one coefficient vector per channel c (x, y and the four
Jacobian entries, 6 channels) shared by the 10 keypoints:

    f_d(t) = [x_t - x_{t-1}, ..., x_{t-L+1} - x_{t-L}]        the last L changes of d
             + [r_t - x_t]            if running_mean: pull towards the mean r_t of every true
                                      frame observed since reset (levels persist, increments
                                      are noisy: damping towards the clip's own mean helps)
             + [g(x_t - x_{t-1}), g(x_{t-1} - x_{t-2})]   if group_motion: the change of the
                                      channel averaged over the 10 keypoints (the head's motion)
             + [c|c| of x_t - x_{t-1} (and of r_t - x_t)]  if signed_squares
             + [g_c(x_t - x_{t-1}) for the 6 channels c]   if common_motion: the head's motion
                                      in every channel, not only the value's own

Why so few, shared coefficients: on the VoxCeleb keypoints, a model with cross-value weights
(every value's changes and levels as features) fit to five identities was worse than hold-last on
the sixth; identity-free features with per-channel coefficients generalise.

- linear-ar: horizon 1, changes only; predictions are fed back one step at a time.
- direct-linear: one coefficient vector per lag h = 1..horizon (a "direct" forecast: no error
  compounding through fed-back predictions). Predicting further than `horizon` chains passes.

Running mean: only true (observed) frames enter it, never predicted ones; the change features
read the most recent frames, predicted or not (a stream that predicts after one true frame has
nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kp_motion import config as config_io
from kp_motion.forecasting.base import Forecaster
from kp_motion.forecasting.baselines import rest_frame
from kp_motion.forecasting.settings import LINEAR_KINDS, NUM_CHANNELS, LinearSettings
from kp_motion.keypoints import NUM_KEYPOINTS, NUM_VALUES, POSITION_VALUES

COEFFICIENTS_KEY = "coefficients"
FEATURE_SCALE_KEY = "feature_scale"


def channel_of_value() -> np.ndarray:
    """(60,) channel index (0..5) of every value of the kp_motion.keypoints layout."""
    channels = np.empty(NUM_VALUES, dtype=np.int64)
    channels[:POSITION_VALUES] = np.tile([0, 1], NUM_KEYPOINTS)
    channels[POSITION_VALUES:] = np.tile([2, 3, 4, 5], NUM_KEYPOINTS)
    return channels


CHANNELS = channel_of_value()


def _channel_means(changes: np.ndarray) -> np.ndarray:
    """(..., 60) -> (..., 60): every value replaced by the mean of its channel over keypoints."""
    out = np.empty_like(changes)
    for channel in range(NUM_CHANNELS):
        members = channel == CHANNELS
        out[..., members] = changes[..., members].mean(axis=-1, keepdims=True)
    return out


def _common_changes(changes: np.ndarray) -> np.ndarray:
    """(..., 60) -> (..., 60, 6): for every value, the change of each channel averaged over
    the keypoints (the same 6 numbers for every value)."""
    means = np.stack(
        [changes[..., channel == CHANNELS].mean(axis=-1) for channel in range(NUM_CHANNELS)],
        axis=-1,
    )
    return np.broadcast_to(means[..., None, :], (*changes.shape, NUM_CHANNELS))


def features(settings: LinearSettings, recent: np.ndarray, running_mean: np.ndarray) -> np.ndarray:
    """(..., 60, F) features from (..., lags + 1, 60) recent frames (oldest first) and the
    (..., 60) running mean."""
    changes = np.diff(recent, axis=-2)[..., ::-1, :]  # newest change first
    columns = [changes[..., lag, :] for lag in range(settings.lags)]
    pull = running_mean - recent[..., -1, :]
    if settings.running_mean:
        columns.append(pull)
    if settings.group_motion:
        columns += [_channel_means(changes[..., 0, :]), _channel_means(changes[..., 1, :])]
    if settings.signed_squares:
        # Large moves revert (or continue) differently from small ones: c|c| lets the linear
        # fit bend, keeping the sign.
        columns.append(changes[..., 0, :] * np.abs(changes[..., 0, :]))
        if settings.running_mean:
            columns.append(pull * np.abs(pull))
    if settings.common_motion:
        # The head's motion in every channel (a turn moves positions and Jacobians together).
        columns += list(np.moveaxis(_common_changes(changes[..., 0, :]), -1, 0))
    return np.stack(columns, axis=-1)


def training_samples(
    settings: LinearSettings, runs: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(features (S, 60, F), changes (S, horizon, 60)) at every frame t of every run that has
    `horizon` frames after it. Before frame `lags` the first frame is repeated (as in a
    stream), and the running mean covers frames 0..t of the run."""
    all_features, all_targets = [], []
    span = settings.lags + 1
    for run in runs:
        run = np.asarray(run, np.float64)
        if len(run) <= settings.horizon:
            continue
        padded = np.concatenate([np.repeat(run[:1], settings.lags, axis=0), run])
        anchors = np.arange(len(run) - settings.horizon)
        recent = np.stack([padded[t : t + span] for t in anchors])
        running = np.cumsum(run, axis=0)[anchors] / (anchors[:, None] + 1)
        lags = np.arange(1, settings.horizon + 1)
        targets = run[anchors[:, None] + lags[None]] - run[anchors][:, None]
        all_features.append(features(settings, recent, running))
        all_targets.append(targets)
    if not all_features:
        raise ValueError(f"no training run is longer than horizon={settings.horizon} frames")
    return np.concatenate(all_features), np.concatenate(all_targets)


def fit_coefficients(
    settings: LinearSettings, runs: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients (6, horizon, F), feature scale (6, F)) by ridge least squares per channel."""
    settings.validate()
    inputs, targets = training_samples(settings, runs)
    size = settings.num_features
    coefficients = np.zeros((NUM_CHANNELS, settings.horizon, size))
    scales = np.ones((NUM_CHANNELS, size))
    for channel in range(NUM_CHANNELS):
        members = channel == CHANNELS
        design = inputs[:, members].reshape(-1, size)
        outcome = targets[:, :, members].transpose(0, 2, 1).reshape(-1, settings.horizon)
        # Scaling the features to RMS 1 makes one ridge value fit every channel.
        scale = np.maximum(np.sqrt((design**2).mean(axis=0)), 1e-12)
        design = design / scale
        gram = design.T @ design + settings.ridge * len(design) * np.eye(size)
        coefficients[channel] = np.linalg.solve(gram, design.T @ outcome).T
        scales[channel] = scale
    return coefficients, scales


class LinearForecaster(Forecaster):
    """observe / predict with fitted coefficients (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        settings: LinearSettings,
        coefficients: np.ndarray,
        feature_scale: np.ndarray,
    ) -> None:
        super().__init__()
        settings.validate()
        expected = (NUM_CHANNELS, settings.horizon, settings.num_features)
        if coefficients.shape != expected or feature_scale.shape != (NUM_CHANNELS, expected[2]):
            raise ValueError(
                f"{kind}: coefficients {coefficients.shape} / feature scale "
                f"{feature_scale.shape} do not match the settings (expected {expected})"
            )
        self.name = kind
        self.settings = settings
        self.coefficients = coefficients
        self.feature_scale = feature_scale
        # Per value: coefficients divided by the feature scale, (60, horizon, F).
        self._weights = (coefficients / feature_scale[:, None, :])[CHANNELS].astype(np.float64)
        self._reset()

    def _reset(self) -> None:
        self._recent: np.ndarray | None = None  # (lags + 1, 60), oldest first
        self._observed_sum = np.zeros(NUM_VALUES)
        self._observed_count = 0
        self._plan: np.ndarray | None = None
        self._plan_step = 0

    def _push(self, frame: np.ndarray) -> None:
        frame = frame.astype(np.float64)
        if self._recent is None:
            self._recent = np.repeat(frame[None], self.settings.lags + 1, axis=0)
        else:
            self._recent = np.concatenate([self._recent[1:], frame[None]])

    def _observe(self, frame: np.ndarray) -> None:
        self._push(frame)
        self._observed_sum += frame
        self._observed_count += 1
        self._plan = None

    def _make_plan(self) -> np.ndarray:
        if self._recent is None:
            return np.repeat(rest_frame()[None].astype(np.float64), self.settings.horizon, 0)
        if self._observed_count:
            running_mean = self._observed_sum / self._observed_count
        else:
            running_mean = self._recent[-1]
        inputs = features(self.settings, self._recent, running_mean)  # (60, F)
        changes = np.einsum("dhf,df->hd", self._weights, inputs)
        return self._recent[-1][None] + changes

    def _predict_next(self, sample: bool) -> np.ndarray:
        if self._plan is None or self._plan_step >= len(self._plan):
            self._plan, self._plan_step = self._make_plan(), 0
        safe = self.sanitizer(self._plan[self._plan_step].astype(np.float32)).copy()
        self._plan_step += 1
        self._push(safe)
        return safe


def fit_linear(kind: str, runs: Sequence[np.ndarray], settings: LinearSettings) -> LinearForecaster:
    """Fit a linear forecaster of `kind` on raw (T, 60) runs of consecutive frames."""
    if kind not in LINEAR_KINDS:
        raise ValueError(f"unknown linear forecaster kind {kind!r} (expected {LINEAR_KINDS})")
    coefficients, scale = fit_coefficients(settings, runs)
    return LinearForecaster(kind, settings, coefficients, scale)


def save_linear(
    folder: str | Path, forecaster: LinearForecaster, record: dict[str, Any] | None = None
) -> Path:
    """forecaster.yaml + weights.safetensors, the layout of the learned checkpoints."""
    from kp_motion.forecasting.checkpoint import write_checkpoint_files

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        COEFFICIENTS_KEY: torch.from_numpy(forecaster.coefficients.astype(np.float32)),
        FEATURE_SCALE_KEY: torch.from_numpy(forecaster.feature_scale.astype(np.float32)),
    }
    return write_checkpoint_files(folder, tensors, forecaster.name, forecaster.settings, record)


def load_linear(folder: Path, manifest: dict[str, Any]) -> LinearForecaster:
    from kp_motion.forecasting.checkpoint import WEIGHTS_NAME, read_weights

    settings = config_io.from_dict(LinearSettings, manifest["model"], f"{folder}: model")
    weights_path = folder / WEIGHTS_NAME
    tensors = read_weights(weights_path)
    missing = [key for key in (COEFFICIENTS_KEY, FEATURE_SCALE_KEY) if key not in tensors]
    if missing:
        raise ValueError(f"{weights_path}: missing {', '.join(missing)}")
    return LinearForecaster(
        manifest["kind"],
        settings,
        tensors[COEFFICIENTS_KEY].double().numpy(),
        tensors[FEATURE_SCALE_KEY].double().numpy(),
    )
