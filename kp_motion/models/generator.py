"""Occlusion-aware generator: warp the source's features by the dense motion, then decode.

Encoder (a 7x7 block then down blocks) -> features of the source; dense motion (from source and
driving keypoints) -> backward flow and occlusion map; the features are resampled by the flow,
multiplied by the occlusion map (so occluded regions must be inpainted), refined by residual
blocks and decoded by up blocks and a 7x7 convolution with a sigmoid into an image in [0, 1].

With `warped_skips` (not in the reference FOMM), the encoder features of every level are warped
and masked the same way and added to the decoder features of the same size. The decoder then
sees the aligned source at full resolution instead of rebuilding it from the bottleneck, which
is what makes a small model's renderings sharp early in training.

With `output_blend` (not in FOMM either), the output is the source image warped by the flow,
weighted by the occlusion map resized to full resolution, plus the decoded image weighted by
one minus it: the decoder paints only what the warp cannot show.

The source-only part (`encode_source`) and the driving part (`render`) are separate so that a
fixed source is encoded once; `forward` simply chains them, so cached and uncached outputs come
from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.jacobian import GuardCounter
from kp_motion.models.blocks import DownBlock, ResidualBlock, SameBlock, UpBlock, channels_at_level
from kp_motion.models.dense_motion import DenseMotionNetwork, DenseMotionSource
from kp_motion.models.model_config import ModelConfig

FIRST_KERNEL = 7
FINAL_KERNEL = 7


@dataclass
class SourceCache:
    """Everything the generator needs from a fixed source image (see encode_source)."""

    image: torch.Tensor  # (B, C, H, W) the source frame
    features: torch.Tensor  # (B, F, H / 2^n, W / 2^n) encoder output
    skips: list[torch.Tensor]  # encoder features of levels 0..n-1 (empty without warped skips)
    dense_motion: DenseMotionSource


def resize_flow(flow: torch.Tensor, height: int, width: int, align_corners: bool) -> torch.Tensor:
    """(B, h, w, 2) flow -> (B, height, width, 2) by bilinear interpolation (no-op if equal)."""
    if flow.shape[1:3] == (height, width):
        return flow
    channels_first = flow.permute(0, 3, 1, 2)
    resized = F.interpolate(
        channels_first, size=(height, width), mode="bilinear", align_corners=align_corners
    )
    return resized.permute(0, 2, 3, 1)


class OcclusionAwareGenerator(nn.Module):
    """Submodules: dense_motion_network, first, down_blocks, up_blocks, bottleneck, final."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        params = config.generator
        # Counts the keypoints whose Jacobian/position the guard had to correct (for reports).
        self.guard = GuardCounter()
        self.align_corners = config.warp_align_corners
        self.warped_skips = params.warped_skips
        self.output_blend = params.output_blend
        self.resize_align_corners = config.resize_align_corners
        self.num_channels = config.num_channels
        self.dense_motion_network = DenseMotionNetwork(config, guard=self.guard)
        self.first = SameBlock(config.num_channels, params.block_expansion, FIRST_KERNEL)

        def width(level: int) -> int:
            return channels_at_level(params.block_expansion, params.max_features, level)

        levels = params.num_down_blocks
        self.down_blocks = nn.ModuleList(
            DownBlock(width(level), width(level + 1)) for level in range(levels)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock(width(levels - step), width(levels - step - 1)) for step in range(levels)
        )
        self.bottleneck = nn.Sequential()
        for index in range(params.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{index}", ResidualBlock(width(levels)))
        self.final = nn.Conv2d(
            params.block_expansion, config.num_channels, FINAL_KERNEL, padding=FINAL_KERNEL // 2
        )

    def warp(self, inputs: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Backward-warp (B, C, H, W) inputs by a (B, h, w, 2) flow resized to H x W.

        Inputs of batch 1 are shared by every flow (one cached source, many driving frames)."""
        if inputs.shape[0] == 1 and deformation.shape[0] > 1:
            inputs = inputs.expand(deformation.shape[0], -1, -1, -1)
        flow = resize_flow(deformation, *inputs.shape[-2:], self.resize_align_corners)
        # Sampled in the flow's float32 (see blocks.float32_geometry), whatever the features'.
        return F.grid_sample(
            inputs.to(flow.dtype),
            flow,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=self.align_corners,
        )

    def encode_source(
        self, source_image: torch.Tensor, kp_source: dict[str, torch.Tensor]
    ) -> SourceCache:
        """The source-only work: encoder features and the dense-motion source inputs."""
        if source_image.dim() != 4 or source_image.shape[1] != self.num_channels:
            raise ValueError(
                f"generator expects (B, {self.num_channels}, H, W) source images, "
                f"got {tuple(source_image.shape)}"
            )
        features = self.first(source_image)
        skips = []
        for block in self.down_blocks:
            if self.warped_skips:
                skips.append(features)
            features = block(features)
        return SourceCache(
            image=source_image,
            features=features,
            skips=skips,
            dense_motion=self.dense_motion_network.prepare_source(source_image, kp_source),
        )

    def render(
        self, cache: SourceCache, kp_driving: dict[str, torch.Tensor], full_outputs: bool = True
    ) -> dict[str, torch.Tensor]:
        """The driving-dependent work. full_outputs=False skips the visual-only outputs
        ('deformed', the source warped at full resolution, and 'sparse_deformed').
        A cache of batch 1 can be rendered with a batch of driving keypoints."""
        motion = self.dense_motion_network.predict(cache.dense_motion, kp_driving)
        occlusion = motion.get("occlusion_map")
        outputs = {"mask": motion["mask"], "deformation": motion["deformation"]}
        if occlusion is not None:
            outputs["occlusion_map"] = occlusion
        features = self.warp_and_mask(cache.features, motion["deformation"], occlusion)
        deformed = None
        if full_outputs or self.output_blend:
            deformed = self.warp(cache.image, motion["deformation"])
        if full_outputs:
            outputs["sparse_deformed"] = motion["sparse_deformed"]
            outputs["deformed"] = deformed
        features = self.bottleneck(features)
        for block, skip in zip(self.up_blocks, reversed(cache.skips), strict=False):
            features = block(features) + self.warp_and_mask(skip, motion["deformation"], occlusion)
        for block in self.up_blocks[len(cache.skips) :]:
            features = block(features)
        decoded = torch.sigmoid(self.final(features))
        if self.output_blend:
            visible = self.resize_map(occlusion, decoded.shape[-2:])
            decoded = visible * deformed + (1.0 - visible) * decoded
        outputs["prediction"] = decoded
        return outputs

    def resize_map(self, occlusion: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The (B, 1, h, w) occlusion map bilinearly resized to `size` (no-op if equal)."""
        if occlusion.shape[-2:] == size:
            return occlusion
        return F.interpolate(
            occlusion, size=size, mode="bilinear", align_corners=self.resize_align_corners
        )

    def warp_and_mask(
        self, features: torch.Tensor, deformation: torch.Tensor, occlusion: torch.Tensor | None
    ) -> torch.Tensor:
        """Source features warped by the flow and multiplied by the occlusion map (resized)."""
        warped = self.warp(features, deformation)
        if occlusion is None:
            return warped
        return warped * self.resize_map(occlusion, warped.shape[-2:])

    def forward(
        self,
        source_image: torch.Tensor,
        kp_source: dict[str, torch.Tensor],
        kp_driving: dict[str, torch.Tensor],
        full_outputs: bool = True,
    ) -> dict[str, torch.Tensor]:
        return self.render(self.encode_source(source_image, kp_source), kp_driving, full_outputs)
