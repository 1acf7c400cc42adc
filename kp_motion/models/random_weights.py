"""Random-weight models whose outputs look like a trained model's, for benchmarks.

Freshly initialised FOMM models keep BatchNorm's default statistics (mean 0, variance 1), so
their features grow layer after layer, and the generator's last convolution then gives values
whose sigmoid is 0.5 +- 0.001 everywhere. Timing does not care, but every difference between
two computation paths (folded, bf16, ONNX, ...) shrinks a thousandfold and reads as exact.
`calibrate` measures the statistics on frames, as training does on data, and scales the last
convolution so the frames span the output range.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def calibrate_batchnorm(model: nn.Module, forward: Callable[[], object]) -> None:
    """Set every BatchNorm's running statistics to those of the batch `forward` passes."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average: one batch gives its own statistics
    model.train()
    with torch.no_grad():
        forward()
    model.eval()


def spread_output(generator: nn.Module, forward: Callable[[], object]) -> None:
    """Scale the generator's last convolution (`final`, the sigmoid's input) to mean 0 and
    standard deviation 1 on what `forward` passes."""
    captured: list[torch.Tensor] = []
    hook = generator.final.register_forward_hook(lambda _m, _args, out: captured.append(out))
    try:
        with torch.no_grad():
            forward()
    finally:
        hook.remove()
    logits = captured[0]
    with torch.no_grad():
        spread = logits.std().clamp_min(1e-12)
        generator.final.weight /= spread
        generator.final.bias -= logits.mean()
        generator.final.bias /= spread


def calibrate(kp_detector: nn.Module, generator: nn.Module, frames: torch.Tensor) -> None:
    """Calibrate random kp_motion or reference-FOMM models (in place; left in eval mode) on a
    few frames: each frame is driven from the one before it."""
    sources = frames.roll(1, 0)
    calibrate_batchnorm(kp_detector, lambda: kp_detector(frames))
    with torch.no_grad():
        kp_source, kp_driving = kp_detector(sources), kp_detector(frames)

    def run_generator():
        return generator(source_image=sources, kp_source=kp_source, kp_driving=kp_driving)

    calibrate_batchnorm(generator, run_generator)
    spread_output(generator, run_generator)
