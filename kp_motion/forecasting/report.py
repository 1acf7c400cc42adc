"""Outputs of closed-loop scores: the forecast-eval JSON, the cross-validation JSON, markdown
tables and the per-step plot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kp_motion.forecasting.closed_loop import ORACLE_NAME, ClosedLoopScore


def contract_json(scores: Mapping[int, Mapping[str, ClosedLoopScore]]) -> dict[str, Any]:
    """The forecast-eval JSON: {"k": {"6": {MODEL: {all, positions, jacobians, frames}}}}.

    The oracle row sees the frames it predicts, so it is not a MODEL: it goes under "oracle".
    """
    return {
        "k": {
            str(k): {name: s.summary() for name, s in per_k.items() if name != ORACLE_NAME}
            for k, per_k in scores.items()
        },
        "oracle": {
            str(k): {"name": ORACLE_NAME, **per_k[ORACLE_NAME].summary()}
            for k, per_k in scores.items()
            if ORACLE_NAME in per_k
        },
    }


def detailed_json(scores: Mapping[int, Mapping[str, ClosedLoopScore]]) -> dict[str, Any]:
    """Everything, per-step curves included (the cross-validation record)."""
    return {
        str(k): {name: vars(score) for name, score in per_k.items()}
        for k, per_k in scores.items()
    }


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def markdown_table(scores: Mapping[int, Mapping[str, ClosedLoopScore]]) -> str:
    """One row per (k, model): all / positions / Jacobians MSE and the change vs hold-last."""
    lines = [
        "| k | model | all 60 | positions | Jacobians | vs hold-last (all) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k, per_k in scores.items():
        reference = per_k.get("hold-last")
        best = min(
            (s.all for name, s in per_k.items() if name != ORACLE_NAME), default=float("nan")
        )
        for name, score in per_k.items():
            change = "" if reference is None else f"{100 * (score.all / reference.all - 1):+.1f} %"
            value = f"{score.all:.3e}"
            if score.all == best:
                value = f"**{value}**"
            label = f"*{name}*" if name == ORACLE_NAME else name
            lines.append(
                f"| {k} | {label} | {value} | {score.positions:.3e} | "
                f"{score.jacobians:.3e} | {change} |"
            )
    return "\n".join(lines)


def plot_per_step(
    scores: Mapping[int, Mapping[str, ClosedLoopScore]], path: str | Path, title: str
) -> Path:
    """One column per k: all-60 MSE against the prediction step (top, log scale) and the same
    divided by hold-last's (bottom: the curves crowd together on the log scale)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    columns = len(scores)
    figure, axes = plt.subplots(2, columns, figsize=(6 * columns, 8), squeeze=False)
    for column, (k, per_k) in enumerate(scores.items()):
        top, bottom = axes[0][column], axes[1][column]
        reference = np.asarray(per_k["hold-last"].per_step) if "hold-last" in per_k else None
        for name, score in per_k.items():
            steps = np.arange(1, len(score.per_step) + 1)
            style = ":" if name == ORACLE_NAME else ("--" if name == "hold-last" else "-")
            label = "previous frame (oracle)" if name == ORACLE_NAME else name
            top.plot(steps, score.per_step, style, marker="o", markersize=3, label=label)
            if reference is not None and name != "constant-velocity":  # 3-10x: off the scale
                ratio = np.asarray(score.per_step) / reference
                bottom.plot(steps, ratio, style, marker="o", markersize=3, label=label)
        top.set_yscale("log")
        top.set_ylabel("MSE, all 60 values")
        top.set_title(f"k = {k}")
        bottom.set_ylabel("MSE / hold-last MSE (constant velocity not shown)")
        bottom.set_ylim(0.7, 1.2)
        for axis in (top, bottom):
            axis.set_xlabel("prediction step (frames after the last observed one)")
            axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def scores_from_detailed_json(data: Mapping[str, Any]) -> dict[int, dict[str, ClosedLoopScore]]:
    """The inverse of detailed_json (to redraw a plot from a saved cross-validation)."""
    return {
        int(k): {name: ClosedLoopScore(**fields) for name, fields in per_k.items()}
        for k, per_k in data.items()
    }
