"""`kp-motion export`: the keypoint detector and the source-cached renderer as ONNX files.

Writes FOLDER/detector.onnx and FOLDER/renderer.onnx (see kp_motion/models/onnx_export.py for
their inputs and outputs), then, where onnxruntime is installed, runs both on random frames and
prints their largest difference from PyTorch. User errors are raised as ValueError /
FileNotFoundError (printed as one line by the dispatcher, exit status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

COMMAND = "export"
HELP = "export the keypoint detector and the source-cached renderer to ONNX (opset 17)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kp_motion.cli.animate import add_model_arguments

    parser.add_argument("-o", "--output", required=True, help="folder for the .onnx files")
    add_model_arguments(parser)
    parser.add_argument(
        "--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison"
    )


def check_output(folder: Path) -> None:
    """Refuse before any model is loaded to write over existing files."""
    from kp_motion.models.onnx_export import DETECTOR_FILE, RENDERER_FILE

    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output {folder}: exists and is not a folder")
    for name in (DETECTOR_FILE, RENDERER_FILE):
        if (folder / name).exists():
            raise ValueError(f"--output {folder}: {name} exists already (choose another folder)")


def compare_with_pytorch(config, kp_detector, generator, paths) -> dict[str, float]:
    """Largest absolute differences of onnxruntime from PyTorch on random frames (batch 2)."""
    import torch

    from kp_motion.models.onnx_export import OnnxDetector, OnnxRenderer

    random = torch.Generator().manual_seed(1)
    frames = torch.rand(3, config.num_channels, *config.image_size, generator=random)
    source, driving = frames[:1], frames[1:]
    with torch.no_grad():
        kp_driving = kp_detector(driving)
        cache = generator.encode_source(source, kp_detector(source))
        expected = generator.render(cache, kp_driving, full_outputs=False)["prediction"]
    detected = OnnxDetector(paths["detector"])(driving)
    rendered = OnnxRenderer(paths["renderer"], generator).render(cache, kp_driving)
    return {
        "keypoints": float((detected["value"] - kp_driving["value"]).abs().max()),
        "jacobians": float((detected["jacobian"] - kp_driving["jacobian"]).abs().max()),
        "prediction": float((rendered - expected).abs().max()),
    }


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from kp_motion.cli import animate
    from kp_motion.models.onnx_export import export_models

    if importlib.util.find_spec("onnx") is None:  # torch's exporter writes through it
        raise ValueError("the onnx package is not installed (pip install 'kp-motion[onnx]')")
    folder = Path(args.output)
    check_output(folder)
    args.device = "cpu"  # the export traces on the CPU; the files run anywhere
    animate.check_model_arguments(args)
    config, kp_detector, generator = animate.load_models(args)
    paths = export_models(config, kp_detector, generator, folder)
    print(f"kp-motion export: {config.name} -> {paths['detector']}, {paths['renderer']}")
    if args.no_check:
        return 0
    if importlib.util.find_spec("onnxruntime") is None:
        print("onnxruntime is not installed: outputs not compared (pip install 'kp-motion[onnx]')")
        return 0
    differences = compare_with_pytorch(config, kp_detector, generator, paths)
    listed = ", ".join(f"{name} {value:.1e}" for name, value in differences.items())
    print(f"onnxruntime vs PyTorch, largest absolute difference: {listed}")
    return 0
