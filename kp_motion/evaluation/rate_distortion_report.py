"""The rate-distortion results of `kp-motion bandwidth` as JSON, a Markdown table and a plot,
with the issue's goal checked against them.

Goal reference: the fixed M = N = 6 schedule over float32 Keypoint60 with the forecaster that
scores best there (the lowest mse_all). An operating point meets the goal when its mse_all is
no worse than the reference's and its payload is at least GOAL_RATIO times smaller than every
frame as Keypoint60; the moonshot is under MOONSHOT_KBIT wire kbit/s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GOAL_RATIO = 20.0
MOONSHOT_KBIT = 4.0
REFERENCE_M = 6
TABLE_NAME = "rate-distortion.md"
PLOT_NAME = "rate-distortion.png"


def write_json(path: str | Path, result: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def reference_point(points: Sequence[dict]) -> dict | None:
    """The fixed M = N = 6 float32 point with the lowest mse_all (None when not swept)."""
    candidates = [p for p in points if p["policy"] == "fixed" and p["wire"] == "float32"
                  and p["m"] == REFERENCE_M]
    return min(candidates, key=lambda p: p["mse_all"]) if candidates else None


def best_within(points: Sequence[dict], mse_limit: float) -> list[dict]:
    """Per (policy, wire): the point of least payload whose mse_all is within mse_limit."""
    best: dict[tuple[str, str], dict] = {}
    for candidate in points:
        if candidate["mse_all"] > mse_limit:
            continue
        key = (candidate["policy"], candidate["wire"])
        if key not in best or (candidate["payload_bytes_per_second"]
                               < best[key]["payload_bytes_per_second"]):
            best[key] = candidate
    return sorted(best.values(), key=lambda p: p["payload_bytes_per_second"])


def _setting(p: dict) -> str:
    if p["policy"] == "fixed":
        return f"M = N = {p['m']}"
    return f"threshold {p['threshold']:g}, max gap {p['max_gap']}"


def _row(p: dict, every_frame: float) -> str:
    predicted = "-" if p["mse_predicted"] is None else f"{p['mse_predicted']:.3e}"
    payload = p["payload_bytes_per_second"]
    return (f"| {p['policy']} | {p['wire']} | {p['forecaster']} | {_setting(p)} | "
            f"{payload:.0f} | {every_frame / payload:.1f} | "
            f"{p['wire_bytes_per_second'] * 8 / 1000:.2f} | {p['mse_all']:.3e} | {predicted} |")


HEADER = ("| policy | wire | forecaster | setting | payload B/s | x fewer than every frame | "
          "wire kbit/s | mse_all | mse_predicted |\n|---|---|---|---|---:|---:|---:|---:|---:|")


def goal_lines(result: dict[str, Any]) -> list[str]:
    """The goal check as Markdown lines."""
    every_frame = result["every_frame"]["payload_bytes_per_second"]
    reference = reference_point(result["points"])
    if reference is None:
        return [f"(no fixed M = N = {REFERENCE_M} float32 point in this run: goal not checked)"]
    lines = [
        f"Reference: fixed M = N = {REFERENCE_M}, float32, {reference['forecaster']}: mse_all "
        f"{reference['mse_all']:.3e} at {reference['payload_bytes_per_second']:.0f} payload B/s. "
        f"Goal: mse_all <= that with payload <= {every_frame / GOAL_RATIO:.0f} B/s "
        f"({GOAL_RATIO:g}x fewer than {every_frame:.0f} B/s); moonshot: wire < {MOONSHOT_KBIT:g} "
        "kbit/s.",
        "",
        "Least payload per policy and wire at an mse_all no worse than the reference:",
        "",
        HEADER,
    ]
    best = best_within(result["points"], reference["mse_all"])
    lines += [_row(p, every_frame) for p in best]
    lines.append("")
    for p in best:
        ratio = every_frame / p["payload_bytes_per_second"]
        verdict = "meets" if ratio >= GOAL_RATIO else "misses"
        kbit = p["wire_bytes_per_second"] * 8 / 1000
        moonshot = "under" if kbit < MOONSHOT_KBIT else "over"
        lines.append(f"- {p['policy']} / {p['wire']} / {p['forecaster']} ({_setting(p)}): "
                     f"{ratio:.1f}x fewer payload bytes, {verdict} the {GOAL_RATIO:g}x goal; "
                     f"wire {kbit:.2f} kbit/s, {moonshot} the moonshot.")
    return lines


def network_conditions(drop_probability: float, retransmit_delay: int | None) -> str:
    """The simulated network in words, for the report and the command's summary line."""
    if not drop_probability:
        return "lossless network"
    words = f"{drop_probability:.0%} of messages lost"
    if retransmit_delay is None:
        return words + " (best effort)"
    return (words + f", predictive policy over a reliable link (a lost message arrives "
            f"{retransmit_delay} frames late; the fixed schedule stays best effort)")


def table_markdown(result: dict[str, Any], source: str, frames: int,
                   network: str = "lossless network") -> str:
    every_frame = result["every_frame"]["payload_bytes_per_second"]
    lines = [
        "# Rate-distortion of the keypoint link",
        "",
        f"Generated by `kp-motion bandwidth --keypoints {Path(source).name} --report ...` on "
        f"{frames} frames; do not edit by hand. Every frame as float32 Keypoint60: "
        f"{every_frame:.0f} payload B/s. Wire bytes add "
        "the per-message transport overhead of docs/bandwidth/README.md. MSEs in keypoint "
        f"units over all 60 values, {network}.",
        "",
        "## Goal",
        "",
        *goal_lines(result),
        "",
        f"![rate-distortion]({PLOT_NAME})",
        "",
        "## All points",
        "",
        HEADER,
        *[_row(p, every_frame) for p in result["points"]],
        "",
    ]
    return "\n".join(lines)


def _curves(points: Sequence[dict]) -> dict[str, list[dict]]:
    curves: dict[str, list[dict]] = {}
    for p in points:
        label = f"{p['policy']} {p['wire']} {p['forecaster']}"
        if p["policy"] == "predictive":
            label += f" gap {p['max_gap']}"
        curves.setdefault(label, []).append(p)
    return curves


def write_plot(path: Path, result: dict[str, Any]) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    every_frame = result["every_frame"]["payload_bytes_per_second"]
    reference = reference_point(result["points"])
    colors = plt.get_cmap("tab20").colors
    for number, (label, curve) in enumerate(_curves(result["points"]).items()):
        curve = sorted(curve, key=lambda p: p["payload_bytes_per_second"])
        style = dict(marker="o", linestyle="-") if curve[0]["policy"] == "predictive" else dict(
            marker="s", linestyle="--")
        rates = ("payload_bytes_per_second", "wire_bytes_per_second")
        for axis, key in zip(axes, rates, strict=True):
            axis.plot([p[key] for p in curve], [p["mse_all"] for p in curve], **style,
                      color=colors[number % len(colors)], markersize=3, label=label)
    axes[0].axvline(every_frame / GOAL_RATIO, color="gray", linestyle=":",
                    label=f"goal: {GOAL_RATIO:g}x fewer payload bytes")
    axes[1].axvline(MOONSHOT_KBIT * 1000 / 8, color="gray", linestyle=":",
                    label=f"moonshot: {MOONSHOT_KBIT:g} kbit/s")
    for axis, name in zip(axes, ("payload bytes per second", "wire bytes per second"), strict=True):
        if reference is not None:
            axis.axhline(reference["mse_all"], color="black", linewidth=0.8,
                         label=f"fixed M = N = {REFERENCE_M} float32 {reference['forecaster']}")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel(name)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=6, loc="upper right")
    axes[0].set_ylabel("keypoint MSE (all 60 values, every frame)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(folder: str | Path, result: dict[str, Any], source: str, frames: int,
                 network: str = "lossless network") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / TABLE_NAME
    table.write_text(table_markdown(result, source, frames, network))
    return [table, write_plot(folder / PLOT_NAME, result)]
