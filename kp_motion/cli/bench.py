"""`kp-motion bench`: per-frame latency of the models on this machine.

Sections are independent timing routines registered in SECTIONS (name -> function returning
rows); `--only NAME` runs one. The "models" section times, for each FOMM profile at batch 1:
the keypoint detector, the renderer without source caching (encoder + dense motion + decoder),
the renderer with the source cached (the per-frame cost of a fixed source), and a whole
frame (detect + cached render). Each figure is the median over --repeats runs after --warmup.
The "forecasters" section times observe() and predict() of each forecaster at batch 1 (at
least 50 runs) and the training throughput (ms per training sequence, sequences/s), with the
shipped sizes and untrained weights; "forecaster-sets" times every member of every shipped
forecaster set (models/forecasters*, trained weights) the same way.

User errors are raised as ValueError (printed as one line by the dispatcher).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

COMMAND = "bench"
HELP = "time the detector and renderer per frame for each profile, and the forecasters per step"

DEFAULT_PROFILES = ("vox-256", "mgif-256", "bair-256", "compact-64")


@dataclass(frozen=True)
class Row:
    section: str
    subject: str  # what was timed, e.g. a profile name
    stage: str
    milliseconds: float  # median per unit (a frame, or a training sequence)
    unit: str = "frame"

    @property
    def fps(self) -> float:
        return 1000.0 / self.milliseconds if self.milliseconds > 0 else float("inf")


def median_milliseconds(
    step: Callable[[], object], repeats: int, warmup: int, synchronize: Callable[[], None]
) -> float:
    """Median wall time of step() in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize()  # CUDA runs asynchronously: wait before reading the clock
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def _model_subjects(args: argparse.Namespace, device):
    """(name, config, kp_detector, generator) for each profile, or for --checkpoint only."""
    from kp_motion.models import build_models, load_model, load_profile
    from kp_motion.models.checkpoint import resolve_checkpoint

    if args.checkpoint:
        config, kp_detector, generator = load_model(resolve_checkpoint(args.checkpoint), device)
        return [(f"{config.name} ({args.checkpoint})", config, lambda: (kp_detector, generator))]
    # Every profile is read before any timing starts, so a bad name fails at once.
    configs = [(name, load_profile(name)) for name in args.profiles]

    def builder(config):
        # Randomly initialised weights: the latency does not depend on their values.
        return lambda: tuple(model.eval() for model in build_models(config, device))

    return [(name, config, builder(config)) for name, config in configs]


def model_stages(kp_detector, generator, source, driving) -> list[tuple[str, Callable]]:
    """(stage name, step) pairs timing one profile's detector and renderer at batch 1."""
    kp_source = kp_detector(source)
    kp_driving = kp_detector(driving)
    cache = generator.encode_source(source, kp_source)

    def detect() -> object:
        return kp_detector(driving)

    def render_uncached() -> object:
        return generator(source, kp_source, kp_driving, full_outputs=False)

    def render_cached() -> object:
        return generator.render(cache, kp_driving, full_outputs=False)

    def whole_frame() -> object:
        return generator.render(cache, kp_detector(driving), full_outputs=False)

    return [
        ("detector", detect),
        ("render, no cache", render_uncached),
        ("render, cached source", render_cached),
        ("frame: detect + cached render", whole_frame),
    ]


def bench_models(args: argparse.Namespace, device, synchronize) -> list[Row]:
    import torch
    from tqdm import tqdm

    rows = []
    subjects = _model_subjects(args, device)
    progress = tqdm(subjects, desc="models", unit="profile", leave=False)
    for name, config, build in progress:
        progress.set_postfix_str(name)
        kp_detector, generator = build()
        random = torch.Generator().manual_seed(0)
        frames = torch.rand(2, config.num_channels, *config.image_size, generator=random)
        source, driving = frames.to(device).split(1)
        with torch.inference_mode():
            for stage, step in model_stages(kp_detector, generator, source, driving):
                ms = median_milliseconds(step, args.repeats, args.warmup, synchronize)
                rows.append(Row("models", name, stage, ms))
    return rows


def bench_forecasters(args: argparse.Namespace, device, synchronize) -> list[Row]:
    """Per-step latency of each forecaster at batch 1, and training throughput."""
    from kp_motion.forecasting.benchmark import benchmark_forecasters

    rows = []
    for result in benchmark_forecasters(str(device), repeats=max(args.repeats, 50)):
        rows.append(Row("forecasters", result.model, "observe", result.observe_ms))
        rows.append(Row("forecasters", result.model, "predict 1 frame", result.predict_ms))
        if result.train_sequences_per_s is not None:
            rows.append(
                Row(
                    "forecasters",
                    result.model,
                    "training",
                    1000.0 / result.train_sequences_per_s,
                    unit="sequence",
                )
            )
    return rows


def bench_forecaster_sets(args: argparse.Namespace, device, synchronize) -> list[Row]:
    """Per-step latency at batch 1 of every shipped forecaster set's members, trained weights."""
    from kp_motion.forecasting.benchmark import benchmark_shipped_sets

    rows = []
    for result in benchmark_shipped_sets(str(device), repeats=max(args.repeats, 50)):
        rows.append(Row("forecaster-sets", result.model, "observe", result.observe_ms))
        rows.append(Row("forecaster-sets", result.model, "predict 1 frame", result.predict_ms))
    return rows


# Section name -> routine(args, device, synchronize) -> rows. Add new sections here.
SECTIONS: dict[str, Callable[..., list[Row]]] = {
    "models": bench_models,
    "forecasters": bench_forecasters,
    "forecaster-sets": bench_forecaster_sets,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", choices=sorted(SECTIONS), help="run one section (default: all of them)"
    )
    parser.add_argument(
        "--profiles",
        nargs="+",
        default=list(DEFAULT_PROFILES),
        metavar="PROFILE",
        help=f"model profiles to time (default: {' '.join(DEFAULT_PROFILES)})",
    )
    parser.add_argument(
        "--checkpoint",
        help="time this project checkpoint (folder or embedded model name) instead of profiles",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


def format_rows(rows: list[Row]) -> list[str]:
    subject_width = max([len("model")] + [len(row.subject) for row in rows])
    stage_width = max([len("stage")] + [len(row.stage) for row in rows])
    header = (
        f"{'model':<{subject_width}}  {'stage':<{stage_width}}  {'ms/unit':>9}  "
        f"{'per s':>9}  unit"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        # Sub-millisecond forecaster steps need more digits than the renderer's.
        digits = 3 if row.milliseconds < 1 else 2
        lines.append(
            f"{row.subject:<{subject_width}}  {row.stage:<{stage_width}}  "
            f"{row.milliseconds:9.{digits}f}  {row.fps:9.1f}  {row.unit}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    import torch

    if args.repeats < 1 or args.warmup < 0:
        raise ValueError("--repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    from kp_motion.models.checkpoint import resolve_device

    device = resolve_device(args.device)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sections = [args.only] if args.only else list(SECTIONS)
    # Time everything first, then print one report (progress bars go to stderr meanwhile).
    tables = {section: SECTIONS[section](args, device, synchronize) for section in sections}
    print(
        f"kp-motion bench: device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, batch 1, median of {args.repeats} runs "
        f"after {args.warmup} warm-up"
    )
    for section, rows in tables.items():
        print(f"\n[{section}]")
        print("\n".join(format_rows(rows)))
    return 0
