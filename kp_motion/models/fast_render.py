"""Faster inference copies of the FOMM models, with the same outputs (to float rounding).

- fold_batchnorm: in eval mode a BatchNorm is a per-channel affine map, so one that directly
  follows a convolution is merged into that convolution's weights and bias. Every conv -> norm
  pair of the hourglasses, the generator's first/down/up blocks and the second norm of each
  residual block (it follows conv1) folds; a residual block's first norm acts on the block's
  input (a sum), follows no convolution and stays.
- channels_last: the (B, H, W, C) memory layout oneDNN's CPU convolutions run on natively;
  without it every convolution reorders its input and output.
- transposed_upsampling: an up block's nearest 2x upsampling followed by its 3x3 convolution is
  one stride-2 transposed convolution with a 4x4 kernel (each output pixel of a given parity
  sees a 2x2 window of the input, whose weights are sums of the 3x3 taps): 2.25 times fewer
  multiply-adds and no upsampled copy of the input.
- compile (optional, `kp-motion bench --compile`): torch.compile of the cached render with
  inductor's freezing (weights become constants, prepacked for oneDNN, and the element-wise work
  around the convolutions is fused into them). Compiling takes tens of seconds on a small CPU
  and needs a C++ compiler; see compile_render.
- bf16 autocast: convolutions in bfloat16 (fast on CPUs with AVX512-BF16/AMX, and on GPUs),
  everything else in float32. Not exact: bench reports its error against float32.

The copies are for inference only (their state dicts no longer match a checkpoint); the models
they were made from are left untouched.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.models.blocks import DownBlock, ResidualBlock, SameBlock, UpBlock


@dataclass(frozen=True)
class RenderVariant:
    """How to prepare the models and run them: the settings `kp-motion bench` compares."""

    name: str
    fold_batchnorm: bool = False
    channels_last: bool = False
    transposed_upsampling: bool = False
    bf16: bool = False
    compile: bool = False


PLAIN = RenderVariant("fp32")
FOLDED = RenderVariant("fp32, BatchNorm folded", fold_batchnorm=True)
FOLDED_CHANNELS_LAST = RenderVariant(
    "fp32, folded + channels_last", fold_batchnorm=True, channels_last=True
)
FAST_FP32 = RenderVariant(
    "fp32, folded + channels_last + transposed up-convs",
    fold_batchnorm=True,
    channels_last=True,
    transposed_upsampling=True,
)
BF16 = RenderVariant(
    "bf16 autocast, all of the above",
    fold_batchnorm=True,
    channels_last=True,
    transposed_upsampling=True,
    bf16=True,
)
VARIANTS = (PLAIN, FOLDED, FOLDED_CHANNELS_LAST, FAST_FP32, BF16)
COMPILED_VARIANTS = (
    dataclasses.replace(FAST_FP32, name=f"{FAST_FP32.name} + torch.compile", compile=True),
    dataclasses.replace(BF16, name=f"{BF16.name} + torch.compile", compile=True),
)

# A stride-2, padding-1 transposed convolution adds input row i, through its tap k (0..3), to
# output row 2i - 1 + k. After nearest 2x upsampling, a 3x3 convolution's output row 2m sees
# input rows m - 1 (kernel row 0) and m (rows 1 and 2); row 2m + 1 sees m (rows 0 and 1) and
# m + 1 (row 2). So tap k stands for the sum of these 3x3 kernel rows (columns alike):
UPSAMPLING_TAPS = ((2,), (1, 2), (0, 1), (0,))


@torch.no_grad()
def fold_conv_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution computing norm(conv(x)) with norm in eval mode."""
    # float64 so that the fold adds no rounding beyond the final cast to the weights' dtype.
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    folded = copy.deepcopy(conv)
    folded.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    shifted = (bias - norm.running_mean.double()) * scale + norm.bias.double()
    if folded.bias is None:
        folded.bias = nn.Parameter(shifted.to(conv.weight.dtype))
    else:
        folded.bias.copy_(shifted.to(conv.bias.dtype))
    return folded


@torch.no_grad()
def transposed_upsampling_conv(conv: nn.Conv2d) -> nn.ConvTranspose2d:
    """The stride-2 transposed convolution equal to conv(nearest_upsample_2x(x)) for a 3x3
    convolution with padding 1."""
    if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
        raise ValueError("transposed upsampling needs a 3x3 convolution with padding 1")
    taps = torch.zeros(4, 3, dtype=torch.float64)
    for tap, rows in enumerate(UPSAMPLING_TAPS):
        taps[tap, list(rows)] = 1.0
    transposed = nn.ConvTranspose2d(
        conv.in_channels, conv.out_channels, 4, stride=2, padding=1, bias=conv.bias is not None
    ).to(conv.weight.device, conv.weight.dtype)
    # ConvTranspose2d weights are (in, out, kh, kw); summed in float64, then cast once.
    weight = torch.einsum("ai,bj,oyij->yoab", taps, taps, conv.weight.double())
    transposed.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is not None:
        transposed.bias.copy_(conv.bias)
    return transposed


class TransposedUpBlock(nn.Module):
    """An UpBlock computed with one transposed convolution instead of upsampling + conv."""

    def __init__(self, block: UpBlock) -> None:
        super().__init__()
        self.conv = transposed_upsampling_conv(block.conv)
        self.norm = block.norm

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(features)))


def use_transposed_upsampling(model: nn.Module) -> nn.Module:
    """Replace every UpBlock of `model` (in place) by its TransposedUpBlock."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, UpBlock):
                setattr(parent, name, TransposedUpBlock(child))
    return model


def _foldable(norm: nn.Module) -> bool:
    return isinstance(norm, nn.BatchNorm2d) and norm.affine and norm.track_running_stats


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every BatchNorm that follows a convolution folded."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, (SameBlock, DownBlock, UpBlock)) and _foldable(module.norm):
            module.conv = fold_conv_batchnorm(module.conv, module.norm)
            module.norm = nn.Identity()
        elif isinstance(module, ResidualBlock) and _foldable(module.norm2):
            module.conv1 = fold_conv_batchnorm(module.conv1, module.norm2)
            module.norm2 = nn.Identity()
    return folded


def prepare(model: nn.Module, variant: RenderVariant) -> nn.Module:
    """An eval-mode copy of `model` set up for `variant` (the original is not changed)."""
    prepared = fold_batchnorm(model) if variant.fold_batchnorm else copy.deepcopy(model).eval()
    if variant.transposed_upsampling:
        use_transposed_upsampling(prepared)
    if variant.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    if variant.bf16:
        # Autocast would cast every convolution's weights to bfloat16 on every call; casting
        # them once here gives the same numbers without that per-frame copy.
        for module in prepared.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.to(torch.bfloat16)
    return prepared


def as_layout(images: torch.Tensor, variant: RenderVariant) -> torch.Tensor:
    """Images in the memory layout of `variant` (4-D tensors only)."""
    if variant.channels_last and images.dim() == 4:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def autocast(variant: RenderVariant, device: torch.device | str = "cpu"):
    """The autocast context of `variant` (a no-op context for float32 variants)."""
    if not variant.bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def compile_render(generator: nn.Module, cache, kp_driving) -> Callable:
    """A compiled `generator.render(cache, kp, full_outputs=False)`, compiled now on the example
    (cache, kp_driving) with inductor's freezing, which is scoped to this first call. Call it
    under the same grad mode (no_grad / inference_mode) and autocast as you will run it: a
    change of either, or of the input sizes, compiles again, then without freezing.

    The Jacobian guard stays outside the compiled graph (it counts its corrections in Python,
    which would split the graph): it runs first, on `generator`'s counter, and the compiled
    copy takes the guarded keypoints."""
    import torch._inductor.config as inductor_config

    dense_motion = generator.dense_motion_network
    unguarded = copy.deepcopy(generator)
    unguarded.dense_motion_network.guard_keypoints = False
    compiled = torch.compile(functools.partial(unguarded.render, full_outputs=False))

    def render(cache, kp: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        positions, jacobians = dense_motion.guarded(kp)
        return compiled(cache, {"value": positions, "jacobian": jacobians})

    with inductor_config.patch(freezing=True):
        render(cache, kp_driving)
    return render
