"""The detector + generator pair with its training objective, as one module (what DDP wraps).

One forward pass: detect keypoints on the source and driving frames, render the driving frame
from the source, and return the weighted loss terms. Putting the losses inside the module lets
DistributedDataParallel see every use of the detector (it runs three times: source, driving,
warped driving) within one forward.

The objective is FOMM's (pyramid L1, SSIM, optional VGG19 perceptual, equivariance of the
keypoints and their Jacobians) plus the mask balance the embedded model was trained with. Any
other term comes by name from losses.extra_losses (settings `losses.extra: {name: weight}`).
"""

from __future__ import annotations

import torch
from torch import nn

from kp_motion.training.losses import (
    LossInputs,
    Vgg19Features,
    equivariance_losses,
    extra_losses,
    image_pyramid,
    mask_balance,
    perceptual_loss,
    pyramid_l1,
    ssim_loss,
)
from kp_motion.training.settings import LossSettings
from kp_motion.training.transforms import AffineTpsWarp


class FommTrainingModel(nn.Module):
    """forward(source, driving, targets) -> ({loss name: weighted scalar}, generated).

    `generated` holds "prediction" (the rendered driving frames) and "kp_driving" (the driving
    keypoint positions), which the optional adversarial terms need. `targets` are the batch's
    other tensors, handed to the extra terms."""

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
        self.extra = extra_losses(losses.extra)  # checked here: an unknown name fails at once
        self.vgg = vgg if any(losses.perceptual_weights) else None
        if self.vgg is not None:
            self.vgg.requires_grad_(False)  # a fixed feature extractor, never trained

    def equivariance(
        self, driving: torch.Tensor, kp_driving: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The weighted equivariance terms of the driving frames under a random warp."""
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
        targets: dict[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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
        losses.update(self.equivariance(driving, kp_driving))
        if settings.mask_balance > 0:
            losses["mask_balance"] = settings.mask_balance * mask_balance(
                generated["mask"], settings.mask_balance_floor
            )
        if self.extra:
            inputs = LossInputs(source, driving, kp_source, kp_driving, generated,
                                targets or {}, self.estimate_jacobian)  # fmt: skip
            for name, (term, weight) in self.extra.items():
                losses[name] = weight * term(inputs)
        return losses, {"prediction": prediction, "kp_driving": kp_driving["value"]}
