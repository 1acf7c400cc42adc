"""Dense motion: from K sparse first-order motions to one dense backward flow + occlusion map.

For each keypoint k the first-order (local affine) approximation of the backward motion, from a
driving-frame coordinate z to the source frame, is

    T_k(z) = kp_S,k + J_S,k J_D,k^-1 (z - kp_D,k),

plus a background motion T_0(z) = z. An hourglass looks at, for every motion, the difference of
the driving and source Gaussian heatmaps and the source deformed by that motion, and predicts
softmax masks over the K + 1 motions; the dense flow is the mask-weighted sum of the motions.
It also predicts an occlusion map in [0, 1] (where the warped source can be trusted).

Everything that depends only on the source (its downscaled image and Gaussian heatmaps) is
computed by `prepare_source`, so a fixed source pays for it once (see animator.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.jacobian import GuardCounter
from kp_motion.models.blocks import (
    AntiAliasDownsample,
    Hourglass,
    float32_geometry,
    guarded_keypoints,
    keypoints_to_gaussians,
    make_coordinate_grid,
)
from kp_motion.models.model_config import ModelConfig

MASK_KERNEL = 7


@dataclass
class DenseMotionSource:
    """What dense motion needs from the source, computed once per source."""

    image: torch.Tensor  # (B, C, h, w) source at the dense-motion resolution
    positions: torch.Tensor  # (B, K, 2) guarded source keypoints
    jacobians: torch.Tensor  # (B, K, 2, 2) guarded source Jacobians
    gaussians: torch.Tensor  # (B, K, h, w) source keypoint heatmaps
    grid: torch.Tensor  # (h, w, 2) identity coordinate grid


def inverse_2x2(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) inverses in closed form (adjugate / determinant): element-wise work that
    exports to ONNX, which has no matrix inverse, and costs less than a batched LU."""
    a, b = matrices[..., 0, 0], matrices[..., 0, 1]
    c, d = matrices[..., 1, 0], matrices[..., 1, 1]
    determinant = a * d - b * c
    adjugate = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return adjugate / determinant[..., None, None]


class DenseMotionNetwork(nn.Module):
    """Submodules: hourglass, mask, occlusion (optional), down (optional)."""

    def __init__(self, config: ModelConfig, guard: GuardCounter | None = None) -> None:
        super().__init__()
        params = config.dense_motion
        self.num_kp = config.num_kp
        self.kp_variance = params.kp_variance
        self.scale_factor = params.scale_factor
        self.align_corners = config.warp_align_corners
        self.guard = guard if guard is not None else GuardCounter()
        # False only where the caller has guarded the keypoints itself: the ONNX export, whose
        # graph cannot hold the guard's SVD (see onnx_export.py).
        self.guard_keypoints = True
        # Per motion (background + K): one heatmap-difference channel + the deformed source.
        in_channels = (config.num_kp + 1) * (config.num_channels + 1)
        self.hourglass = Hourglass(
            params.block_expansion, in_channels, params.num_blocks, params.max_features
        )
        out_channels = self.hourglass.out_channels
        padding = MASK_KERNEL // 2
        self.mask = nn.Conv2d(out_channels, config.num_kp + 1, MASK_KERNEL, padding=padding)
        if config.generator.estimate_occlusion_map:
            self.occlusion = nn.Conv2d(out_channels, 1, MASK_KERNEL, padding=padding)
        else:
            self.occlusion = None
        if self.scale_factor != 1:
            self.down = AntiAliasDownsample(config.num_channels, self.scale_factor)

    def prepare_source(
        self, source_image: torch.Tensor, kp_source: dict[str, torch.Tensor]
    ) -> DenseMotionSource:
        image = self.down(source_image) if self.scale_factor != 1 else source_image
        height, width = image.shape[-2:]
        positions, jacobians = self.guarded(kp_source)
        return DenseMotionSource(
            image=image,
            positions=positions,
            jacobians=jacobians,
            gaussians=keypoints_to_gaussians(positions, height, width, self.kp_variance),
            grid=make_coordinate_grid(height, width, image.dtype, image.device),
        )

    def guarded(self, kp: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions, Jacobians) made safe to invert by the Jacobian guard."""
        if not self.guard_keypoints:
            return kp["value"], kp["jacobian"]
        return guarded_keypoints(kp["value"], kp["jacobian"], self.guard)

    def sparse_motions(
        self, source: DenseMotionSource, positions: torch.Tensor, jacobians: torch.Tensor
    ) -> torch.Tensor:
        """(B, K+1, h, w, 2): the background identity then each keypoint's T_k(z)."""
        batch = positions.shape[0]
        with float32_geometry(positions.device):
            positions, jacobians = positions.float(), jacobians.float()
            # J_D was guarded, so its inverse exists and is bounded.
            affine = source.jacobians.float() @ inverse_2x2(jacobians)
            offsets = source.grid - positions[:, :, None, None, :]  # z - kp_D, (B, K, h, w, 2)
            moved = torch.einsum("bkij,bkhwj->bkhwi", affine, offsets)
            keypoint_motions = moved + source.positions.float()[:, :, None, None, :]
        background = source.grid.expand(batch, 1, *source.grid.shape)
        return torch.cat([background, keypoint_motions], dim=1)

    def deformed_sources(self, source: DenseMotionSource, motions: torch.Tensor) -> torch.Tensor:
        """(B, K+1, C, h, w): the source warped by each of the K + 1 motions."""
        batch, num_motions, height, width, _ = motions.shape
        channels = source.image.shape[1]
        # The image in the motions' float32 (it is bfloat16 after a bf16 autocast downsampling).
        image = source.image.to(motions.dtype)
        repeated = image.unsqueeze(1).expand(batch, num_motions, channels, height, width)
        warped = F.grid_sample(
            repeated.reshape(batch * num_motions, channels, height, width),
            motions.reshape(batch * num_motions, height, width, 2),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=self.align_corners,
        )
        return warped.view(batch, num_motions, channels, height, width)

    def heatmap_differences(
        self, source: DenseMotionSource, positions: torch.Tensor
    ) -> torch.Tensor:
        """(B, K+1, 1, h, w): driving minus source Gaussians, a zero map for the background."""
        height, width = source.gaussians.shape[-2:]
        driving = keypoints_to_gaussians(positions, height, width, self.kp_variance)
        difference = driving - source.gaussians
        background = torch.zeros_like(difference[:, :1])
        return torch.cat([background, difference], dim=1).unsqueeze(2)

    def predict(
        self, source: DenseMotionSource, kp_driving: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The driving-dependent part: masks, dense flow, occlusion map."""
        positions, jacobians = self.guarded(kp_driving)
        motions = self.sparse_motions(source, positions, jacobians)
        deformed = self.deformed_sources(source, motions)
        inputs = torch.cat([self.heatmap_differences(source, positions), deformed], dim=2)
        batch, _, _, height, width = inputs.shape
        features = self.hourglass(inputs.view(batch, -1, height, width))
        masks = F.softmax(self.mask(features), dim=1)  # (B, K+1, h, w)
        with float32_geometry(masks.device):
            deformation = torch.einsum("bkhw,bkhwc->bhwc", masks.float(), motions)
        outputs = {"sparse_deformed": deformed, "mask": masks, "deformation": deformation}
        if self.occlusion is not None:
            outputs["occlusion_map"] = torch.sigmoid(self.occlusion(features))
        return outputs

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: dict[str, torch.Tensor],
        kp_source: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        return self.predict(self.prepare_source(source_image, kp_source), kp_driving)
