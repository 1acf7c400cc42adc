"""Building blocks shared by the keypoint detector, the dense-motion network and the generator.

Attribute names (conv, norm, conv1, down_blocks, weight, ...) are part of the state-dict layout
of the FOMM reference checkpoints, so they must not be renamed.

Conventions: images are (B, C, H, W); coordinates are (x, y) in [-1, 1] with -1/+1 at the
centres of the border pixels; grids are (..., H, W, 2) as grid_sample takes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.jacobian import GuardCounter, guard_jacobians, guard_positions


def make_coordinate_grid(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """(H, W, 2) grid of (x, y) pixel-centre coordinates spanning [-1, 1] in each axis."""
    xs = torch.arange(width, dtype=dtype, device=device)
    ys = torch.arange(height, dtype=dtype, device=device)
    # Same arithmetic order as the reference (2 * (i / (n - 1)) - 1) for bit-equal grids.
    xs = 2 * (xs / (width - 1)) - 1
    ys = 2 * (ys / (height - 1)) - 1
    grid_x = xs.view(1, width).expand(height, width)
    grid_y = ys.view(height, 1).expand(height, width)
    return torch.stack([grid_x, grid_y], dim=-1)


def keypoints_to_gaussians(
    positions: torch.Tensor, height: int, width: int, variance: float
) -> torch.Tensor:
    """(..., K, 2) positions -> (..., K, H, W) unnormalised Gaussians exp(-|z - kp|^2 / 2var)."""
    grid = make_coordinate_grid(height, width, positions.dtype, positions.device)
    offsets = grid - positions[..., None, None, :]
    return torch.exp(-0.5 * (offsets**2).sum(-1) / variance)


def guarded_jacobians(jacobians: torch.Tensor, counter: GuardCounter) -> torch.Tensor:
    """(..., 2, 2) Jacobians made safe by kp_motion.jacobian's guard, gradient-friendly.

    The guard's repair (an SVD) is computed on detached values and only the corrected matrices
    are replaced: healthy ones keep their exact values and gradients, and the SVD never enters
    the backward pass (its gradient is infinite for equal singular values, e.g. the identity).
    `counter.jacobians` grows by the number of corrected matrices.
    """
    safe, _ = guard_jacobians(jacobians.detach())
    corrected = (safe != jacobians.detach()).flatten(-2).any(-1)
    counter.jacobians += int(corrected.sum())
    return torch.where(corrected[..., None, None], safe, jacobians)


def guarded_keypoints(
    positions: torch.Tensor, jacobians: torch.Tensor, counter: GuardCounter
) -> tuple[torch.Tensor, torch.Tensor]:
    """Guarded (..., K, 2) positions and (..., K, 2, 2) Jacobians (see guarded_jacobians)."""
    safe_positions, _ = guard_positions(positions.detach())
    corrected = (safe_positions != positions.detach()).any(-1)
    counter.positions += int(corrected.sum())
    positions = torch.where(corrected[..., None], safe_positions, positions)
    return positions, guarded_jacobians(jacobians, counter)


def float32_geometry(device: torch.device):
    """A context where autocast is off, for coordinate arithmetic (motions, flows).

    Under bf16 autocast, matmul and einsum would run in bfloat16, whose 8-bit mantissa rounds
    a coordinate in [-1, 1] by up to 2^-8: half a pixel at 256 px. Callers also pass float32
    inputs (autocast-off does not convert what is already bfloat16)."""
    return torch.autocast(device.type, enabled=False)


class SameBlock(nn.Module):
    """conv -> batch norm -> ReLU, same resolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_channels, affine=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(features)))


class DownBlock(nn.Module):
    """conv -> batch norm -> ReLU -> 2x2 average pooling (halves H and W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels, affine=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(features))), kernel_size=2)


class UpBlock(nn.Module):
    """Nearest-neighbour 2x upsampling -> conv -> batch norm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels, affine=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(features, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(upsampled)))


class ResidualBlock(nn.Module):
    """Pre-activation residual block: x + conv(relu(bn(conv(relu(bn(x))))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm2d(channels, affine=True)
        self.norm2 = nn.BatchNorm2d(channels, affine=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.conv1(F.relu(self.norm1(features)))
        return features + self.conv2(F.relu(self.norm2(hidden)))


def channels_at_level(block_expansion: int, max_features: int, level: int) -> int:
    """Channels at depth `level` of an encoder doubling from block_expansion up to a cap."""
    return min(max_features, block_expansion * 2**level)


class HourglassEncoder(nn.Module):
    """num_blocks DownBlocks; returns the input and every level's output (for skips)."""

    def __init__(
        self, block_expansion: int, in_channels: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        blocks = []
        for level in range(num_blocks):
            level_in = (
                in_channels
                if level == 0
                else channels_at_level(block_expansion, max_features, level)
            )
            level_out = channels_at_level(block_expansion, max_features, level + 1)
            blocks.append(DownBlock(level_in, level_out))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        levels = [inputs]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class HourglassDecoder(nn.Module):
    """UpBlocks from the deepest level back up, each followed by concatenating the skip."""

    def __init__(
        self, block_expansion: int, in_channels: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        blocks = []
        for level in reversed(range(num_blocks)):
            # The deepest block takes the encoder output alone; the others also take the skip
            # concatenated at the previous step, which has as many channels again.
            skip_factor = 1 if level == num_blocks - 1 else 2
            level_in = skip_factor * channels_at_level(block_expansion, max_features, level + 1)
            level_out = channels_at_level(block_expansion, max_features, level)
            blocks.append(UpBlock(level_in, level_out))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels = block_expansion + in_channels

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        skips = list(levels)
        features = skips.pop()
        for block in self.up_blocks:
            features = torch.cat([block(features), skips.pop()], dim=1)
        return features


class Hourglass(nn.Module):
    """U-Net style encoder/decoder; output has block_expansion + in_channels channels."""

    def __init__(
        self, block_expansion: int, in_channels: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_channels, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_channels, num_blocks, max_features)
        self.out_channels = self.decoder.out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(inputs))


def gaussian_kernel_1d(scale: float) -> tuple[torch.Tensor, int]:
    """Normalised 1D Gaussian for downscaling by `scale`: sigma = (1/scale - 1) / 2."""
    sigma = (1.0 / scale - 1.0) / 2.0
    half = int(round(sigma * 4))
    size = 2 * half + 1
    centre = (size - 1) / 2
    offsets = torch.arange(size, dtype=torch.float32) - centre
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel, half


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (depthwise, zero-padded) then nearest downsampling by `scale`.

    Blurring first removes the frequencies that nearest-neighbour subsampling would alias. The
    2D kernel is stored as the buffer `weight` (C, 1, k, k), as in the reference checkpoints.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        if not 0.0 < scale < 1.0:
            raise ValueError(f"AntiAliasDownsample needs a scale in (0, 1), got {scale}")
        kernel_1d, half = gaussian_kernel_1d(scale)
        kernel_2d = torch.outer(kernel_1d, kernel_1d)
        kernel_2d = kernel_2d / kernel_2d.sum()
        self.register_buffer("weight", kernel_2d.expand(channels, 1, -1, -1).contiguous())
        self.padding = half
        self.channels = channels
        self.scale = scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pad = self.padding
        blurred = F.conv2d(F.pad(images, (pad, pad, pad, pad)), self.weight, groups=self.channels)
        return F.interpolate(blurred, scale_factor=self.scale, mode="nearest")
