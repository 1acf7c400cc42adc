"""FOMM keypoint detector: frame -> K keypoints, each a position in [-1, 1] and a 2x2 Jacobian.

An hourglass over the (anti-aliased, downscaled) frame predicts one heatmap per keypoint. A
softmax with a low temperature turns each into a peaked distribution over pixels, and the
keypoint is its expected (x, y) position. A second head predicts four Jacobian entries per
pixel; each keypoint's Jacobian is that map averaged under its own heatmap. The Jacobian head
starts at zero weights and an identity bias, so untrained keypoints carry no local deformation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.models.blocks import AntiAliasDownsample, Hourglass, make_coordinate_grid
from kp_motion.models.model_config import ModelConfig

HEAD_KERNEL = 7
IDENTITY_ENTRIES = (1.0, 0.0, 0.0, 1.0)


class KeypointDetector(nn.Module):
    """Submodules: predictor (hourglass), kp (heatmaps), jacobian (optional), down (optional)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        params = config.kp_detector
        self.num_kp = config.num_kp
        self.num_channels = config.num_channels
        self.temperature = params.temperature
        self.scale_factor = params.scale_factor
        self.predictor = Hourglass(
            params.block_expansion, config.num_channels, params.num_blocks, params.max_features
        )
        self.kp = nn.Conv2d(
            self.predictor.out_channels, config.num_kp, HEAD_KERNEL, padding=params.pad
        )
        if config.estimate_jacobian:
            self.num_jacobian_maps = 1 if params.single_jacobian_map else config.num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_channels,
                4 * self.num_jacobian_maps,
                HEAD_KERNEL,
                padding=params.pad,
            )
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor(IDENTITY_ENTRIES * self.num_jacobian_maps))
        else:
            self.num_jacobian_maps = 0
            self.jacobian = None
        if self.scale_factor != 1:
            self.down = AntiAliasDownsample(config.num_channels, self.scale_factor)

    def heatmaps(self, features: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) softmax-normalised heatmaps (each sums to 1) from hourglass features."""
        logits = self.kp(features)
        batch, num_kp, height, width = logits.shape
        flat = F.softmax(logits.view(batch, num_kp, -1) / self.temperature, dim=2)
        return flat.view(batch, num_kp, height, width)

    @staticmethod
    def expected_positions(heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) distributions -> (B, K, 2) expected (x, y) in [-1, 1]."""
        height, width = heatmaps.shape[-2:]
        grid = make_coordinate_grid(height, width, heatmaps.dtype, heatmaps.device)
        return (heatmaps.unsqueeze(-1) * grid).sum(dim=(2, 3))

    def local_jacobians(self, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, K, 2, 2): the Jacobian map averaged under each keypoint's heatmap."""
        batch, num_kp, height, width = heatmaps.shape
        if self.jacobian is None:
            identity = torch.eye(2, dtype=heatmaps.dtype, device=heatmaps.device)
            return identity.expand(batch, num_kp, 2, 2).clone()
        maps = self.jacobian(features).reshape(batch, self.num_jacobian_maps, 4, height, width)
        # With a single map, broadcasting shares it between all K heatmaps.
        weighted = heatmaps.unsqueeze(2) * maps
        return weighted.view(batch, num_kp, 4, -1).sum(dim=-1).view(batch, num_kp, 2, 2)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, C, H, W) frames in [0, 1] -> {"value": (B,K,2), "jacobian": (B,K,2,2), "heatmap"}."""
        if frames.dim() != 4 or frames.shape[1] != self.num_channels:
            raise ValueError(
                f"keypoint detector expects (B, {self.num_channels}, H, W) frames, "
                f"got {tuple(frames.shape)}"
            )
        if self.scale_factor != 1:
            frames = self.down(frames)
        features = self.predictor(frames)
        heatmaps = self.heatmaps(features)
        return {
            "value": self.expected_positions(heatmaps),
            "jacobian": self.local_jacobians(features, heatmaps),
            "heatmap": heatmaps,
        }
