"""The renderer against the public reference FOMM code, timed side by side in one process.

The reference (github.com/AliaksandrSiarohin/first-order-model) is imported from a checkout the
user gives; nothing of it is copied here. Both models get the same seeded random weights (the
reference's modules are built, calibrated on smooth random frames by
kp_motion.models.random_weights so that their outputs are not saturated and a difference
between paths shows, then their state dict is loaded into kp_motion's models). Ours warps with
align_corners=False, as the reference does on PyTorch >= 1.3.

Every stage runs once per round, in turn, and each figure is the median over the rounds: load
from other processes then falls evenly on all stages, so the ratios are what to read.

    git clone https://github.com/AliaksandrSiarohin/first-order-model ../first-order-model
    python -m research.reference_speed --reference ../first-order-model [--rounds 15]

Prints a markdown table (ms/frame, ratio to the reference generator, largest difference from
our plain float32 render and from the reference's output); writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from kp_motion import config as config_io
from kp_motion.cli.bench import smooth_frames
from kp_motion.models import fast_render, random_weights
from kp_motion.models.checkpoint import build_models, strict_load
from kp_motion.models.reference_config import resolve_model_config

REFERENCE_GENERATOR = "reference generator (no source cache)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m research.reference_speed")
    parser.add_argument("--reference", type=Path, required=True,
                        help="checkout of the public first-order-model code")  # fmt: skip
    parser.add_argument("--config", default="vox-256",
                        help="a YAML of the checkout's config/ (default vox-256)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variants")
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime")
    args = parser.parse_args(argv)
    config_path = args.reference / "config" / f"{args.config}.yaml"
    if not (args.reference / "modules" / "generator.py").is_file() or not config_path.is_file():
        parser.error(f"{args.reference}: not a first-order-model checkout with {config_path.name}")
    args.config_path = config_path
    return args


def reference_models(args: argparse.Namespace) -> tuple[nn.Module, nn.Module]:
    sys.path.insert(0, str(args.reference))
    detector_module = importlib.import_module("modules.keypoint_detector")
    generator_module = importlib.import_module("modules.generator")
    params = config_io.load_yaml(args.config_path)["model_params"]
    torch.manual_seed(0)
    detector = detector_module.KPDetector(**params["kp_detector_params"], **params["common_params"])
    generator = generator_module.OcclusionAwareGenerator(
        **params["generator_params"], **params["common_params"]
    )
    frames = smooth_frames(4, resolve_model_config(args.config_path), seed=9)
    random_weights.calibrate(detector, generator, frames)
    return detector, generator


def time_rounds(stages: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median milliseconds of each stage over `rounds` rounds, every stage once per round."""
    for stage in stages.values():
        stage()  # warm-up (oneDNN primitive caches, lazy allocations)
    samples: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(rounds):
        for name, stage in stages.items():
            start = time.perf_counter()
            stage()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    reference_detector, reference_generator = reference_models(args)
    config = resolve_model_config(args.config_path, warp_align_corners=False)
    kp_detector, generator = build_models(config)
    strict_load(kp_detector, reference_detector.state_dict(), "reference detector")
    strict_load(generator, reference_generator.state_dict(), "reference generator")
    kp_detector.eval(), generator.eval()
    frames = smooth_frames(2, config, seed=0)
    source, driving = frames[:1], frames[1:]

    stages: dict[str, Callable[[], object]] = {}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        kp_source, kp_driving = reference_detector(source), reference_detector(driving)

        def run_reference():
            return reference_generator(source, kp_driving=kp_driving, kp_source=kp_source)

        stages[REFERENCE_GENERATOR] = run_reference
        outputs[REFERENCE_GENERATOR] = run_reference()["prediction"]
        variants = fast_render.VARIANTS
        if not args.no_compile:
            variants += fast_render.COMPILED_VARIANTS
        for variant in variants:
            name, render = variant_stage(variant, kp_detector, generator, source, driving)
            stages[name] = render
            outputs[name] = render()["prediction"].float()
        if not args.no_onnx:
            stages.update(onnx_stage(config, kp_detector, generator, source, driving, outputs,
                                     args.threads))  # fmt: skip
        milliseconds = time_rounds(stages, args.rounds)
    print_table(args, milliseconds, outputs)
    return 0


def variant_stage(variant, kp_detector, generator, source, driving):
    """(row name, render call) of the source-cached render in `variant`."""
    prepared = fast_render.prepare(generator, variant)
    with fast_render.autocast(variant):
        layout_source = fast_render.as_layout(source, variant)
        kp_driving = kp_detector(fast_render.as_layout(driving, variant))
        cache = prepared.encode_source(layout_source, kp_detector(layout_source))
        if variant.compile:
            started = time.perf_counter()
            call = fast_render.compile_render(prepared, cache, kp_driving)
            print(f"compiled {variant.name} in {time.perf_counter() - started:.0f} s", flush=True)
        else:
            def call(cache, kp):
                return prepared.render(cache, kp, full_outputs=False)

    def render():
        with fast_render.autocast(variant):
            return call(cache, kp_driving)

    return f"ours, cached, {variant.name}", render


def onnx_stage(config, kp_detector, generator, source, driving, outputs, threads):
    try:
        from kp_motion.models import onnx_export

        with tempfile.TemporaryDirectory() as folder:
            paths = onnx_export.export_models(config, kp_detector, generator, folder)
            renderer = onnx_export.OnnxRenderer(paths["renderer"], generator, threads)
    except ImportError as error:
        print(f"onnxruntime skipped: {error}")
        return {}
    cache = generator.encode_source(source, kp_detector(source))
    kp_driving = kp_detector(driving)
    name = "ours, cached, onnxruntime"
    outputs[name] = renderer.render(cache, kp_driving)
    return {name: lambda: renderer.render(cache, kp_driving)}


def print_table(args, milliseconds: dict[str, float], outputs: dict[str, torch.Tensor]) -> None:
    reference_ms = milliseconds[REFERENCE_GENERATOR]
    plain = outputs[f"ours, cached, {fast_render.PLAIN.name}"]
    print(f"\n{args.config} {tuple(plain.shape[-2:])}, {args.threads} threads, batch 1, torch "
          f"{torch.__version__}, median of {args.rounds} alternating rounds\n")  # fmt: skip
    print("| stage | ms/frame | vs reference | max diff vs our plain fp32 | vs reference output |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, value in milliseconds.items():
        output = outputs[name]
        to_plain = "-" if name == REFERENCE_GENERATOR else f"{(output - plain).abs().max():.1e}"
        to_reference = f"{(output - outputs[REFERENCE_GENERATOR]).abs().max():.1e}"
        ratio = value / reference_ms
        print(f"| {name} | {value:.0f} | {ratio:.2f} | {to_plain} | {to_reference} |")


if __name__ == "__main__":
    sys.exit(main())
