"""Pixel-space rate-distortion of a transmission policy (`kp-motion evaluate --transmission`).

For each test video (reconstruction: the first frame is the source, the others drive it) the
true keypoints are detected, sent through the simulated link of a policy (the same sender and
receiver classes the nodes use, kp_motion.evaluation.rate_distortion: fixed M/N schedule or
predictive transmission, float32 or compact wire, optionally with lost messages), and the
frames the receiver would show are rendered from the keypoints it emits. They are scored
against FOMM with every true keypoint (the same generator and source), so the numbers measure
what the policy costs on top of FOMM, not FOMM's own error. The rate is the payload of the
messages put on the network, per second of video (kp_motion.stream.wire.payload_bytes).

A policy is written POLICY:A:B[:WIRE]: fixed:M:N (the first M of every M + N frames sent) or
predictive:THRESHOLD:MAX_GAP; WIRE is float32 (default) or compact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kp_motion.evaluation.rate_distortion import (
    FIXED,
    PREDICTIVE,
    Setting,
    simulate,
)
from kp_motion.keypoints import NUM_VALUES
from kp_motion.stream import wire as wires

JSON_NAME = "transmission.json"
MARKDOWN_NAME = "transmission.md"


def parse_policy(text: str, forecaster: str) -> Setting:
    """'fixed:M:N[:WIRE]' or 'predictive:THRESHOLD:MAX_GAP[:WIRE]' -> a Setting; a ValueError
    names what is wrong."""
    parts = text.split(":")
    usage = (f"transmission policy {text!r}: expected fixed:M:N[:WIRE] or "
             f"predictive:THRESHOLD:MAX_GAP[:WIRE] (WIRE: {' or '.join(wires.WIRES)})")
    if len(parts) not in (3, 4) or parts[0] not in (FIXED, PREDICTIVE):
        raise ValueError(usage)
    wire = parts[3] if len(parts) == 4 else wires.FLOAT32
    if wire not in wires.WIRES:
        raise ValueError(usage)
    try:
        if parts[0] == FIXED:
            m, n = int(parts[1]), int(parts[2])
            if m < 1 or n < 0:
                raise ValueError(f"{text!r}: needs M >= 1 and N >= 0")
            return Setting(FIXED, wire, forecaster, m=m, n=n)
        threshold, max_gap = float(parts[1]), int(parts[2])
    except ValueError as error:
        raise ValueError(f"{usage}: {error}") from None
    if not threshold >= 0 or max_gap < 1:
        raise ValueError(f"{usage}: needs THRESHOLD >= 0 and MAX_GAP >= 1")
    return Setting(PREDICTIVE, wire, forecaster, threshold=threshold, max_gap=max_gap)


def policy_label(setting: Setting) -> str:
    if setting.policy == FIXED:
        return f"{FIXED}:{setting.m}:{setting.n}:{setting.wire}"
    return f"{PREDICTIVE}:{setting.threshold:g}:{setting.max_gap}:{setting.wire}"


@dataclass
class Received:
    """The keypoints a receiver shows for one video under a policy."""

    values: np.ndarray  # (T, 60) float32
    forecast: np.ndarray  # (T,) bool: not a received frame
    messages: int  # put on the network


def received_values(setting: Setting, forecaster, truth: np.ndarray,
                    drop_probability: float = 0.0, seed: int = 0) -> Received:
    """One video's true keypoints through the simulated link of `setting`."""
    output = simulate(setting, forecaster, truth, drop_probability, seed)
    return Received(output.frames.copy(), output.forecast.copy(), output.messages)


@dataclass
class PolicyTally:
    """Sums of one policy over the videos."""

    frames: int = 0
    messages: int = 0
    forecast_frames: int = 0
    seconds: float = 0.0
    pixel_squared: float = 0.0  # sum over frames of the frame MSE
    psnr_sum: float = 0.0
    ssim_sum: float = 0.0
    keypoint_squared: float = 0.0

    def add(self, received: Received, truth: np.ndarray, frame_scores: dict[str, torch.Tensor],
            fps: float) -> None:
        self.frames += len(truth)
        self.messages += received.messages
        self.forecast_frames += int(received.forecast.sum())
        self.seconds += len(truth) / fps
        self.pixel_squared += float(frame_scores["mse"].double().sum())
        # A frame identical to the reference has an infinite PSNR: capped as PSNR_CAP_DB.
        self.psnr_sum += float(frame_scores["psnr"].double().clamp(max=PSNR_CAP_DB).sum())
        self.ssim_sum += float(frame_scores["ssim"].double().sum())
        difference = received.values.astype(np.float64) - truth.astype(np.float64)
        self.keypoint_squared += float((difference**2).sum())


PSNR_CAP_DB = 100.0  # the per-frame PSNR of a frame rendered exactly as the reference


def policy_row(setting: Setting, tally: PolicyTally) -> dict[str, Any]:
    """The report's entry of one policy (the JSON contract)."""
    from kp_motion.evaluation.metrics import video_psnr

    payload = wires.payload_bytes(setting.wire)
    messages_per_second = tally.messages / tally.seconds
    mean_mse = tally.pixel_squared / tally.frames
    return {
        "policy": policy_label(setting),
        "forecaster": setting.forecaster,
        "frames": tally.frames,
        "messages": tally.messages,
        "forecast_share": tally.forecast_frames / tally.frames,
        "payload_bytes_per_second": messages_per_second * payload,
        "wire_bytes_per_second": messages_per_second
        * (payload + wires.TRANSPORT_OVERHEAD_BYTES),
        "mse": mean_mse,
        # PSNR of the mean MSE; None when every frame matches the reference exactly.
        "psnr": None if mean_mse == 0 else video_psnr(np.array([mean_mse])),
        "mean_frame_psnr": tally.psnr_sum / tally.frames,
        "ssim": tally.ssim_sum / tally.frames,
        "keypoint_mse": tally.keypoint_squared / (tally.frames * NUM_VALUES),
    }


def evaluate_transmission(settings, videos: Sequence, models, policies: Sequence[str],
                          drop_probability: float = 0.0, seed: int = 0,
                          progress: bool = True) -> list[dict[str, Any]]:
    """Every policy x forecaster over `videos` (kp_motion.evaluation.pipeline's EvalVideo and
    EvalModels) -> one row per pair, against FOMM with every true keypoint."""
    from kp_motion.evaluation.pipeline import Evaluator, detect_values

    wanted = [parse_policy(text, label) for text in policies for label in models.forecasters]
    if not wanted:
        raise ValueError("no transmission policy or no forecaster to evaluate")
    tallies = {setting: PolicyTally() for setting in wanted}
    evaluator = Evaluator(settings, models, None, reset_per_block=False)
    for number, video in enumerate(tqdm(videos, desc="transmission", unit="video",
                                        disable=not progress)):
        animator = evaluator.animator(settings.reconstruction_motion)
        truth = detect_values(animator, video.frames, settings.detect_batch_size)[1:]
        score_video(animator, _as_float(video.frames[:1]), truth, video.fps,
                    settings.reconstruction_motion == "relative", models.forecasters, tallies,
                    drop_probability, seed + number)
    return [policy_row(setting, tally) for setting, tally in tallies.items()]


def score_video(animator, source: torch.Tensor, truth: np.ndarray, fps: float, relative: bool,
                forecasters: dict, tallies: dict[Setting, PolicyTally],
                drop_probability: float, seed: int) -> None:
    """One video's driving keypoints `truth` through every policy of `tallies`, rendered from
    `source` and scored against the rendering of `truth` (added to the tallies)."""
    from kp_motion.evaluation.metrics import per_frame_metrics
    from kp_motion.evaluation.pipeline import render_values
    from kp_motion.models.animator import keypoints_from_values

    animator.set_source(source)
    if relative:
        animator.set_driving_reference(keypoints_from_values(truth[0], animator.device))
    reference = render_values(animator, truth)
    for setting, tally in tallies.items():
        received = received_values(setting, forecasters[setting.forecaster], truth,
                                   drop_probability, seed)
        scores = per_frame_metrics(reference, render_values(animator, received.values))
        tally.add(received, truth, scores, fps)


def _as_float(frames: np.ndarray) -> torch.Tensor:
    from kp_motion.data.video_io import to_tensor

    return to_tensor(frames)


def write_transmission_report(rows: list[dict[str, Any]], context: dict[str, Any],
                              output_dir: str | Path) -> dict[str, Path]:
    """transmission.json (rows + context) and a Markdown table, in output_dir."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / JSON_NAME
    json_path.write_text(json.dumps({**context, "policies": rows}, indent=2) + "\n")
    lines = [
        "# Transmission policies in pixel space",
        "",
        "Rendered frames of what the receiver shows under each policy against FOMM with every "
        "true keypoint (reconstruction; first frame = source). "
        f"Videos: {len(context.get('videos', []))}; drop probability "
        f"{context.get('drop_probability', 0.0)}.",
        "",
        "| policy | forecaster | payload B/s | forecast share | MSE | PSNR dB | SSIM | "
        "keypoint MSE |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['policy']} | {row['forecaster']} | {row['payload_bytes_per_second']:.0f} | "
            f"{row['forecast_share']:.3f} | {row['mse']:.3g} | {_decibels(row['psnr'])} | "
            f"{row['ssim']:.4f} | {row['keypoint_mse']:.3g} |")
    markdown_path = output_dir / MARKDOWN_NAME
    markdown_path.write_text("\n".join(lines) + "\n")
    return {"json": json_path, "markdown": markdown_path}


def _decibels(value: float | None) -> str:
    return "exact" if value is None else f"{value:.2f}"
