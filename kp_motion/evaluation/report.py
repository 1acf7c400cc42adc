"""Evaluation results and their outputs: markdown report, CSV, JSON and PNG plots.

The markdown tables are laid out like the method's: one row per (input frames, output frames)
= (k, k) block size, one column per forecaster (learned models, then the hold-last and
constant-velocity baselines), preceded by "FOMM only" (true keypoints for every frame, no
prediction) and, in reconstruction, the "still source" (no motion at all). Every cell of a row
is computed on the same frames: those of the complete blocks of that k. The scores of FOMM only
and the still source over every driving frame are a separate table. One table for MSE and one
for FVD per evaluation mode; PSNR, SSIM and keypoint-space MSE follow. A model with a lower PSNR
than the still source on the same frames is named in a warning. Every number in the report is
also in results.csv (one row per mode, k, model) and results.json (everything, settings and
environment included).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kp_motion.names import BASELINE_FORECASTERS, LEARNED_FORECASTERS, MODES, RECONSTRUCTION

FOMM_ONLY = "fomm-only"
# Reconstruction only: the source frame shown unchanged for every driving frame. Not a method,
# the floor a renderer has to beat to have learned any motion.
STILL_SOURCE = "still-source"
REFERENCE_ROWS = (FOMM_ONLY, STILL_SOURCE)
CSV_FIELDS = (
    "mode", "k", "model", "videos", "frames", "mse", "psnr", "ssim", "kp_mse", "kp_position_mse",
    "fvd", "fvd_pooled",
)  # fmt: skip
DISPLAY_NAMES = {
    FOMM_ONLY: "FOMM only",
    STILL_SOURCE: "still source",
    **{kind: kind.upper() for kind in LEARNED_FORECASTERS},
    **{name: name for name in BASELINE_FORECASTERS},
}


@dataclass
class MetricRecord:
    """Metrics of one model at one block size in one mode, averaged over videos.

    k is the block size, whose complete blocks give the compared frames (the same for every
    model of that k, FOMM only and the still source included); None for the scores over every
    driving frame, kept only for FOMM only and the still source. Keypoint metrics are None for
    those two (no prediction); FVD values are None when no I3D weights were given.
    """

    mode: str
    k: int | None
    model: str
    videos: int
    frames: int  # compared frames, all videos together
    mse: float
    psnr: float
    ssim: float
    kp_mse: float | None = None
    kp_position_mse: float | None = None
    fvd: float | None = None  # per-video FVD, averaged over videos
    fvd_pooled: float | None = None  # FVD of all clips of all videos together


@dataclass
class FrameStrip:
    """Frames for the visual comparison: rows (label -> (N, H, W, 3) uint8), shared indices."""

    mode: str
    k: int
    video: str
    frame_indices: list[int]
    rows: dict[str, np.ndarray]
    predicted: list[bool]  # whether each column is a predicted frame


@dataclass
class EvaluationResult:
    records: list[MetricRecord]
    # mode -> k -> model -> mean MSE at each position of the compared frames (over videos)
    per_frame_mse: dict[str, dict[int, dict[str, list[float]]]]
    bandwidth: list[dict[str, Any]]
    codec: list[dict[str, Any]]
    fvd_status: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    videos: list[str]
    wall_time_s: float = 0.0
    strips: list[FrameStrip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # H.264 at the keypoint stream's bit rate: per (k, stream) the rates, H.264's PSNR and the
    # PSNR of the methods fed by that stream, on the same videos and frames.
    codec_at_stream_rate: list[dict[str, Any]] = field(default_factory=list)

    def record(self, mode: str, k: int | None, model: str) -> MetricRecord | None:
        for record in self.records:
            if (record.mode, record.k, record.model) == (mode, k, model):
                return record
        return None

    def models(self) -> list[str]:
        """Forecaster names in the order they were evaluated (reference rows excluded)."""
        names: list[str] = []
        for record in self.records:
            if record.model not in REFERENCE_ROWS and record.model not in names:
                names.append(record.model)
        return names

    def block_sizes(self, mode: str) -> list[int]:
        return sorted({r.k for r in self.records if r.mode == mode and r.k is not None})

    def modes(self) -> list[str]:
        return [mode for mode in MODES if any(r.mode == mode for r in self.records)]


def describe_environment(device: str) -> dict[str, Any]:
    """CPU model, torch device and versions, for the report's hardware line."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False)
        for line in lscpu.stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass  # lscpu is Linux-only; platform's answer stands
    environment: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_device": device,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        environment["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return environment


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def display_name(model: str) -> str:
    return DISPLAY_NAMES.get(model, model)


def format_number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def fixed_rows(result: EvaluationResult, mode: str) -> list[str]:
    """FOMM only and (when scored) the still source: the columns every mode's table starts with."""
    return [name for name in REFERENCE_ROWS
            if any(r.mode == mode and r.model == name for r in result.records)]  # fmt: skip


def metric_table(result: EvaluationResult, mode: str, metric: str) -> list[str]:
    """Rows (k, k) per block size; columns FOMM only, still source, then every forecaster, all
    of one row on the frames of that k's complete blocks."""
    fixed = [name for name in fixed_rows(result, mode)
             if any(getattr(r, metric) is not None for r in result.records if r.model == name)]
    models = fixed + result.models()
    header = ["(input, output) frames"] + [display_name(m) for m in models]
    rows = []
    for k in result.block_sizes(mode):
        cells = []
        for model in models:
            record = result.record(mode, k, model)
            cells.append(format_number(getattr(record, metric) if record else None))
        rows.append([f"({k}, {k})"] + cells)
    return markdown_table(header, rows)


def covered_frames(result: EvaluationResult, mode: str) -> str:
    """Which frames each row of a mode's tables compares, for the report's prose."""
    parts = []
    for k in result.block_sizes(mode):
        record = next(r for r in result.records if r.mode == mode and r.k == k)
        parts.append(f"k = {k}: {record.frames} frames of {record.videos} videos")
    return "; ".join(parts)


def all_frames_table(result: EvaluationResult, mode: str) -> list[str]:
    """FOMM only and the still source over every driving frame (not the block rows' frames)."""
    records = [result.record(mode, None, name) for name in REFERENCE_ROWS]
    records = [record for record in records if record is not None]
    if not records:
        return []
    rows = [
        [display_name(r.model), str(r.frames), format_number(r.mse), format_number(r.psnr),
         format_number(r.ssim)]
        for r in records
    ]  # fmt: skip
    lines = [
        "### Every driving frame (the rows above may cover fewer: compare only within this "
        "table)",
        "",
    ]
    return lines + markdown_table(["model", "frames", "MSE", "PSNR dB", "SSIM"], rows) + [""]


def still_source_warnings(result: EvaluationResult) -> list[str]:
    """One line per (mode, k, model) whose PSNR is below the still source's on the same
    frames: such a model renders worse than showing the source frame unchanged."""
    warnings = []
    for record in result.records:
        if record.model == STILL_SOURCE:
            continue
        still = result.record(record.mode, record.k, STILL_SOURCE)
        if still is None or not record.psnr < still.psnr:
            continue
        frames = "every driving frame" if record.k is None else f"k = {record.k}"
        warnings.append(
            f"{record.mode}, {frames}: {display_name(record.model)} loses to the still source "
            f"(PSNR {record.psnr:.2f} dB < {still.psnr:.2f} dB on the same {record.frames} "
            "frames)"
        )
    return warnings


def _mode_section(result: EvaluationResult, mode: str) -> list[str]:
    reference = "the real video" if mode == RECONSTRUCTION else "FOMM output with true keypoints"
    lines = [
        f"## {mode.capitalize()} (reference: {reference})",
        "",
        "Every cell of a row (k, k) is computed on the same frames: the complete blocks of k "
        "true and k predicted driving frames (FOMM only and the still source included), "
        f"{covered_frames(result, mode)}.",
        "",
    ]
    metrics = [
        ("mse", "MSE (pixels in [0, 1], lower is better)"),
        ("fvd", "FVD (lower is better)"),
        ("psnr", "PSNR in dB (of the mean MSE per video, averaged over videos)"),
        ("ssim", "SSIM (higher is better)"),
        ("kp_mse", "Keypoint-space MSE of the predicted frames (all 60 values)"),
    ]
    for metric, title in metrics:
        lines += [f"### {title}", ""]
        if metric == "fvd" and not any(r.fvd is not None for r in result.records):
            lines += [f"FVD: {result.fvd_status}.", ""]
            continue
        lines += metric_table(result, mode, metric) + [""]
    if any(r.fvd_pooled is not None for r in result.records if r.mode == mode):
        lines += ["### FVD of all clips of all videos pooled", ""]
        lines += metric_table(result, mode, "fvd_pooled") + [""]
    return lines + all_frames_table(result, mode)


def _bandwidth_section(result: EvaluationResult) -> list[str]:
    if not result.bandwidth:
        return []
    lines = [
        "## Bandwidth of the keypoint stream",
        "",
        "Bytes per message: a Keypoint60 as the graph sends it (the camera's frame_id, this "
        "detector's model_id), CDR-serialised (4-byte encapsulation included, transport "
        "overhead not); M frames sent of every M + N.",
        "",
    ]
    rows = [
        [
            f"({b['sent_frames']}, {b['withheld_frames']})",
            str(b["message_bytes"]),
            format_number(b["fps"]),
            format_number(b["full_kbit_per_second"]),
            format_number(b["predicted_kbit_per_second"]),
            format_number(b["ratio"]),
        ]
        for b in result.bandwidth
    ]
    header = [
        "(M, N)",
        "bytes/message",
        "fps",
        "all frames kbit/s",
        "with prediction kbit/s",
        "ratio",
    ]
    return lines + markdown_table(header, rows) + [""]


def _codec_section(result: EvaluationResult) -> list[str]:
    if not result.codec:
        return []
    lines = [
        "## H.264 for context",
        "",
        "Bitrate libx264 (yuv420p, PyAV, in-memory mp4; payload without container) needs to "
        "reach the same clip PSNR as each method on the real video's compared frames "
        "(reconstruction mode), averaged over the videos listed. '<=' marks an upper bound: "
        "already the lowest bitrate tried reached the target on some video.",
        "",
    ]
    rows = [
        [
            f"({c['k']}, {c['k']})" if c["k"] is not None else "all frames",
            display_name(c["model"]),
            format_number(c["target_psnr"]),
            ("<= " if c.get("at_minimum") else "") + format_number(c["kbps"]),
            f"{c['reached']}/{c['videos']}",
        ]
        for c in result.codec
    ]
    header = ["frames", "method", "target PSNR dB", "H.264 kbit/s", "target reached"]
    return lines + markdown_table(header, rows) + [""]


def _stream_rate_section(result: EvaluationResult) -> list[str]:
    if not result.codec_at_stream_rate:
        return []
    lines = [
        "## H.264 at the keypoint stream's bit rate",
        "",
        "libx264 (as above) asked for the bit rate of the keypoint stream, on the same real "
        "frames as each method (reconstruction mode), averaged over the videos listed; the "
        "measured H.264 payload rate is shown (the encoder misses small targets). The stream "
        "sending every frame feeds FOMM only; the one sending k of every 2k frames feeds the "
        "forecasters.",
        "",
    ]
    rows = []
    for entry in result.codec_at_stream_rate:
        methods = ", ".join(f"{display_name(m)} {format_number(p)}"
                            for m, p in entry["method_psnr"].items())  # fmt: skip
        rows.append([
            f"({entry['k']}, {entry['k']})", entry["stream"], format_number(entry["keypoint_kbps"]),
            format_number(entry["h264_kbps"]), format_number(entry["h264_psnr"]), methods,
        ])  # fmt: skip
    header = ["frames", "keypoint stream", "keypoints kbit/s", "H.264 kbit/s", "H.264 PSNR dB",
              "methods' PSNR dB"]  # fmt: skip
    return lines + markdown_table(header, rows) + [""]


def markdown_report(result: EvaluationResult, plot_names: list[str]) -> str:
    env = result.environment
    hardware = (
        f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores, "
        f"{env.get('torch_threads', '?')} torch threads), torch {env.get('torch_version')} "
        f"on {env.get('torch_device')}"
    )
    if "gpu" in env:
        hardware += f" ({env['gpu']})"
    lines = [
        "# kp_motion evaluation",
        "",
        f"- Hardware: {hardware}",
        f"- Wall time: {result.wall_time_s:.1f} s",
        f"- Videos: {len(result.videos)}",
        f"- FVD: {result.fvd_status}",
    ]
    lines += [f"- {note}" for note in result.notes]
    lines.append("")
    warnings = still_source_warnings(result)
    if warnings:
        lines += ["## Warning: worse than the still source", ""]
        lines += [f"- {warning}" for warning in warnings] + [""]
    for mode in result.modes():
        lines += _mode_section(result, mode)
    lines += _bandwidth_section(result)
    lines += _codec_section(result)
    lines += _stream_rate_section(result)
    if plot_names:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plot_names] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CSV / JSON
# ---------------------------------------------------------------------------------------------


def write_csv(result: EvaluationResult, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for record in result.records:
            row = dataclasses.asdict(record)
            writer.writerow({key: "" if row[key] is None else row[key] for key in CSV_FIELDS})


def json_safe(value: Any) -> Any:
    """JSON has no inf/nan: they become strings, everything else passes through."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def write_json(result: EvaluationResult, path: Path) -> None:
    payload = {
        "records": [dataclasses.asdict(record) for record in result.records],
        "per_frame_mse": result.per_frame_mse,
        "bandwidth": result.bandwidth,
        "codec": result.codec,
        "codec_at_stream_rate": result.codec_at_stream_rate,
        "fvd_status": result.fvd_status,
        "environment": result.environment,
        "settings": result.settings,
        "videos": result.videos,
        "wall_time_s": result.wall_time_s,
        "notes": result.notes,
    }
    path.write_text(json.dumps(json_safe(payload), indent=2))


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_mse_vs_horizon(result: EvaluationResult, path: Path) -> None:
    plt = _pyplot()
    modes = result.modes()
    figure, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False)
    for axis, mode in zip(axes[0], modes, strict=True):
        ks = result.block_sizes(mode)
        for model in result.models():
            points = [(k, result.record(mode, k, model)) for k in ks]
            points = [(k, r.mse) for k, r in points if r is not None]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=display_name(model))
        # FOMM only and the still source on the same compared frames as each k.
        for name, style in ((FOMM_ONLY, "--"), (STILL_SOURCE, ":")):
            fixed = [(k, result.record(mode, k, name)) for k in ks]
            fixed = [(k, r.mse) for k, r in fixed if r is not None]
            if fixed:
                axis.plot(*zip(*fixed, strict=True), color="black", linestyle=style,
                          marker="x", label=display_name(name))  # fmt: skip
        axis.set_title(mode)
        axis.set_xlabel("block size k (k true, k predicted)")
        axis.set_ylabel("MSE")
        axis.set_xticks(ks)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_per_frame_error(result: EvaluationResult, path: Path) -> None:
    plt = _pyplot()
    panels = [(mode, k) for mode in result.modes() for k in sorted(result.per_frame_mse[mode])]
    if not panels:
        raise ValueError("no per-frame errors to plot")
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.8 * len(panels)), squeeze=False)
    for axis, (mode, k) in zip(axes[:, 0], panels, strict=True):
        curves = result.per_frame_mse[mode][k]
        for model, values in curves.items():
            style = {"color": "black", "linestyle": "--"} if model == FOMM_ONLY else {}
            axis.plot(range(len(values)), values, label=display_name(model), **style)
        length = max(len(values) for values in curves.values())
        # Shade the predicted half of each block.
        for start in range(k, length, 2 * k):
            axis.axvspan(start - 0.5, min(start + k, length) - 0.5, color="grey", alpha=0.12)
        axis.set_title(f"{mode}, k = {k} (shaded: predicted frames)")
        axis.set_xlabel("compared frame")
        axis.set_ylabel("MSE")
        axis.legend(fontsize=7, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def frame_mosaic(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Rows of (N, H, W, 3) uint8 frames -> one white-separated (R(H+gap), N(W+gap), 3) image."""
    count, height, width = rows[0].shape[:3]
    mosaic = np.full(
        (len(rows) * (height + gap) - gap, count * (width + gap) - gap, 3), 255, np.uint8
    )
    for row, frames in enumerate(rows):
        for column, frame in enumerate(frames):
            top, left = row * (height + gap), column * (width + gap)
            mosaic[top : top + height, left : left + width] = frame
    return mosaic


def plot_frame_strip(strip: FrameStrip, path: Path) -> None:
    """One image of all frames (one imshow: fast even for many rows), labelled on the axes."""
    plt = _pyplot()
    labels = list(strip.rows)
    frames = [strip.rows[label] for label in labels]
    count, height, width = frames[0].shape[:3]
    gap = max(1, height // 32)
    figure, axis = plt.subplots(figsize=(1.3 * count + 1.6, 1.3 * len(labels) + 0.6))
    axis.imshow(frame_mosaic(frames, gap), interpolation="nearest")
    axis.set_xticks([c * (width + gap) + width / 2 for c in range(count)])
    axis.set_xticklabels(
        [f"#{index}\n{'pred' if predicted else 'true'}"
         for index, predicted in zip(strip.frame_indices, strip.predicted, strict=True)],
        fontsize=7,
    )  # fmt: skip
    axis.set_yticks([r * (height + gap) + height / 2 for r in range(len(labels))])
    axis.set_yticklabels([display_name(label) for label in labels], fontsize=8)
    axis.tick_params(length=0)
    axis.set_title(f"{strip.mode}, k = {strip.k}, video {strip.video}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(result: EvaluationResult, output_dir: str | Path) -> dict[str, Path]:
    """Write report.md, results.csv, results.json and the PNG plots; returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plots: list[str] = []
    if result.records:
        written["mse_vs_horizon"] = output_dir / "mse_vs_horizon.png"
        plot_mse_vs_horizon(result, written["mse_vs_horizon"])
        plots.append(written["mse_vs_horizon"].name)
    if any(result.per_frame_mse.get(mode) for mode in result.modes()):
        written["per_frame_error"] = output_dir / "per_frame_error.png"
        plot_per_frame_error(result, written["per_frame_error"])
        plots.append(written["per_frame_error"].name)
    for strip in result.strips:
        name = f"frames_{strip.mode}_k{strip.k}"
        written[name] = output_dir / f"{name}.png"
        plot_frame_strip(strip, written[name])
        plots.append(written[name].name)
    written["csv"] = output_dir / "results.csv"
    write_csv(result, written["csv"])
    written["json"] = output_dir / "results.json"
    write_json(result, written["json"])
    written["markdown"] = output_dir / "report.md"
    written["markdown"].write_text(markdown_report(result, plots))
    return written
