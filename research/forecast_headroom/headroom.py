"""How far could a linear forecaster get, and what stops the shipped ones: a measurement, not a
shipped model.

The "cross-value" model is a direct multi-horizon ridge fit like direct-linear, but with a
weight between every pair of values: x_{t+h} = x_t + W_h . [last `lags` changes of all 60
values, pull of all 60 towards the running mean of the observed frames, 1]. It never reads the
levels themselves. It is scored closed loop with the block layout of the evaluation (observe k,
predict k, advance 2k; the running mean covers observed frames only), three ways:

- in-sample: fit on every clip, scored on the same clips (an optimistic bound);
- leave-one-clip-out: the person of the scored clip is in the training data (other clips);
- leave-one-identity-out: the person is not (the protocol of the shipped set's numbers).

The gap between the last two is what knowing the person is worth; with 6 identities the
shipped models are in the third case.

The shipped direct-linear model (identity-free features, coefficients shared by the keypoints
of a channel) is fit and scored the same three ways (measure_direct_linear). Its in-sample
score bounds what adapting it to a person during a stream could reach: a stream knows less of
its person than the in-sample fit, which has seen every frame of the scored clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kp_motion.data.keypoint_sequences import KeypointSequence
from kp_motion.data.keypoint_sets import KeypointSet
from kp_motion.forecasting.closed_loop import ErrorSums, closed_loop_errors
from kp_motion.forecasting.linear import fit_linear
from kp_motion.forecasting.protocol import block_indices
from kp_motion.forecasting.settings import LinearSettings

HORIZON = 12  # the largest k of the evaluation


@dataclass
class Headroom:
    ridge: float
    lags: int
    scores: dict[str, dict[int, dict[str, float]]]  # setting -> k -> all/positions/jacobians


def cross_value_features(
    run: np.ndarray, observed: np.ndarray, anchors: np.ndarray, lags: int
) -> np.ndarray:
    """(A, 60 lags + 61): the features at `anchors` of a (T, 60) run; the running mean covers
    the frames flagged in `observed` (T,) up to each anchor. Before frame `lags` the first
    frame is repeated, as in a stream."""
    padded = np.concatenate([np.repeat(run[:1], lags, axis=0), run])
    recent = np.stack([padded[t : t + lags + 1] for t in anchors])
    changes = np.diff(recent, axis=1)[:, ::-1].reshape(len(anchors), -1)
    counts = np.cumsum(observed)
    sums = np.cumsum(run * observed[:, None], axis=0)
    running_mean = np.where(
        counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], run
    )  # fmt: skip
    pull = running_mean[anchors] - run[anchors]
    return np.concatenate([changes, pull, np.ones((len(anchors), 1))], axis=1)


def fit_cross_value(runs: Sequence[np.ndarray], lags: int, ridge: float) -> np.ndarray:
    """(F, HORIZON * 60) ridge weights from every frame of every run (features scaled to
    standard deviation 1 so that one `ridge`, relative to the sample count, fits all)."""
    inputs, targets = [], []
    for run in runs:
        if len(run) <= HORIZON:
            continue
        anchors = np.arange(len(run) - HORIZON)
        inputs.append(cross_value_features(run, np.ones(len(run), bool), anchors, lags))
        ahead = run[anchors[:, None] + np.arange(1, HORIZON + 1)] - run[anchors][:, None]
        targets.append(ahead.reshape(len(anchors), -1))
    if not inputs:
        raise ValueError(f"no run is longer than {HORIZON} frames")
    design, outcome = np.concatenate(inputs), np.concatenate(targets)
    scale = np.maximum(design.std(axis=0), 1e-12)
    scale[-1] = 1.0  # the constant
    design = design / scale
    gram = design.T @ design + ridge * len(design) * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ outcome) / scale[:, None]


def closed_loop_sums(
    weights: np.ndarray | None, runs: Sequence[np.ndarray], k: int, lags: int
) -> ErrorSums:
    """Error sums of the cross-value model (hold-last when `weights` is None) over every
    block of every run."""
    sums = ErrorSums(k)
    for run in runs:
        blocks = block_indices(len(run), k)
        if not blocks:
            continue
        observed = np.zeros(len(run), bool)
        for seen, _ in blocks:
            observed[seen.start : seen.stop] = True
        anchors = np.array([seen.stop - 1 for seen, _ in blocks])
        forecast = np.repeat(run[anchors][:, None], k, axis=1)
        if weights is not None:
            changes = cross_value_features(run, observed, anchors, lags) @ weights
            forecast += changes.reshape(len(anchors), HORIZON, -1)[:, :k]
        truth = run[anchors[:, None] + np.arange(1, k + 1)]
        lag_of_row = np.tile(np.arange(1, k + 1), len(anchors))
        sums.add(lag_of_row, ((forecast - truth) ** 2).reshape(-1, run.shape[1]))
    return sums


def _score(sums: ErrorSums) -> dict[str, float]:
    score = sums.score()
    return {"all": score.all, "positions": score.positions, "jacobians": score.jacobians}


def _runs_of(clips: Sequence[KeypointSequence]) -> list[np.ndarray]:
    return [np.asarray(run, np.float64) for clip in clips for run in clip.segments()]


Folds = dict[str, list[tuple[list[np.ndarray], list[np.ndarray]]]]


def folds_of(keypoint_set: KeypointSet) -> Folds:
    """setting -> [(training runs, scored runs), ...] for the three settings (module doc)."""
    clips = [_runs_of([clip]) for clip in keypoint_set.clips]
    every_run = [run for runs in clips for run in runs]
    return {
        "in-sample": [(every_run, every_run)],
        "leave-one-clip-out": [
            ([run for j, runs in enumerate(clips) if j != i for run in runs], clips[i])
            for i in range(len(clips))
        ],
        "leave-one-identity-out": [
            (_runs_of(train), _runs_of(held_out))
            for _, train, held_out in keypoint_set.leave_one_identity_out()
        ],
    }


def measure_headroom(
    keypoint_set: KeypointSet, block_sizes: Sequence[int], lags: int = 5, ridge: float = 0.1
) -> Headroom:
    """Scores of hold-last and of the cross-value model in the three settings (module doc)."""
    every_run = _runs_of(keypoint_set.clips)
    scores: dict[str, dict[int, dict[str, float]]] = {
        "hold-last": {k: _score(closed_loop_sums(None, every_run, k, lags)) for k in block_sizes}
    }
    for setting, pairs in folds_of(keypoint_set).items():
        pooled = {k: ErrorSums(k) for k in block_sizes}
        for train, scored in pairs:
            weights = fit_cross_value(train, lags, ridge)
            for k in block_sizes:
                pooled[k].merge(closed_loop_sums(weights, scored, k, lags))
        scores[setting] = {k: _score(sums) for k, sums in pooled.items()}
    return Headroom(ridge, lags, scores)


def measure_direct_linear(
    keypoint_set: KeypointSet, block_sizes: Sequence[int], settings: LinearSettings
) -> dict[str, dict[int, dict[str, float]]]:
    """setting -> k -> scores of direct-linear (with `settings`) in the three settings."""
    scores = {}
    for setting, pairs in folds_of(keypoint_set).items():
        pooled = {k: ErrorSums(k) for k in block_sizes}
        for train, scored in pairs:
            forecaster = fit_linear("direct-linear", train, settings)
            for k in block_sizes:
                pooled[k].merge(closed_loop_errors(forecaster, scored, k))
        scores[setting] = {k: _score(sums) for k, sums in pooled.items()}
    return scores
