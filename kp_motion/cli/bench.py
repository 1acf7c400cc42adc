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
The "render" section compares the faster renderer variants (see its comment below and
docs/rendering-performance.md).

User errors are raised as ValueError (printed as one line by the dispatcher).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

COMMAND = "bench"
HELP = "time the detector and renderer per frame for each profile, and the forecasters per step"

DEFAULT_PROFILES = ("vox-256", "mgif-256", "bair-256", "face-128", "compact-64")


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


# Renderer variants ---------------------------------------------------------------------------
# The "render" section times, for each profile (or reference YAML) at its size or at --size,
# with random weights (calibrated by models/random_weights.py: unsaturated outputs) and smooth
# random frames: the detector and the source-cached render in every fast_render variant
# (float32 plain, BatchNorm folded, + channels_last, bf16 autocast; with --compile, the
# torch.compile'd ones), onnxruntime where it is installed (CPU), and --streams sources rendered
# in one batched call against one call per stream. Each stage name carries its largest
# absolute difference from the plain float32 output. The stages are timed in alternation (one
# run of each per round), so that load from other processes spreads evenly over them; each
# figure is the median of --repeats rounds.


@dataclass
class RenderSubject:
    """One profile's random-weight models and frames, and the timed steps built for it."""

    config: object  # ModelConfig
    kp_detector: object
    generator: object
    source: object  # (1, C, H, W)
    driving: object  # (1, C, H, W)
    device: object
    steps: dict[str, Callable[[], object]]
    per_frame: dict[str, int]  # frames rendered by one call of a step (batched streams)
    reference: dict[str, object] | None = None  # plain float32 keypoints and prediction

    def add(self, stage: str, step: Callable[[], object], frames: int = 1) -> None:
        self.steps[stage] = step
        self.per_frame[stage] = frames


def interleaved_medians(
    steps: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    synchronize: Callable[[], None],
) -> dict[str, float]:
    """Median ms of each step, the steps run in turn in each of `repeats` rounds."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            samples[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in samples.items()}


def _render_config(spec: str, size: int | None):
    import dataclasses

    from kp_motion.models.reference_config import resolve_model_config

    config = resolve_model_config(spec)
    if size is not None:
        config = dataclasses.replace(config, image_size=(size, size))
    return config


def smooth_frames(count: int, config, seed: int):
    """(count, C, H, W) random frames that are smooth at the pixel scale, like photographs:
    8 x 8 uniform noise enlarged bilinearly. (On pixel noise, a sub-pixel change of the flow
    changes the output as much as a whole pixel would, which no real frame does.)"""
    import torch
    import torch.nn.functional as F

    random = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, config.num_channels, 8, 8, generator=random)
    return F.interpolate(coarse, size=config.image_size, mode="bilinear", align_corners=True)


def _max_difference(tensor, reference) -> str:
    return f"{float((tensor.float() - reference.float()).abs().max()):.1e}"


def _variant_steps(subject: RenderSubject, compile: bool) -> None:
    """Detector and cached-render steps of every fast_render variant (and the compiled ones)."""
    from kp_motion.models import fast_render

    variants = fast_render.VARIANTS + (fast_render.COMPILED_VARIANTS if compile else ())
    slowdown = fast_render.bf16_slowdown(fast_render.BF16, subject.device)
    if slowdown is not None:  # minutes of emulation for numbers nobody should deploy
        print(f"bench: bf16 variants not timed: {slowdown}", file=sys.stderr)
        variants = tuple(variant for variant in variants if not variant.bf16)
    for variant in variants:
        detector = fast_render.prepare(subject.kp_detector, variant)
        generator = fast_render.prepare(subject.generator, variant)
        autocast = fast_render.autocast(variant, subject.device)
        with autocast:
            source, driving = (
                fast_render.as_layout(x, variant) for x in (subject.source, subject.driving)
            )
            kp_driving = detector(driving)
            cache = generator.encode_source(source, detector(source))
            render_call = _render_call(generator, cache, kp_driving, variant.compile)
            rendered = render_call(cache, kp_driving)["prediction"]
        if subject.reference is None:
            subject.reference = {"value": kp_driving["value"], "prediction": rendered}
        kp_note = _max_difference(kp_driving["value"], subject.reference["value"])
        render_note = _max_difference(rendered, subject.reference["prediction"])

        def detect(detector=detector, driving=driving, variant=variant):
            with fast_render.autocast(variant, subject.device):
                return detector(driving)

        def render(render_call=render_call, cache=cache, kp=kp_driving, variant=variant):
            with fast_render.autocast(variant, subject.device):
                return render_call(cache, kp)

        if not variant.compile:  # the detector is not compiled: its rows would repeat
            subject.add(f"detector, {variant.name} (max diff {kp_note})", detect)
        subject.add(f"render cached, {variant.name} (max diff {render_note})", render)


def _render_call(generator, cache, kp_driving, compile: bool) -> Callable:
    """render(cache, kp) of the generator, compiled where asked (see fast_render)."""
    from kp_motion.models import fast_render

    if not compile:
        return lambda cache, kp: generator.render(cache, kp, False)
    try:
        return fast_render.compile_render(generator, cache, kp_driving)
    except Exception as error:  # inductor fails in many ways (no C++ compiler, ...)
        reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        raise ValueError(f"--compile: torch.compile failed ({reason})") from None


def _onnx_steps(subject: RenderSubject) -> None:
    """onnxruntime's detector and renderer, where onnx and onnxruntime are installed (CPU)."""
    import importlib.util
    import tempfile

    import torch

    from kp_motion.models import onnx_export

    needed = ("onnx", "onnxruntime")  # onnx writes the export, onnxruntime runs it
    if subject.device.type != "cpu" or any(importlib.util.find_spec(n) is None for n in needed):
        return
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="kp-motion-bench-onnx-") as folder:
        paths = onnx_export.export_models(
            subject.config, subject.kp_detector, subject.generator, folder
        )
        detector = onnx_export.OnnxDetector(paths["detector"], threads)
        renderer = onnx_export.OnnxRenderer(paths["renderer"], subject.generator, threads)
    source, driving = subject.source, subject.driving
    kp_driving = subject.kp_detector(driving)
    cache = subject.generator.encode_source(source, subject.kp_detector(source))
    kp_note = _max_difference(detector(driving)["value"], subject.reference["value"])
    rendered = renderer.render(cache, kp_driving)
    render_note = _max_difference(rendered, subject.reference["prediction"])
    subject.add(f"detector, onnxruntime (max diff {kp_note})", lambda: detector(driving))
    subject.add(
        f"render cached, onnxruntime (max diff {render_note})",
        lambda: renderer.render(cache, kp_driving),
    )


def _stream_steps(subject: RenderSubject, streams: int) -> None:
    """`streams` sources: one StreamBatch render call against one Animator call per stream (in
    the fast variant, which keeps float32 outputs)."""
    import torch

    from kp_motion.models.animator import Animator, StreamBatch
    from kp_motion.names import FAST_RENDER

    if streams < 2:
        return
    frames = smooth_frames(2 * streams, subject.config, seed=1).to(subject.device)
    sources, driving = frames[:streams], frames[streams:]
    animators = []
    for source in sources:
        animator = Animator(subject.kp_detector, subject.generator, subject.config,
                            mode="absolute", variant=FAST_RENDER)  # fmt: skip
        animator.set_source(source[None])
        animators.append(animator)
    kp_driving = animators[0].detect(driving)
    one_each = [{key: value[i : i + 1] for key, value in kp_driving.items()} for i in
                range(streams)]  # fmt: skip
    batch = StreamBatch(animators)

    def in_one_call():
        return batch.render(one_each)

    def one_at_a_time():
        return [animator.render(kp) for animator, kp in zip(animators, one_each, strict=True)]

    batched = torch.cat([outputs["prediction"] for outputs in in_one_call()])
    singles = torch.cat([outputs["prediction"] for outputs in one_at_a_time()])
    note = _max_difference(batched, singles)
    variant = animators[0].variant.name
    subject.add(f"{streams} streams in one call, {variant} (vs one at a time: max diff {note})",
                in_one_call, frames=streams)  # fmt: skip
    subject.add(f"{streams} streams one at a time, {variant}", one_at_a_time, streams)


def _render_models(spec: str, config, device):
    """(kp_detector, generator, "trained weights: NAME" or "random weights") for a profile.

    A shipped model of the profile lends its trained weights (at any --size: only the frame
    size changes), so that the variants' differences are those of a real model. Otherwise the
    weights are random and calibrated (kp_motion.models.random_weights), whose output is not
    flat but whose gain is arbitrary: there the differences are indicative only."""
    import dataclasses

    import torch

    from kp_motion.models import build_models, random_weights
    from kp_motion.models.checkpoint import CONFIG_FILE, embedded_model_folder, load_model
    from kp_motion.names import FACE_MODEL, SYNTHETIC_MODEL

    for name in (FACE_MODEL, SYNTHETIC_MODEL):
        folder = embedded_model_folder(name)
        if not (folder / CONFIG_FILE).is_file():
            continue
        shipped, kp_detector, generator = load_model(folder, device)
        if dataclasses.replace(shipped, image_size=config.image_size) == config:
            return kp_detector, generator, f"trained weights: {name}"
    torch.manual_seed(0)
    kp_detector, generator = build_models(config, device)
    random_weights.calibrate(kp_detector, generator, smooth_frames(4, config, 9).to(device))
    return kp_detector, generator, "random weights"


def bench_render(args: argparse.Namespace, device, synchronize) -> list[Row]:
    import torch

    configs = [(spec, _render_config(spec, args.size)) for spec in args.profiles]
    rows = []
    for spec, config in configs:
        kp_detector, generator, weights = _render_models(spec, config, device)
        source, driving = smooth_frames(2, config, seed=0).to(device).split(1)
        subject = RenderSubject(config, kp_detector, generator, source, driving, device, {}, {})
        with torch.inference_mode():
            _variant_steps(subject, args.compile)
            _onnx_steps(subject)
            _stream_steps(subject, args.streams)
            medians = interleaved_medians(subject.steps, args.repeats, args.warmup, synchronize)
        name = f"{spec} {config.height}x{config.width} ({weights})"
        for stage, milliseconds in medians.items():
            rows.append(Row("render", name, stage, milliseconds / subject.per_frame[stage]))
    return rows


# Section name -> routine(args, device, synchronize) -> rows. Add new sections here.
SECTIONS: dict[str, Callable[..., list[Row]]] = {
    "models": bench_models,
    "forecasters": bench_forecasters,
    "forecaster-sets": bench_forecaster_sets,
    "render": bench_render,
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
    parser.add_argument(
        "--size", type=int, help="render section: frame size in pixels (default: the profile's)"
    )
    parser.add_argument(
        "--streams", type=int, default=4, help="render section: sources batched in one call"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="render section: also time torch.compile'd renders (tens of seconds to compile)",
    )


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
    if (args.size is not None and args.size < 1) or args.streams < 1:
        raise ValueError("--size and --streams must be >= 1")
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
