"""Closed-loop scoring of forecasters on real keypoints, with one hard rule: no forecaster ever
sees a true frame that it is asked to predict.

Along each clip: observe k true frames, predict the next k, advance by 2k (protocol.py's block
layout). The state carries across blocks (reset_per_block=False): a forecaster may use every true
frame of the earlier observed blocks, and the frames it predicted are committed to its state (see
base.py), never replaced by the true ones. Errors are MSEs in raw keypoint units, pooled over all
predicted frames: all 60 values, the 20 positions, the 40 Jacobian entries, and per prediction
step 1..k.

The one-step "previous true frame" row is an oracle: each predicted frame is the true frame just
before it, i.e. it sees frames it should be predicting. It is what a teacher-forced evaluation
(feeding the true frame at every step) measures, shown only so that such numbers can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kp_motion.forecasting.base import Forecaster, LearnedForecaster
from kp_motion.forecasting.protocol import block_indices, run_protocol
from kp_motion.keypoints import NUM_VALUES, POSITION_VALUES

ORACLE_NAME = "previous-frame (oracle, sees the predicted frames)"
JACOBIAN_VALUES = NUM_VALUES - POSITION_VALUES


@dataclass
class ClosedLoopScore:
    k: int
    frames: int  # predicted frames scored
    all: float  # MSE over all 60 values
    positions: float  # over the 20 position values
    jacobians: float  # over the 40 Jacobian entries
    per_step: list[float] = field(default_factory=list)  # all-60 MSE at lag 1..k
    per_step_positions: list[float] = field(default_factory=list)
    per_step_jacobians: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        """The forecast-eval JSON entry of this score."""
        return {
            "all": self.all,
            "positions": self.positions,
            "jacobians": self.jacobians,
            "frames": self.frames,
        }


class ErrorSums:
    """Squared errors summed per lag (positions and Jacobians apart), for pooled MSEs."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.positions = np.zeros(k)
        self.jacobians = np.zeros(k)
        self.frames = np.zeros(k, dtype=np.int64)

    def add(self, lags: np.ndarray, squared_errors: np.ndarray) -> None:
        """lags (N,) in 1..k and (N, 60) squared errors."""
        np.add.at(self.positions, lags - 1, squared_errors[:, :POSITION_VALUES].sum(axis=1))
        np.add.at(self.jacobians, lags - 1, squared_errors[:, POSITION_VALUES:].sum(axis=1))
        np.add.at(self.frames, lags - 1, 1)

    def merge(self, other: ErrorSums) -> None:
        self.positions += other.positions
        self.jacobians += other.jacobians
        self.frames += other.frames

    def score(self) -> ClosedLoopScore:
        total = int(self.frames.sum())
        if total == 0:
            raise ValueError(f"no clip is long enough for one block of k={self.k} ({2 * self.k})")
        per_frame = np.maximum(self.frames, 1)
        return ClosedLoopScore(
            k=self.k,
            frames=total,
            all=float((self.positions.sum() + self.jacobians.sum()) / (total * NUM_VALUES)),
            positions=float(self.positions.sum() / (total * POSITION_VALUES)),
            jacobians=float(self.jacobians.sum() / (total * JACOBIAN_VALUES)),
            per_step=((self.positions + self.jacobians) / (per_frame * NUM_VALUES)).tolist(),
            per_step_positions=(self.positions / (per_frame * POSITION_VALUES)).tolist(),
            per_step_jacobians=(self.jacobians / (per_frame * JACOBIAN_VALUES)).tolist(),
        )


def closed_loop_errors(forecaster: Forecaster, runs: Sequence[np.ndarray], k: int) -> ErrorSums:
    """Error sums of `forecaster` over every block of every run (state carried per run)."""
    sums = ErrorSums(k)
    for run in runs:
        result = run_protocol(forecaster, run, k, reset_per_block=False)
        if len(result.rows):
            sums.add(result.lags, result.squared_errors())
    return sums


def oracle_errors(runs: Sequence[np.ndarray], k: int) -> ErrorSums:
    """Error sums of predicting each frame by the true frame just before it (an oracle)."""
    sums = ErrorSums(k)
    for run in runs:
        run = np.asarray(run, np.float64)
        for _, predicted in block_indices(len(run), k):
            rows = np.arange(predicted.start, predicted.stop)
            sums.add(np.arange(1, k + 1), (run[rows] - run[rows - 1]) ** 2)
    return sums


class SampleMeanForecaster(Forecaster):
    """A learned forecaster whose forecast is the mean of `samples` sampled rollouts."""

    def __init__(self, inner: LearnedForecaster, samples: int) -> None:
        super().__init__()
        self.inner = inner
        self.samples = samples
        self.name = f"{inner.name} (mean of {samples} samples)"

    @property
    def corrections(self) -> int:
        return self.sanitizer.total + self.inner.corrections

    def predict(self, n: int, sample: bool = False) -> np.ndarray:
        """Mean of whole n-frame rollouts (`sample` is implied: the rollouts are sampled)."""
        return self.inner.predict_sample_mean(n, self.samples)

    def _observe(self, frame: np.ndarray) -> None:
        self.inner.observe(frame)

    def _predict_next(self, sample: bool) -> np.ndarray:
        return self.inner.predict_sample_mean(1, self.samples)[0]

    def _reset(self) -> None:
        self.inner.reset()


def score_forecasters(
    forecasters: Mapping[str, Forecaster],
    runs: Sequence[np.ndarray],
    block_sizes: Sequence[int],
    with_oracle: bool = True,
    on_run_done: Callable[[], None] | None = None,
) -> dict[int, dict[str, ErrorSums]]:
    """k -> name -> error sums; `on_run_done` is called after each (k, model, run) (progress)."""
    results: dict[int, dict[str, ErrorSums]] = {}
    for k in block_sizes:
        results[k] = {}
        for name, forecaster in forecasters.items():
            sums = ErrorSums(k)
            for run in runs:
                sums.merge(closed_loop_errors(forecaster, [run], k))
                if on_run_done is not None:
                    on_run_done()
            results[k][name] = sums
        if with_oracle:
            results[k][ORACLE_NAME] = oracle_errors(runs, k)
    return results


def format_scores(scores: Mapping[int, Mapping[str, ClosedLoopScore]]) -> str:
    """Plain-text table: one row per (k, model), with the change against hold-last."""
    width = max(len(name) for per_k in scores.values() for name in per_k)
    lines = [
        f"{'k':>3}  {'model':<{width}}  {'all 60':>10}  {'positions':>10}  {'jacobians':>10}  "
        f"{'vs hold-last':>12}  {'frames':>6}"
    ]
    for k, per_k in scores.items():
        reference = per_k.get("hold-last")
        for name, score in per_k.items():
            change = "" if reference is None else f"{100 * (score.all / reference.all - 1):+.1f} %"
            lines.append(
                f"{k:>3}  {name:<{width}}  {score.all:>10.3e}  {score.positions:>10.3e}  "
                f"{score.jacobians:>10.3e}  {change:>12}  {score.frames:>6}"
            )
    return "\n".join(lines)
