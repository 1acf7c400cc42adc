"""A keypoint-conditioned multi-scale patch discriminator, for FOMM's optional GAN loss.

Only training uses it: the detector and generator never call it, and project checkpoints of
the model (model.yaml + weights.safetensors) do not contain it; a training checkpoint keeps its
weights beside the optimiser states (kp_motion.training.state).

Each scale's discriminator sees a frame (resized by its scale) and, when conditioned on
keypoints, the Gaussian heatmaps of the driving keypoints stacked on it, so it judges whether
the image is a plausible frame *for those keypoints*. A stack of conv -> instance norm ->
leaky ReLU -> 2x2 average pooling blocks ends in a 1x1 conv giving one realness score per
patch. Instance norm (not batch norm) keeps real and fake samples of one batch independent, so
they can pass through in a single forward (what DistributedDataParallel wants).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.models.blocks import channels_at_level, keypoints_to_gaussians

KERNEL = 4
LEAK = 0.2


@dataclass(frozen=True)
class DiscriminatorSettings:
    """Shape of the discriminator (kp_motion.training.settings reads it from train_fomm.yaml)."""

    scales: tuple[float, ...]  # one discriminator per image scale (FOMM: [1])
    block_expansion: int  # channels of the first block; doubled per block up to max_features
    max_features: int
    num_blocks: int  # each halves the resolution: 64 px frames with 4 blocks give 4x4 patches
    use_kp: bool  # condition on the keypoint heatmaps
    kp_variance: float  # variance of those heatmaps, in [-1, 1] units (FOMM: 0.01)

    def __post_init__(self) -> None:
        if not self.scales or any(not 0 < scale <= 1 for scale in self.scales):
            raise ValueError(f"discriminator scales must be in (0, 1], got {self.scales}")
        if self.block_expansion < 1 or self.max_features < 1 or self.num_blocks < 1:
            raise ValueError("discriminator widths and num_blocks must be >= 1")
        if self.kp_variance <= 0:
            raise ValueError("discriminator kp_variance must be > 0")


class DiscriminatorBlock(nn.Module):
    """conv 4x4 -> instance norm (optional) -> leaky ReLU -> 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, normalize: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, KERNEL)
        self.norm = nn.InstanceNorm2d(out_channels, affine=True) if normalize else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Pad so that the 4x4 conv keeps the size; pooling then halves it exactly.
        features = self.conv(F.pad(features, (1, 2, 1, 2)))
        if self.norm is not None:
            features = self.norm(features)
        return F.avg_pool2d(F.leaky_relu(features, LEAK), 2)


class PatchDiscriminator(nn.Module):
    """(frames, keypoint heatmaps) -> (features of every block, patch scores)."""

    def __init__(self, in_channels: int, settings: DiscriminatorSettings) -> None:
        super().__init__()
        blocks = []
        channels = in_channels
        for level in range(settings.num_blocks):
            width = channels_at_level(settings.block_expansion, settings.max_features, level)
            # No norm on the first block: it would wash out the input's colour statistics.
            blocks.append(DiscriminatorBlock(channels, width, normalize=level > 0))
            channels = width
        self.blocks = nn.ModuleList(blocks)
        self.score = nn.Conv2d(channels, 1, 1)

    def forward(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = []
        for block in self.blocks:
            inputs = block(inputs)
            features.append(inputs)
        return features, self.score(inputs)


@dataclass
class DiscriminatorOutput:
    """Per scale: the feature maps of every block, and the patch scores."""

    features: dict[float, list[torch.Tensor]]
    scores: dict[float, torch.Tensor]


class MultiScaleDiscriminator(nn.Module):
    """One PatchDiscriminator per scale: forward(pyramid, kp_positions) -> DiscriminatorOutput.

    `pyramid` maps each of the settings' scales to the frames (B, C, H, W) resized by it (the
    training losses' image pyramid); kp_positions (B, K, 2) are used when use_kp is set.
    """

    def __init__(self, num_channels: int, num_kp: int, settings: DiscriminatorSettings) -> None:
        super().__init__()
        self.settings = settings
        in_channels = num_channels + (num_kp if settings.use_kp else 0)
        # ModuleDict keys cannot contain dots: 0.5 -> "scale_0_5".
        self.discriminators = nn.ModuleDict(
            {
                scale_key(scale): PatchDiscriminator(in_channels, settings)
                for scale in settings.scales
            }
        )

    def forward(
        self, pyramid: dict[float, torch.Tensor], kp_positions: torch.Tensor
    ) -> DiscriminatorOutput:
        features, scores = {}, {}
        for scale in self.settings.scales:
            frames = pyramid[scale]
            if self.settings.use_kp:
                height, width = frames.shape[-2:]
                # The condition is a given, never something the discriminator trains through.
                heatmaps = keypoints_to_gaussians(
                    kp_positions.detach(), height, width, self.settings.kp_variance
                )
                frames = torch.cat([frames, heatmaps], dim=1)
            features[scale], scores[scale] = self.discriminators[scale_key(scale)](frames)
        return DiscriminatorOutput(features, scores)


def scale_key(scale: float) -> str:
    return "scale_" + f"{scale:g}".replace(".", "_")
