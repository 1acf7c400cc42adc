"""Speed of the forecasters: per-step latency at batch 1 (what a receiver pays per frame) and
training throughput (what a training run pays). Learned models use the shipped settings
(config/forecaster.yaml) with untrained weights: speed does not depend on the weight values.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from kp_motion.forecasting.base import Forecaster, LearnedForecaster
from kp_motion.forecasting.baselines import BASELINES
from kp_motion.forecasting.checkpoint import build_model, load_forecaster
from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.settings import LEARNED_KINDS, ForecasterSettings, load_settings
from kp_motion.forecasting.synthetic import synthetic_sequences
from kp_motion.forecasting.train import sample_windows

WARMUP_CALLS = 10


@dataclass
class BenchmarkRow:
    model: str
    device: str
    observe_ms: float  # median of single observe() calls, batch 1
    predict_ms: float  # median of single predict(1) calls, batch 1
    train_sequences_per_s: float | None  # training windows of window_length frames per second
    parameters: int


def _median_ms(
    call: Callable[[], object],
    repeats: int,
    device: torch.device,
    prepare: Callable[[], object] | None = None,
) -> float:
    """Median wall time of `call` in ms; `prepare` runs untimed before each call."""

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    timings = []
    for attempt in range(WARMUP_CALLS + repeats):
        if prepare is not None:
            prepare()
        synchronize()
        started = time.perf_counter()
        call()
        synchronize()
        if attempt >= WARMUP_CALLS:
            timings.append((time.perf_counter() - started) * 1e3)
    return statistics.median(timings)


def _step_latency(
    forecaster: Forecaster, frames: np.ndarray, repeats: int, device: torch.device
) -> tuple[float, float]:
    """(observe ms, predict ms). Each timed predict(1) follows a true frame, as in a stream
    (predicting hundreds of frames in a row would time the drift, not the step)."""
    forecaster.reset()
    frame_numbers = itertools.count()

    def observe() -> None:
        forecaster.observe(frames[next(frame_numbers) % len(frames)])

    observe_ms = _median_ms(observe, repeats, device)
    predict_ms = _median_ms(lambda: forecaster.predict(1), repeats, device, prepare=observe)
    return observe_ms, predict_ms


def _training_throughput(
    kind: str,
    settings: ForecasterSettings,
    runs: list[np.ndarray],
    steps: int,
    device: torch.device,
) -> float:
    config = settings.train
    model = build_model(kind, settings.model_settings(kind)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(0)

    def step() -> None:
        windows = sample_windows(rng, runs, config.batch_size, config.window_length)
        loss, _ = model.training_loss(torch.from_numpy(windows).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    step()  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return config.batch_size * steps / (time.perf_counter() - started)


def benchmark_forecasters(
    device: str = "cpu",
    repeats: int = 200,
    train_steps: int = 5,
    settings: ForecasterSettings | None = None,
) -> list[BenchmarkRow]:
    """One row per forecaster (learned kinds, then baselines)."""
    if repeats < 1 or train_steps < 1:
        raise ValueError("repeats and train_steps must be >= 1")
    settings = settings or load_settings()
    torch_device = torch.device(device)
    length = max(settings.train.window_length, 2 * repeats)
    frames = synthetic_sequences(1, length, seed=0)[0]
    standardizer = Standardizer.fit([frames], settings.train.std_floor)
    runs = [standardizer.normalize(frames)]
    rows = []
    for kind in LEARNED_KINDS:
        model = build_model(kind, settings.model_settings(kind)).to(torch_device)
        forecaster = LearnedForecaster(model, standardizer)
        observe_ms, predict_ms = _step_latency(forecaster, frames, repeats, torch_device)
        throughput = _training_throughput(kind, settings, runs, train_steps, torch_device)
        parameters = sum(p.numel() for p in model.parameters())
        rows.append(BenchmarkRow(kind, device, observe_ms, predict_ms, throughput, parameters))
    for name, baseline_class in BASELINES.items():
        observe_ms, predict_ms = _step_latency(baseline_class(), frames, repeats, torch_device)
        rows.append(BenchmarkRow(name, device, observe_ms, predict_ms, None, 0))
    return rows


def benchmark_shipped_sets(device: str = "cpu", repeats: int = 200) -> list[BenchmarkRow]:
    """Per-step latency (batch 1) of every member of every shipped forecaster set, with its
    trained weights (the linear kinds run in numpy; their speed depends on the feature count)."""
    from kp_motion.forecasting.checkpoint import FORECASTER_SETS, forecaster_set_members

    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    torch_device = torch.device(device)
    frames = synthetic_sequences(1, 2 * repeats + 2 * WARMUP_CALLS, seed=0)[0]
    rows = []
    for set_name in FORECASTER_SETS:
        try:
            members = forecaster_set_members(set_name)
        except FileNotFoundError:
            continue  # a set that is not installed here
        for kind, folder in members.items():
            forecaster = load_forecaster(folder, device)
            observe_ms, predict_ms = _step_latency(forecaster, frames, repeats, torch_device)
            parameters = (
                sum(p.numel() for p in forecaster.model.parameters())
                if isinstance(forecaster, LearnedForecaster)
                else int(getattr(forecaster, "coefficients", np.zeros(0)).size)
            )
            rows.append(
                BenchmarkRow(f"{set_name}/{kind}", device, observe_ms, predict_ms, None, parameters)
            )
    return rows


def format_rows(rows: list[BenchmarkRow]) -> str:
    lines = [
        f"{'model':<18} {'device':<6} {'observe ms':>10} {'predict ms':>10} "
        f"{'train seq/s':>11} {'params':>8}"
    ]
    for row in rows:
        throughput = (
            "-" if row.train_sequences_per_s is None else f"{row.train_sequences_per_s:.0f}"
        )
        lines.append(
            f"{row.model:<18} {row.device:<6} {row.observe_ms:>10.3f} {row.predict_ms:>10.3f} "
            f"{throughput:>11} {row.parameters:>8}"
        )
    return "\n".join(lines)
