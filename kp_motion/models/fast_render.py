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
- winograd (compiled float32 only): each residual block's 3x3 convolutions computed by
  Winograd's F(2x2, 3x3) algorithm, 2.25 times fewer multiply-adds (see WinogradConv3x3).
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
    winograd: bool = False

    def __post_init__(self) -> None:
        if self.winograd and self.bf16:
            # Winograd's transforms add rounding of their own; in bfloat16 that would be
            # far above the float32 error the variant is for.
            raise ValueError(f"{self.name}: Winograd convolutions are for float32 only")


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
# The fastest float32 path: compiled, with Winograd residual convolutions (compile_render).
FAST_FP32_COMPILED = dataclasses.replace(
    FAST_FP32,
    name=f"{FAST_FP32.name} + Winograd residual convs + torch.compile",
    compile=True,
    winograd=True,
)
COMPILED_VARIANTS = (
    dataclasses.replace(FAST_FP32, name=f"{FAST_FP32.name} + torch.compile", compile=True),
    FAST_FP32_COMPILED,
    dataclasses.replace(BF16, name=f"{BF16.name} + torch.compile", compile=True),
)


def variant_named(name: str) -> RenderVariant:
    """The variant a user names (kp_motion.names.RENDER_VARIANTS)."""
    from kp_motion import names

    by_name = {
        names.PLAIN_RENDER: PLAIN,
        names.FAST_RENDER: FAST_FP32,
        names.BF16_RENDER: BF16,
        names.COMPILED_RENDER: FAST_FP32_COMPILED,
        names.COMPILED_BF16_RENDER: COMPILED_VARIANTS[-1],
    }
    if name not in by_name:
        raise ValueError(f"unknown render variant {name!r} (expected one of {list(by_name)})")
    return by_name[name]


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


# Winograd's F(2x2, 3x3): a 2x2 block of outputs of a 3x3 convolution from the 4x4 input tile
# under it, with 16 multiplies per (input, output) channel pair instead of 36:
#   Y = A^T [(G g G^T) * (B^T d B)] A    (* elementwise over the 4x4 tile)
# G maps the 3x3 kernel g to 4x4 once, when the module is built; B^T (rows: d0 - d2, d1 + d2,
# d2 - d1, d1 - d3) and A^T (rows: m0 + m1 + m2, m1 - m2 - m3) are the sums written out in
# _tile_rows and _output_rows. The 16 elementwise products summed over input channels are 16
# matrix products: one grouped 1x1 convolution, which oneDNN runs at full speed.
WINOGRAD_KERNEL_TRANSFORM = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _tile_rows(d0, d1, d2, d3):
    """B^T applied along one axis of the 4x4 input tiles."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def _output_rows(m0, m1, m2, m3):
    """A^T applied along one axis of the 4x4 product tiles."""
    return m0 + m1 + m2, m1 - m2 - m3


class WinogradConv3x3(nn.Module):
    """A 3x3, stride-1, padding-1 convolution computed with Winograd's F(2x2, 3x3).

    2.25 times fewer multiply-adds than the direct convolution, at the price of two
    element-wise transforms. Eager PyTorch runs those as separate passes over memory and gains
    nothing; compiled (inductor fuses them with the neighbouring ReLU, BatchNorm and residual
    sums) a 256-channel 64x64 convolution took 5.6 ms instead of 9.8 on the project's 2-core
    CPU. Outputs equal the convolution's to float32 rounding (about 1e-6 relative). Any height,
    width and batch; odd sizes are padded by one more zero row or column and cropped.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not winograd_eligible(conv):
            raise ValueError(
                "Winograd F(2x2, 3x3) needs a 3x3 convolution with stride 1, padding 1, "
                "no dilation, one group and zero padding"
            )
        transform = torch.tensor(WINOGRAD_KERNEL_TRANSFORM, dtype=torch.float64)
        # (4, 4, in, out): G g G^T for every channel pair, in float64 then cast once.
        kernels = torch.einsum("ai,oyij,bj->abyo", transform, conv.weight.double(), transform)
        self.out_channels = conv.out_channels
        # Grouped 1x1 convolution weights: group t = 4a + b of the tile maps the input
        # channels' transformed values at t to the output channels' products at t.
        grouped = kernels.reshape(16, conv.in_channels, conv.out_channels).permute(0, 2, 1)
        weight = grouped.reshape(16 * conv.out_channels, conv.in_channels, 1, 1)
        self.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = features.shape
        tile_rows, tile_cols = (height + 1) // 2, (width + 1) // 2
        # (B, H + 2, W + 2, C) zero-padded; an odd size gets one more zero row / column.
        padded = F.pad(
            features.permute(0, 2, 3, 1), (0, 0, 1, 1 + width % 2, 1, 1 + height % 2)
        )
        # Overlapping 4x4 tiles with stride 2, (B, rows, cols, C, 4, 4). Taken as an unfold
        # view: inductor then keeps the padded tensor (B, H, W, C)-contiguous, where building
        # the tiles from strided slices let it choose a layout that made the transform 8x slower.
        tiles = padded.unfold(1, 4, 2).unfold(2, 4, 2)
        row_sums = _tile_rows(*(tiles[..., k, :] for k in range(4)))
        transformed = [
            value for rows in row_sums for value in _tile_rows(*(rows[..., k] for k in range(4)))
        ]
        # (B, 16 C, rows, cols) in channels_last memory: the grouped convolution's input.
        stacked = torch.stack(transformed, dim=3).reshape(batch, tile_rows, tile_cols, -1)
        products = F.conv2d(stacked.permute(0, 3, 1, 2), self.weight, groups=16)
        products = products.permute(0, 2, 3, 1).reshape(
            batch, tile_rows, tile_cols, 4, 4, self.out_channels
        )
        first, second = _output_rows(*(products[:, :, :, k] for k in range(4)))
        output_rows = [
            torch.stack(_output_rows(*(rows[..., k, :] for k in range(4))), dim=3)
            for rows in (first, second)
        ]  # each (B, rows, cols, 2, out): the two columns of one output row of every tile
        output = torch.stack(output_rows, dim=2).reshape(
            batch, 2 * tile_rows, 2 * tile_cols, self.out_channels
        )[:, :height, :width]
        if self.bias is not None:
            output = output + self.bias
        return output.permute(0, 3, 1, 2)


def winograd_eligible(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def use_winograd(model: nn.Module) -> nn.Module:
    """Replace (in place) the convolutions of every ResidualBlock of `model` by Winograd ones.

    Only the residual blocks: in the FOMM generator they are two thirds of a frame's work
    (twelve 256-channel convolutions at 64x64 for vox-256), where Winograd pays. Elsewhere the
    convolutions are small, or (the dense-motion hourglass's deep levels) bound by reading their
    weights, which Winograd makes 16/9 larger: converting them too gained nothing."""
    for block in model.modules():
        if isinstance(block, ResidualBlock):
            for name in ("conv1", "conv2"):
                conv = getattr(block, name)
                if winograd_eligible(conv):
                    setattr(block, name, WinogradConv3x3(conv))
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
    if variant.winograd:
        use_winograd(prepared)
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


# CPU instruction sets with bfloat16 dot products, as torch reports them (private helpers of
# torch.cpu; where a torch lacks them the CPU is not second-guessed).
_CPU_BF16_CHECKS = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether `device` runs bfloat16 convolutions natively. Without it (a CPU with AVX2 only,
    say) oneDNN emulates them: measured 20 s a frame against 0.6 s for float32 for vox-256 at
    256 px on a 2-core AVX2 EPYC (docs/rendering-performance.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = [getattr(torch.cpu, name, None) for name in _CPU_BF16_CHECKS]
    if device.type != "cpu" or all(check is None for check in checks):
        return True
    return any(check() for check in checks if check is not None)


def bf16_slowdown(variant: RenderVariant, device: torch.device | str = "cpu") -> str | None:
    """Why `variant` would be slow on `device` (bfloat16 emulated there), or None."""
    if not variant.bf16 or native_bf16(device):
        return None
    return (
        f"bf16 rendering on {torch.device(device).type} without native bfloat16 (CPUs: "
        "AVX512-BF16 or AMX): its convolutions are emulated, about 30 times slower than "
        "float32; the float32 variants (fast, compiled) are the quick ones here"
    )


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
