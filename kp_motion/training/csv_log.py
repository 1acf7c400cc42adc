"""Append-only CSV logs of a training run, resumable.

Rows are keyed by the optimiser step. A run that resumes from a checkpoint at step N drops the
rows after N first (they were written after that checkpoint by the interrupted run and will be
written again), so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path


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
