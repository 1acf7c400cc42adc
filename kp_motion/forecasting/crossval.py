"""Training forecaster sets on keypoint sets, and leave-one-identity-out cross-validation.

    for each identity I of the set:
        fit / train every kind on the clips of the other identities (learned kinds pick their
        kept step on held-out clips of those identities, never on I)
        score every kind, hold-last and constant-velocity on I's clips, closed loop
    pool the squared errors of the six folds (every frame of the set is predicted once per k)

Nothing here knows about files beyond the checkpoint folders it writes; the report (markdown +
plot) is written by forecasting/report.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kp_motion.data.keypoint_sequences import KeypointSequence
from kp_motion.data.keypoint_sets import KeypointSet
from kp_motion.forecasting.base import Forecaster, LearnedForecaster
from kp_motion.forecasting.baselines import BASELINES
from kp_motion.forecasting.checkpoint import load_forecaster
from kp_motion.forecasting.closed_loop import (
    ErrorSums,
    SampleMeanForecaster,
    score_forecasters,
)
from kp_motion.forecasting.linear import fit_linear, save_linear
from kp_motion.forecasting.settings import LEARNED_KINDS, LINEAR_KINDS, ForecasterSettings
from kp_motion.forecasting.train import split_sequences, train_forecaster
from kp_motion.keypoints import POSITION_VALUES

ALL_KINDS = LEARNED_KINDS + LINEAR_KINDS
SAMPLED_SUFFIX = "sample-mean"


@dataclass
class SetTraining:
    folders: dict[str, Path]  # kind -> checkpoint folder
    seconds: dict[str, float]  # kind -> training / fitting wall time
    notes: dict[str, str] = field(default_factory=dict)  # kind -> kept step etc.


def train_set(
    kinds: Sequence[str],
    clips: Sequence[KeypointSequence],
    settings: ForecasterSettings,
    out_dir: Path,
    record: dict[str, Any],
    progress: bool = False,
) -> SetTraining:
    """Train / fit every kind on `clips`; learned kinds validate on a share of the clips."""
    unknown = [kind for kind in kinds if kind not in ALL_KINDS]
    if unknown:
        raise ValueError(f"unknown forecaster kind(s) {unknown} (expected {list(ALL_KINDS)})")
    result = SetTraining({}, {})
    runs = [run for clip in clips for run in clip.segments()]
    for kind in kinds:
        started = time.perf_counter()
        if kind in LINEAR_KINDS:
            forecaster = fit_linear(kind, runs, settings.linear_settings(kind))
            folder = save_linear(out_dir / kind, forecaster, {**record, "train_clips": len(clips)})
        else:
            train, val = split_sequences(clips, settings.train.val_fraction, settings.train.seed)
            trained = train_forecaster(
                kind, train, val, settings, out_dir / kind, progress, record=record
            )
            folder = trained.checkpoint
            result.notes[kind] = f"kept step {trained.best_step}/{trained.steps_run}"
        result.folders[kind] = folder
        result.seconds[kind] = time.perf_counter() - started
    return result


def evaluation_forecasters(
    folders: dict[str, Path], sample_mean_rollouts: int
) -> dict[str, Forecaster]:
    """kind -> forecaster for scoring, plus hold-last and constant-velocity, plus the mean of
    sampled rollouts of each model that can sample (the VRNN) when sample_mean_rollouts > 0."""
    forecasters: dict[str, Forecaster] = {}
    for kind, folder in folders.items():
        forecasters[kind] = load_forecaster(folder)
        if kind == "vrnn" and sample_mean_rollouts > 0:
            learned = load_forecaster(folder)
            if not isinstance(learned, LearnedForecaster):
                raise ValueError(f"{folder}: a vrnn checkpoint should load as a learned model")
            forecasters[f"{kind}-{SAMPLED_SUFFIX}"] = SampleMeanForecaster(
                learned, sample_mean_rollouts
            )
    forecasters.update({name: baseline() for name, baseline in BASELINES.items()})
    return forecasters


@dataclass
class CrossValidation:
    sums: dict[int, dict[str, ErrorSums]]  # k -> model -> pooled error sums
    per_fold: dict[str, dict[int, dict[str, float]]]  # identity -> k -> model -> all-60 MSE
    seconds: dict[str, float]  # kind -> training wall time summed over folds


def cross_validate(
    keypoint_set: KeypointSet,
    kinds: Sequence[str],
    settings: ForecasterSettings,
    block_sizes: Sequence[int],
    work_dir: Path,
    sample_mean_rollouts: int,
    log: Callable[[str], None] = print,
) -> CrossValidation:
    """Leave-one-identity-out CV of every kind (see the module docstring)."""
    pooled: dict[int, dict[str, ErrorSums]] = {}
    per_fold: dict[str, dict[int, dict[str, float]]] = {}
    seconds = dict.fromkeys(kinds, 0.0)
    for identity, train, held_out in keypoint_set.leave_one_identity_out():
        log(f"fold {identity}: training on {len(train)} clips, scoring {len(held_out)}")
        record = {"fold_held_out": identity}
        trained = train_set(kinds, train, settings, work_dir / identity, record)
        for kind, spent in trained.seconds.items():
            seconds[kind] += spent
        forecasters = evaluation_forecasters(trained.folders, sample_mean_rollouts)
        torch.manual_seed(settings.train.seed)  # the sampled rollouts' draws
        runs = [run for clip in held_out for run in clip.segments()]
        scores = score_forecasters(forecasters, runs, block_sizes)
        per_fold[identity] = {
            k: {name: sums.score().all for name, sums in per_k.items()}
            for k, per_k in scores.items()
        }
        for k, per_k in scores.items():
            for name, sums in per_k.items():
                pooled.setdefault(k, {}).setdefault(name, ErrorSums(k)).merge(sums)
        fold_line = ", ".join(f"{n} {v:.3e}" for n, v in per_fold[identity][block_sizes[0]].items())
        log(f"fold {identity} k={block_sizes[0]}: {fold_line}")
    return CrossValidation(pooled, per_fold, seconds)


def linear_predictability(runs: Sequence[np.ndarray], lags: int = 5) -> dict[str, float]:
    """How much of the frame-to-frame change is linearly predictable at all: the R^2 of the
    next change x_{t+1} - x_t from the last `lags` changes of all 60 values and the pull
    towards the running mean, by least squares fit and scored on the SAME frames (every clip).

    In-sample, with a weight for every pair of values: an optimistic bound for any linear
    forecaster's first step, not a result any forecaster reaches on unseen identities.
    """
    inputs, targets = [], []
    for run in runs:
        run = np.asarray(run, np.float64)
        running = np.cumsum(run, axis=0) / np.arange(1, len(run) + 1)[:, None]
        for t in range(lags, len(run) - 1):
            changes = [run[t - j + 1] - run[t - j] for j in range(1, lags + 1)]
            inputs.append(np.concatenate([*changes, running[t] - run[t]]))
            targets.append(run[t + 1] - run[t])
    if not inputs:
        raise ValueError(f"no run is longer than {lags + 1} frames")
    design = np.asarray(inputs)
    design = np.c_[design / np.maximum(design.std(axis=0), 1e-12), np.ones(len(design))]
    changes = np.asarray(targets)
    residual = changes - design @ np.linalg.lstsq(design, changes, rcond=None)[0]
    parts = {"positions": slice(0, POSITION_VALUES), "jacobians": slice(POSITION_VALUES, None)}
    return {
        name: float(1 - (residual[:, part] ** 2).sum() / (changes[:, part] ** 2).sum())
        for name, part in parts.items()
    }


def change_structure(runs: Sequence[np.ndarray], max_lag: int = 3) -> dict[str, dict[str, Any]]:
    """Is the frame-to-frame change white jitter around a smooth level, or motion?

    Per part (positions, Jacobians): the variogram D(h) = mean (x_{t+h} - x_t)^2 for
    h = 1..max_lag, and the correlation of successive changes, D(2) / (2 D(1)) - 1.
    White noise of variance s^2 on a smooth level adds 2 s^2 to every D(h) (the value that a
    line through D(1..max_lag) takes at h = 0) and makes successive changes anti-correlated
    (towards -0.5); smooth motion gives an intercept near or below 0 and a positive correlation.
    """
    parts = {"positions": slice(0, POSITION_VALUES), "jacobians": slice(POSITION_VALUES, None)}
    result: dict[str, dict[str, Any]] = {}
    for name, part in parts.items():
        variogram = [
            float(np.concatenate([(r[lag:, part] - r[:-lag, part]).ravel() ** 2 for r in runs
                                  if len(r) > lag]).mean())
            for lag in range(1, max_lag + 1)
        ]  # fmt: skip
        slope, intercept = np.polyfit(np.arange(1, max_lag + 1), variogram, 1)
        result[name] = {
            "variogram": variogram,
            "white_noise_variance": float(max(intercept, 0.0) / 2),
            "successive_change_correlation": float(variogram[1] / (2 * variogram[0]) - 1),
        }
    return result
