"""The detector + generator pair with its training objective, as one module (what DDP wraps).

One forward pass: detect keypoints on the source and driving frames, render the driving frame
from the source, and return the weighted loss terms. Putting the losses inside the module lets
DistributedDataParallel see every use of the detector (it runs three times: source, driving,
warped driving) within one forward.
"""

from __future__ import annotations

import torch
from torch import nn

from kp_motion.training.losses import (
    Vgg19Features,
    background_mask,
    equivariance_losses,
    heatmap_spread,
    image_pyramid,
    keypoint_separation,
    mask_balance,
    part_following,
    perceptual_loss,
    pyramid_l1,
    ssim_loss,
)
from kp_motion.training.settings import LossSettings
from kp_motion.training.transforms import AffineTpsWarp


class FommTrainingModel(nn.Module):
    """forward(source, driving) -> ({loss name: weighted scalar}, generated).

    `generated` holds "prediction" (the rendered driving frames) and "kp_driving" (the driving
    keypoint positions), which the optional adversarial terms need."""

    def __init__(
        self,
        kp_detector: nn.Module,
        generator: nn.Module,
        losses: LossSettings,
        estimate_jacobian: bool,
        vgg: Vgg19Features | None = None,
    ) -> None:
        super().__init__()
        if any(losses.perceptual_weights) and vgg is None:
            raise ValueError(
                "the perceptual loss has non-zero weights but no VGG19 weights were given "
                "(--vgg19-weights FILE, or set losses.perceptual_weights to zeros)"
            )
        self.kp_detector = kp_detector
        self.generator = generator
        self.settings = losses
        self.estimate_jacobian = estimate_jacobian
        self.vgg = vgg if any(losses.perceptual_weights) else None
        if self.vgg is not None:
            self.vgg.requires_grad_(False)  # a fixed feature extractor, never trained

    def _equivariance(
        self, driving: torch.Tensor, kp_driving: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        settings = self.settings
        use_jacobian = self.estimate_jacobian and settings.equivariance_jacobian > 0
        if settings.equivariance_value <= 0 and not use_jacobian:
            return {}
        # Drawn from the global CPU generator: seeded per process, saved in checkpoints.
        warp = AffineTpsWarp.random(
            driving.shape[0],
            settings.warp_sigma_affine,
            settings.warp_sigma_tps,
            settings.warp_tps_points,
            dtype=driving.dtype,
            device=driving.device,
        )
        terms = equivariance_losses(self.kp_detector, driving, kp_driving, warp, use_jacobian)
        weighted = {"equivariance_value": settings.equivariance_value * terms["equivariance_value"]}
        if use_jacobian:
            weighted["equivariance_jacobian"] = (
                settings.equivariance_jacobian * terms["equivariance_jacobian"]
            )
        return weighted

    def forward(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        parts: dict[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """`parts` ("parts_source", "parts_driving", "parts_valid" of a FramesDataset batch) is
        needed, and only used, when settings.part_following or settings.background_mask is on."""
        settings = self.settings
        kp_source = self.kp_detector(source)
        kp_driving = self.kp_detector(driving)
        generated = self.generator(source, kp_source, kp_driving, full_outputs=False)
        prediction = generated["prediction"]
        losses: dict[str, torch.Tensor] = {}
        predicted_pyramid = image_pyramid(prediction, settings.pyramid_scales)
        target_pyramid = image_pyramid(driving, settings.pyramid_scales)
        if settings.reconstruction_l1 > 0:
            losses["reconstruction_l1"] = settings.reconstruction_l1 * pyramid_l1(
                predicted_pyramid, target_pyramid
            )
        if settings.ssim > 0:
            losses["ssim"] = settings.ssim * ssim_loss(prediction, driving)
        if self.vgg is not None:
            losses["perceptual"] = perceptual_loss(
                self.vgg, predicted_pyramid, target_pyramid, settings.perceptual_weights
            )
        losses.update(self._equivariance(driving, kp_driving))
        if settings.keypoint_concentration > 0:
            spreads = [heatmap_spread(kp["heatmap"], kp["value"]) for kp in (kp_source, kp_driving)]
            losses["keypoint_concentration"] = settings.keypoint_concentration * (
                0.5 * (spreads[0] + spreads[1])
            )
        if settings.keypoint_separation > 0:
            separations = [keypoint_separation(kp["value"], settings.keypoint_separation_sigma)
                           for kp in (kp_source, kp_driving)]  # fmt: skip
            losses["keypoint_separation"] = settings.keypoint_separation * (
                0.5 * (separations[0] + separations[1])
            )
        if settings.mask_balance > 0:
            losses["mask_balance"] = settings.mask_balance * mask_balance(
                generated["mask"], settings.mask_balance_floor
            )
        if settings.needs_part_poses and parts is None:
            raise ValueError(
                "losses.part_following or losses.background_mask is on but the batch has no "
                "part poses"
            )
        if settings.background_mask > 0:
            losses["background_mask"] = settings.background_mask * background_mask(
                generated["mask"], parts["parts_source"], parts["parts_driving"],
                parts["parts_valid"], settings.background_mask_margin,
            )  # fmt: skip
        if settings.part_following > 0:
            with_jacobian = self.estimate_jacobian and settings.part_following_jacobian > 0
            terms = part_following(
                kp_source, kp_driving, parts["parts_source"], parts["parts_driving"],
                parts["parts_valid"], with_jacobian, settings.part_following_match,
            )  # fmt: skip
            losses["part_following"] = settings.part_following * terms["part_following"]
            if with_jacobian:
                losses["part_following_jacobian"] = (
                    settings.part_following_jacobian * terms["part_following_jacobian"]
                )
        return losses, {"prediction": prediction, "kp_driving": kp_driving["value"]}
