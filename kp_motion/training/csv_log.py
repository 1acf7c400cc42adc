"""The logs of a training run: append-only CSV files (resumable), TensorBoard when installed.

Rows are keyed by the optimiser step. A run that resumes from a checkpoint at step N drops the
rows after N first (they were written after that checkpoint by the interrupted run and will be
written again), so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from kp_motion import config as config_io
from kp_motion.training import distributed
from kp_motion.training.losses import DISCRIMINATOR_TERM, LOSS_TERMS
from kp_motion.training.settings import TrainFommConfig
from kp_motion.training.state import TrainingPosition

CONFIG_COPY = "train_fomm.yaml"
TRAIN_LOG = "train_log.csv"
VALIDATION_LOG = "validation.csv"
TENSORBOARD_DIR = "tensorboard"
# still_l1: the same frames compared with the unchanged source frame, i.e. what showing no
# motion at all scores. A model below it has learned motion; one above it only blurs.
# keypoints_in_use: mean over the videos of losses.keypoints_in_use (keypoint collapse shows).
VALIDATION_COLUMNS = (
    "step", "epochs_completed", "validation_l1", "still_l1", "keypoints_in_use", "videos",
    "frames",
)  # fmt: skip


def train_columns(settings: TrainFommConfig) -> tuple[str, ...]:
    """The columns of train_log.csv for a run with these settings."""
    return (
        "step", "epoch", "lr_kp_detector", "lr_generator", "lr_discriminator", "loss",
        *LOSS_TERMS, *sorted(settings.losses.extra), DISCRIMINATOR_TERM, "seconds_per_step",
    )  # fmt: skip


class CsvLog:
    """One CSV file with a fixed header; values missing from a row are left empty."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        if not columns or columns[0] != "step":
            raise ValueError("a training log's first column must be 'step'")
        self.path = path
        self.columns = list(columns)

    def start(self, resume_step: int | None) -> None:
        """Create the file (fresh run) or cut it back to `resume_step` (resumed run)."""
        if resume_step is None or not self.path.is_file():
            self._write_rows([])
            return
        with self.path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames != self.columns:
                # Another set of loss terms: keep the old log beside the new one.
                self.path.replace(self.path.with_suffix(".previous.csv"))
                rows = []
            else:
                rows = [row for row in reader if int(row["step"]) <= resume_step]
        self._write_rows(rows)

    def _write_rows(self, rows: list[Mapping[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, values: Mapping[str, float | int | str]) -> None:
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.path.name}: no column(s) {', '.join(sorted(unknown))}")
        row = {name: _formatted(values[name]) if name in values else "" for name in self.columns}
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow(row)


def _formatted(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_log(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


class LossInterval:
    """Sums of the loss terms over the steps since the last row of train_log.csv."""

    def __init__(self) -> None:
        self._restart()

    def _restart(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def take(self) -> tuple[dict[str, torch.Tensor], int, float]:
        """(sums, steps, seconds) so far; the interval starts again."""
        taken = (self.sums, self.steps, time.perf_counter() - self.started)
        self._restart()
        return taken


class TrainingLogs:
    """train_log.csv, validation.csv, the settings copy and TensorBoard (rank 0 writes)."""

    def __init__(
        self, out_dir: Path, settings: TrainFommConfig, context: distributed.DistributedContext
    ) -> None:
        self.out_dir, self.settings, self.context = out_dir, settings, context
        self.train = CsvLog(out_dir / TRAIN_LOG, train_columns(settings))
        self.validation = CsvLog(out_dir / VALIDATION_LOG, VALIDATION_COLUMNS)
        self.tensorboard = None

    def start(self, resumed_at: int | None) -> None:
        """Write the settings copy; start the logs (cut back to `resumed_at` when resuming)."""
        if not self.context.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        config_io.save(self.settings, self.out_dir / CONFIG_COPY)
        self.train.start(resumed_at)
        self.validation.start(resumed_at)
        self.tensorboard = open_tensorboard(self.out_dir / TENSORBOARD_DIR)

    def train_row(
        self,
        position: TrainingPosition,
        interval: LossInterval,
        optimizer: torch.optim.Optimizer,
        discriminator_optimizer: torch.optim.Optimizer | None,
    ) -> dict[str, float]:
        """Log the interval's mean terms over all processes (every process must call it)."""
        sums, steps, seconds = interval.take()
        names = sorted(sums)
        stacked = torch.stack([sums[name] for name in names]).double()
        totals = distributed.all_reduce_sum(stacked, self.context)
        scale = steps * self.context.world_size
        means = {name: float(totals[i]) / scale for i, name in enumerate(names)}
        row = {
            "step": position.step,
            "epoch": position.epoch,
            "lr_kp_detector": optimizer.param_groups[0]["lr"],
            "lr_generator": optimizer.param_groups[1]["lr"],
            **means,
            "seconds_per_step": seconds / steps,
        }
        if discriminator_optimizer is not None:
            row["lr_discriminator"] = discriminator_optimizer.param_groups[0]["lr"]
        if self.context.is_main:
            self.train.append(row)
            if self.tensorboard is not None:
                for name, value in row.items():
                    if name not in ("step", "epoch"):
                        self.tensorboard.add_scalar(f"train/{name}", value, position.step)
        return means

    def validation_row(self, position: TrainingPosition, result: dict[str, float] | None):
        if result is None or not self.context.is_main:
            return
        self.validation.append(
            {"step": position.step, "epochs_completed": position.epoch, **result}
        )
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("validation/l1", result["validation_l1"], position.step)
        tqdm.write(
            f"step {position.step} epoch {position.epoch}: validation L1 "
            f"{result['validation_l1']:.5f}, still source {result['still_l1']:.5f}, "
            f"keypoints in use {result['keypoints_in_use']:.1f} ({result['videos']} videos, "
            f"{result['frames']} frames)"
        )

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_tensorboard(log_dir: Path) -> Any | None:
    """A TensorBoard SummaryWriter when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the CSV logs are always written
        return None
    return SummaryWriter(log_dir=str(log_dir))
