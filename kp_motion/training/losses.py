"""FOMM training losses: multi-scale reconstruction (L1 + SSIM), VGG19 perceptual, equivariance,
and the optional adversarial terms (LSGAN + discriminator feature matching).

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

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.evaluation.metrics import ssim
from kp_motion.jacobian import guard_jacobians
from kp_motion.models.blocks import make_coordinate_grid
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


def heatmap_spread(heatmaps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Mean over batch and keypoints of sqrt(E|z - kp|^2) under each (B, K, h, w) heatmap.

    In [-1, 1] units: about 0.8 for a uniform heatmap, 0 for a single pixel. A keypoint whose
    heatmap is broad is an average over a large area (an object's centroid) and follows no part.
    """
    height, width = heatmaps.shape[-2:]
    grid = make_coordinate_grid(height, width, heatmaps.dtype, heatmaps.device)
    offsets = grid - positions[:, :, None, None, :]
    variance = (heatmaps * (offsets**2).sum(-1)).sum(dim=(2, 3))
    return torch.sqrt(variance + 1e-8).mean()


def keypoint_separation(positions: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean over batch and keypoints of sum_{j != k} exp(-|kp_k - kp_j|^2 / (2 sigma^2)) for
    (B, K, 2) keypoints ([-1, 1] units): about K - 1 when all coincide, 0 when they are far apart.

    Broad heatmaps of one object end up nearly identical, so several keypoints sit on its
    centroid and express one motion between them; this pushes them apart, the separation prior
    of unsupervised landmark discovery. (On compact-64 they spread around the object, not onto
    its parts: models/fomm-compact-64/MODEL_CARD.md.)"""
    squared = (positions[:, :, None] - positions[:, None]).square().sum(dim=-1)  # (B, K, K)
    closeness = torch.exp(-squared / (2 * sigma**2))
    others = closeness.sum(dim=-1) - 1  # every keypoint is at distance 0 from itself
    return others.mean()


# Parts whose centre moves less than this between two frames (image units, [0, 1]; about 1.3 px
# at 64 px) are not scored by part_following, in training or in kp-motion samples: with no
# motion to follow, any keypoint that stays put would do.
PART_MIN_MOTION = 0.02
# How part_following picks the keypoint that should follow each part (its docstring says).
PART_MATCHES = ("motion", "position", "slot")


def part_following(
    kp_source: dict[str, torch.Tensor],
    kp_driving: dict[str, torch.Tensor],
    parts_source: torch.Tensor,
    parts_driving: torch.Tensor,
    parts_valid: torch.Tensor,
    with_jacobian: bool,
    match: str = "motion",
) -> dict[str, torch.Tensor]:
    """How far the keypoints are from moving with the parts, for data whose part poses are
    known (synthetic: data.synthetic.video_part_poses). Not in FOMM.

    Keypoints: "value" (B, K, 2) in [-1, 1] and "jacobian" (B, K, 2, 2); parts: (B, P, 2, 3)
    local->image affines in [0, 1] image units, (B, P) validity (padding is False). Only parts
    whose centre moves at least PART_MIN_MOTION are scored, each by its follower keypoint:
        "part_following"           match "motion": the keypoint whose motion is nearest the
                                   part's is its follower, and the term is the mean over the
                                   parts of that distance (image units). Only motions are
                                   compared, so a keypoint may sit anywhere on its part.
                                   match "position": each part gets its own keypoint (an
                                   assignment minimising the keypoints' summed distances to
                                   the part centres, a part left without one when there are
                                   more parts than keypoints), and the term is the mean over
                                   the assigned parts of that keypoint's distance to the
                                   part's centre, averaged over the two frames.
                                   match "slot": the same, but keypoint k is part k's
                                   (parts from K on are not scored), so that a keypoint
                                   means the same part in every video of a kind.
        "part_following_jacobian"  (with_jacobian) mean |J_S J_D^-1 - A_S A_D^-1| of the
                                   followers: the driving->source map near the keypoint, as
                                   the dense motion builds it, against the part's own turn.
    It is a supervision only synthetic data can give, which the unsupervised losses lack the
    reach for: a keypoint far from an arm gets no gradient that says the arm is there.
    """
    if match not in PART_MATCHES:
        raise ValueError(f"part_following match must be one of {PART_MATCHES}, got {match!r}")
    part_moved = parts_driving[..., 2] - parts_source[..., 2]
    scored = parts_valid & (part_moved.norm(dim=-1) >= PART_MIN_MOTION)  # (B, P)
    if match == "motion":
        kp_moved = (kp_driving["value"] - kp_source["value"]) / 2  # [-1, 1] -> image units
        squared = (kp_moved[:, :, None] - part_moved[:, None]).square().sum(dim=-1)  # (B, K, P)
        miss, follower = torch.sqrt(squared + 1e-10).min(dim=1)  # (B, P)
    else:
        distance = 0.5 * (_centre_distances(kp_source["value"], parts_source)
                          + _centre_distances(kp_driving["value"], parts_driving))  # fmt: skip
        if match == "position":
            follower, scored = _assign_keypoints(distance.detach(), scored)
        else:
            num_kp, num_parts = distance.shape[1:]
            slots = torch.arange(num_parts, device=distance.device)
            follower = slots.clamp(max=num_kp - 1).expand_as(scored)
            scored = scored & (slots < num_kp)
        miss = distance.gather(1, follower[:, None]).squeeze(1)
    weights = scored.to(miss.dtype)
    count = weights.sum().clamp(min=1)
    terms = {"part_following": (miss * weights).sum() / count}
    if with_jacobian:
        driving_linear = _invertible_linear(parts_driving, parts_valid)
        part_turn = parts_source[..., :2] @ torch.linalg.inv(driving_linear)  # (B, P, 2, 2)
        index = follower[..., None, None].expand(-1, -1, 2, 2)
        source_j = kp_source["jacobian"].gather(1, index)
        driving_j = kp_driving["jacobian"].gather(1, index)
        # J_S J_D^-1 = (J_D^-T J_S^T)^T, with the guarded inverse of the equivariance term.
        kp_turn = inverse_times(driving_j.mT, source_j.mT).mT
        error = (kp_turn - part_turn).abs().mean(dim=(-1, -2))
        terms["part_following_jacobian"] = (error * weights).sum() / count
    return terms


def _invertible_linear(parts: torch.Tensor, parts_valid: torch.Tensor) -> torch.Tensor:
    """(B, P, 2, 2) linear parts of (B, P, 2, 3) part poses, padding replaced by the identity:
    a real part's map is invertible (its size is fixed), padding's zeros are not."""
    identity = torch.eye(2, dtype=parts.dtype, device=parts.device)
    return torch.where(parts_valid[..., None, None], parts[..., :2], identity)


def _centre_distances(positions: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """(B, K, P) image-unit distances from (B, K, 2) keypoints in [-1, 1] to the centres of
    (B, P, 2, 3) parts."""
    offsets = (positions[:, :, None] + 1) / 2 - parts[:, None, :, :, 2]
    return torch.sqrt(offsets.square().sum(dim=-1) + 1e-10)


def _assign_keypoints(
    distance: torch.Tensor, scored: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One keypoint per scored part, minimising the summed (B, K, P) distances (Hungarian).
    -> (B, P) follower indices (0 where none) and which parts got a keypoint."""
    from scipy.optimize import linear_sum_assignment

    follower = torch.zeros(scored.shape, dtype=torch.long, device=distance.device)
    assigned = torch.zeros_like(scored)
    costs = distance.cpu().numpy()
    for item, parts_scored in enumerate(scored.cpu().numpy()):
        columns = parts_scored.nonzero()[0]
        if len(columns) == 0:
            continue
        rows, picked = linear_sum_assignment(costs[item][:, columns])
        follower[item, columns[picked]] = torch.as_tensor(rows, device=distance.device)
        assigned[item, columns[picked]] = True
    return follower, assigned


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


# Local units by which part_coverage grows each synthetic part's square [-1, 1]^2 by default:
# with it every pixel of every object kind lies on its part at 64 px (outlines and a blob's
# wobble lie outside the bare square; 7-11 % of object pixels do at 0).
PART_MARGIN = 0.5


def part_coverage(
    parts: torch.Tensor, parts_valid: torch.Tensor, height: int, width: int, margin: float
) -> torch.Tensor:
    """(B, h, w): which cells of an h x w grid over the image lie on a part, for (B, P, 2, 3)
    local->image part affines in [0, 1] image units and (B, P) validity. A part covers its
    local square [-1 - margin, 1 + margin]^2: every synthetic outline (a superellipse) lies in
    [-1, 1]^2, and the margin takes in a blob's wobble, which its pose leaves out."""
    # Cell centres at (i + 0.5) / n, as the synthetic renderer places pixels in image units
    # (not blocks.make_coordinate_grid, whose [-1, 1] spans the border cells' centres).
    rows = (torch.arange(height, dtype=parts.dtype, device=parts.device) + 0.5) / height
    columns = (torch.arange(width, dtype=parts.dtype, device=parts.device) + 0.5) / width
    grid = torch.stack(torch.meshgrid(columns, rows, indexing="xy"), dim=-1)  # (h, w, 2): x, y
    linear = _invertible_linear(parts, parts_valid)
    offsets = grid[None, None] - parts[:, :, None, None, :, 2]  # (B, P, h, w, 2)
    local = (torch.linalg.inv(linear)[:, :, None, None] @ offsets[..., None]).squeeze(-1)
    inside = local.abs().amax(dim=-1) <= 1 + margin
    return (inside & parts_valid[:, :, None, None]).any(dim=1)


def background_mask(
    masks: torch.Tensor,
    parts_source: torch.Tensor,
    parts_driving: torch.Tensor,
    parts_valid: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """Mean of 1 - background mask over the ground: the cells of (B, K + 1, h, w) dense-motion
    masks (background first) that no part covers in either frame (part_coverage). Not in FOMM.

    The synthetic backgrounds are static, so there the identity motion of the background is
    exactly right, and a keypoint's motion taking a share of it drags the ground along with
    the part. Cells a part covers in one frame only are left out: there the right source
    pixel is hidden or revealed, which is the occlusion map's business, not the motion's.
    Items without known parts (all of parts_valid False) have no ground and are not scored."""
    height, width = masks.shape[-2:]
    covered = part_coverage(parts_source, parts_valid, height, width, margin) | part_coverage(
        parts_driving, parts_valid, height, width, margin
    )
    ground = (~covered & parts_valid.any(dim=1)[:, None, None]).to(masks.dtype)
    return ((1 - masks[:, 0]) * ground).sum() / ground.sum().clamp(min=1)


def keypoints_in_use(masks: torch.Tensor) -> int:
    """Keypoints whose share of one video's (T, K + 1, h, w) dense-motion masks (background
    first), averaged over frames and pixels, is at least MASK_IN_USE."""
    return int((keypoint_mask_shares(masks) >= MASK_IN_USE).sum())
