"""FOMM training losses: multi-scale reconstruction (L1 + SSIM), VGG19 perceptual, equivariance,
the optional adversarial terms (LSGAN + discriminator feature matching), the mask balance the
embedded model was trained with, and a registry of extra terms that plug in by name.

The default objective needs no pretrained weights: L1 over an anti-aliased image pyramid plus
1 - SSIM at full resolution (SSIM from kp_motion.evaluation.metrics, the one implementation in
the project). The perceptual loss of the FOMM paper needs ImageNet VGG19 weights, which cannot
be bundled: the user gives a state-dict file (torchvision's vgg19 layout) and the layers are
built here with matching names.

Equivariance (FOMM paper, sec. 3.3): warp the driving frame with a random smooth warp T, detect
keypoints on the warped frame and map them back with T; they should land on the keypoints of
the original frame, and the Jacobians should compose: J_driving ~ dT(kp_warped) J_warped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.evaluation.metrics import ssim
from kp_motion.jacobian import guard_jacobians
from kp_motion.models.discriminator import DiscriminatorOutput
from kp_motion.state_dicts import compare_state_dict
from kp_motion.training.transforms import AffineTpsWarp

# --------------------------------------------------------------------------- reconstruction


def image_pyramid(images: torch.Tensor, scales: Sequence[float]) -> dict[float, torch.Tensor]:
    """{scale: images resized by `scale`} with anti-aliasing (low-pass before subsampling)."""
    height, width = images.shape[-2:]
    pyramid = {}
    for scale in scales:
        if not 0 < scale <= 1:
            raise ValueError(f"pyramid scales must be in (0, 1], got {scale}")
        if scale == 1:
            pyramid[scale] = images
            continue
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        pyramid[scale] = F.interpolate(
            images, size=size, mode="bilinear", align_corners=False, antialias=True
        )
    return pyramid


def pyramid_l1(
    prediction: dict[float, torch.Tensor], target: dict[float, torch.Tensor]
) -> torch.Tensor:
    """Sum over scales of the mean absolute error (each scale weighs the same)."""
    terms = [(prediction[scale] - target[scale]).abs().mean() for scale in prediction]
    return torch.stack(terms).sum()


def ssim_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM: 0 for identical images."""
    return 1.0 - ssim(prediction, target).mean()


# --------------------------------------------------------------------------- VGG19 perceptual

# torchvision's vgg19 ("configuration E"): numbers are 3x3 conv widths, "M" a 2x2 max-pool. With
# a ReLU after every conv, the modules of `features` are numbered 0..36 in this order.
_VGG19_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip
# Indices in `features` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (the FOMM paper's layers).
VGG19_TAPS = (1, 6, 11, 20, 29)
# Four max-pools come before relu5_1: smaller images would vanish.
VGG19_MIN_SIZE = 16
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=False))
            channels = int(item)
    return nn.Sequential(*layers)


class Vgg19Features(nn.Module):
    """VGG19 conv layers named like torchvision (`features.N.weight`), returning 5 ReLU taps.

    Input: (B, 3, H, W) RGB in [0, 1]; ImageNet normalisation happens inside.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg19_features()
        # Not part of the state dict: the weights file holds only the conv layers.
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if min(images.shape[-2:]) < VGG19_MIN_SIZE:
            raise ValueError(
                f"VGG19 features need images of at least {VGG19_MIN_SIZE} px, "
                f"got {tuple(images.shape[-2:])}"
            )
        hidden = (images - self.mean) / self.std
        taps = []
        for index, layer in enumerate(self.features[: VGG19_TAPS[-1] + 1]):
            hidden = layer(hidden)
            if index in VGG19_TAPS:
                taps.append(hidden)
        return taps


def _vgg19_feature_state(state: dict, source: Path) -> dict[str, torch.Tensor]:
    """Accept a whole torchvision vgg19 state dict or just its `features` part."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict, got {type(state).__name__}")
    if any(key.startswith("features.") for key in state):
        # The classifier (fully connected layers) is not used by the perceptual loss.
        unexpected = sorted(
            k for k in state if not k.startswith("features.") and not k.startswith("classifier.")
        )
        if unexpected:
            listed = ", ".join(unexpected)
            raise ValueError(f"{source}: unexpected keys in the VGG19 file: {listed}")
        return {k: v for k, v in state.items() if k.startswith("features.")}
    return {f"features.{k}": v for k, v in state.items()}


def load_vgg19(path: str | Path, device: torch.device | str = "cpu") -> Vgg19Features:
    """Frozen VGG19 features from a torchvision-layout state-dict file (strict key check)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not a weights file"
        raise ValueError(f"{path}: not a loadable state dict ({error})") from None
    state = _vgg19_feature_state(state, path)
    model = Vgg19Features()
    expected = model.state_dict()
    diff = compare_state_dict(expected, state)
    wrong_shape = [f"{key} {got} != {want}" for key, got, want in diff.mismatched]
    if diff:
        problems = []
        if diff.missing:
            problems.append(f"missing keys: {', '.join(diff.missing)}")
        if diff.unexpected:
            problems.append(f"unexpected keys: {', '.join(diff.unexpected)}")
        if wrong_shape:
            problems.append(f"wrong shapes: {', '.join(wrong_shape)}")
        raise ValueError(f"{path}: not a torchvision VGG19 state dict ({'; '.join(problems)})")
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)


def perceptual_loss(
    vgg: Vgg19Features,
    prediction: dict[float, torch.Tensor],
    target: dict[float, torch.Tensor],
    layer_weights: Sequence[float],
) -> torch.Tensor:
    """Sum over pyramid scales (of >= VGG19_MIN_SIZE px) and VGG taps of weighted mean |diff|."""
    if len(layer_weights) != len(VGG19_TAPS):
        raise ValueError(
            f"perceptual loss needs {len(VGG19_TAPS)} layer weights, got {len(layer_weights)}"
        )
    terms = []
    for scale, predicted in prediction.items():
        if min(predicted.shape[-2:]) < VGG19_MIN_SIZE:
            continue
        predicted_features = vgg(predicted)
        with torch.no_grad():
            target_features = vgg(target[scale])
        for weight, got, wanted in zip(
            layer_weights, predicted_features, target_features, strict=True
        ):
            if weight:
                terms.append(weight * (got - wanted).abs().mean())
    if not terms:
        raise ValueError(
            f"no pyramid scale is large enough ({VGG19_MIN_SIZE} px) for the perceptual loss"
        )
    return torch.stack(terms).sum()


# --------------------------------------------------------------------------- adversarial
# Least-squares GAN (Mao et al.), as FOMM uses: the discriminator regresses real patches to 1
# and generated ones to 0; the generator pulls its patches' scores to 1.


def discriminator_lsgan_loss(
    real: DiscriminatorOutput, generated: DiscriminatorOutput
) -> torch.Tensor:
    """Sum over scales of mean (1 - D(real))^2 + D(generated)^2."""
    terms = [
        ((1 - real.scores[scale]) ** 2).mean() + (generated.scores[scale] ** 2).mean()
        for scale in real.scores
    ]
    return torch.stack(terms).sum()


def generator_lsgan_loss(generated: DiscriminatorOutput) -> torch.Tensor:
    """Sum over scales of mean (1 - D(generated))^2."""
    return torch.stack([((1 - scores) ** 2).mean() for scores in generated.scores.values()]).sum()


def feature_matching_loss(
    real: DiscriminatorOutput, generated: DiscriminatorOutput, block_weights: Sequence[float]
) -> torch.Tensor:
    """Sum over scales and blocks of weight x mean |features(real) - features(generated)|.

    The real frame's features are targets (no gradient). This gives the generator a dense,
    stable signal from the discriminator beside the LSGAN score."""
    terms = []
    for scale, generated_features in generated.features.items():
        for weight, got, wanted in zip(
            block_weights, generated_features, real.features[scale], strict=True
        ):
            if weight:
                terms.append(weight * (got - wanted.detach()).abs().mean())
    if not terms:
        return real.scores[next(iter(real.scores))].new_zeros(())
    return torch.stack(terms).sum()


# --------------------------------------------------------------------------- equivariance

KeypointDetector = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def _invertible(jacobians: torch.Tensor) -> torch.Tensor:
    """Jacobians safe to invert, keeping the exact gradient of every matrix the guard accepts.

    The guard's SVD repair is computed without gradient: backpropagating through an SVD with
    equal singular values (the identity Jacobians the detector starts from) gives NaN.
    Matrices the guard had to repair are used repaired and get no gradient.
    """
    with torch.no_grad():
        safe, _ = guard_jacobians(jacobians)
        repaired = (safe != jacobians).any(dim=-1).any(dim=-1)
    return torch.where(repaired[..., None, None], safe, jacobians)


def inverse_times(jacobians: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """J^-1 M for (..., 2, 2) J (guarded) and M, as adj(J) M / det(J).

    Written out entry by entry so that J^-1 J is exactly the identity in floating point: the
    diagonal is (ad - bc) / (ad - bc) and the off-diagonal d b - b d = 0.
    """
    safe = _invertible(jacobians)
    a, b = safe[..., 0, 0], safe[..., 0, 1]
    c, d = safe[..., 1, 0], safe[..., 1, 1]
    m00, m01 = other[..., 0, 0], other[..., 0, 1]
    m10, m11 = other[..., 1, 0], other[..., 1, 1]
    determinant = a * d - b * c
    rows = [
        torch.stack([d * m00 - b * m10, d * m01 - b * m11], dim=-1),
        torch.stack([a * m10 - c * m00, a * m11 - c * m01], dim=-1),
    ]
    return torch.stack(rows, dim=-2) / determinant[..., None, None]


def equivariance_losses(
    kp_detector: KeypointDetector,
    driving: torch.Tensor,
    kp_driving: dict[str, torch.Tensor],
    warp: AffineTpsWarp,
    with_jacobian: bool = True,
) -> dict[str, torch.Tensor]:
    """{"equivariance_value": L1 of kp_D - T(kp_warped), "equivariance_jacobian": ...}.

    The Jacobian term is mean |I - J_D^-1 dT(kp_warped) J_warped|; it is left out when
    `with_jacobian` is False (a detector whose Jacobians are the fixed identity). Both are
    exactly 0 for the identity warp.
    """
    warped_frames = warp.warp_frame(driving)
    kp_warped = kp_detector(warped_frames)
    mapped_back = warp.warp_coordinates(kp_warped["value"])
    losses = {"equivariance_value": (kp_driving["value"] - mapped_back).abs().mean()}
    if with_jacobian:
        composed = warp.jacobian(kp_warped["value"]) @ kp_warped["jacobian"]
        relative = inverse_times(kp_driving["jacobian"], composed)
        identity = torch.eye(2, dtype=relative.dtype, device=relative.device)
        losses["equivariance_jacobian"] = (identity - relative).abs().mean()
    return losses


# Share of the frame (mean over a video's frames) a keypoint's dense-motion mask must hold for
# the keypoint to count as in use; the masks of collapsed or dead keypoints stay near 0.
MASK_IN_USE = 0.01


def keypoint_mask_shares(masks: torch.Tensor) -> torch.Tensor:
    """(K,): each keypoint's mean over (B, K + 1, h, w) dense-motion masks (background first)."""
    return masks[:, 1:].mean(dim=(0, 2, 3))


def mask_balance(masks: torch.Tensor, floor: float) -> torch.Tensor:
    """Sum over keypoints of relu(floor - share) / floor, share = the keypoint's mean mask over
    (B, K + 1, h, w) masks (background first): 0 when every keypoint holds at least `floor` of
    the pixels, 1 per keypoint whose mask is empty. The gradient reaches a dead keypoint's mask
    logits, and through the masks its motion, which reconstruction alone no longer does."""
    return (torch.relu(floor - keypoint_mask_shares(masks)) / floor).sum()


def keypoints_in_use(masks: torch.Tensor) -> int:
    """Keypoints whose share of one video's (T, K + 1, h, w) dense-motion masks (background
    first), averaged over frames and pixels, is at least MASK_IN_USE."""
    return int((keypoint_mask_shares(masks) >= MASK_IN_USE).sum())


# --------------------------------------------------------------------------- extra terms
# Terms beyond FOMM's plug in by name: code registers a function under a name, and a run
# switches it on with a weight in `losses.extra: {name: weight}`. The core objective has no
# branch for any of them (research/part_supervision registers its studies' terms this way).

# The generator side's terms, in log order (extra terms follow, by name).
LOSS_TERMS = (
    "reconstruction_l1",
    "ssim",
    "perceptual",
    "equivariance_value",
    "equivariance_jacobian",
    "mask_balance",
    "generator_gan",
    "feature_matching",
)
# The discriminator's own loss: logged, not part of the generator's "loss".
DISCRIMINATOR_TERM = "discriminator_gan"
# Names the core objective logs itself; an extra term may not take one.
CORE_TERMS = (*LOSS_TERMS, DISCRIMINATOR_TERM)


@dataclass(frozen=True)
class LossInputs:
    """What an extra term sees of one training batch (all on the training device)."""

    source: torch.Tensor  # (B, 3, H, W) frames in [0, 1]
    driving: torch.Tensor
    kp_source: dict[str, torch.Tensor]  # the detector's "value", "jacobian", "heatmap"
    kp_driving: dict[str, torch.Tensor]
    generated: dict[str, torch.Tensor]  # the generator's outputs: "prediction", "mask", ...
    targets: dict[str, torch.Tensor]  # the batch's other tensors (FramesDataset pair_targets)
    estimate_jacobian: bool  # False: the detector's Jacobians are the fixed identity


ExtraLoss = Callable[[LossInputs], torch.Tensor]
_EXTRA_LOSSES: dict[str, ExtraLoss] = {}


def register_loss(name: str, term: ExtraLoss) -> None:
    """Make `term` (LossInputs -> scalar tensor) available as `losses.extra.<name>`.

    Registering the same function again is harmless (a module imported twice); another
    function under a taken name is an error, so that two terms never hide each other."""
    if not name.isidentifier() or name in CORE_TERMS:
        raise ValueError(f"extra loss name {name!r} must be an identifier and not a core term")
    known = _EXTRA_LOSSES.get(name)
    if known is not None and known is not term:
        raise ValueError(f"an extra loss named {name!r} is already registered ({known!r})")
    _EXTRA_LOSSES[name] = term


def unregister_loss(name: str) -> None:
    """Forget a registered term (tests, or code that registers terms for one run)."""
    _EXTRA_LOSSES.pop(name, None)


def registered_losses() -> tuple[str, ...]:
    return tuple(sorted(_EXTRA_LOSSES))


def extra_losses(weights: Mapping[str, float]) -> dict[str, tuple[ExtraLoss, float]]:
    """{name: (term, weight)} of the non-zero `losses.extra` weights; an unknown name is an
    error that says which names are registered."""
    unknown = sorted(set(weights) - set(_EXTRA_LOSSES))
    if unknown:
        registered = ", ".join(registered_losses()) or "none"
        raise ValueError(
            f"losses.extra: unknown loss term(s) {', '.join(unknown)} (registered: "
            f"{registered}; terms are registered with kp_motion.training.losses.register_loss, "
            f"e.g. by research/part_supervision)"
        )
    return {name: (_EXTRA_LOSSES[name], weight) for name, weight in weights.items() if weight}
