"""The study's loss terms, none of them in FOMM, and their registration with the core objective.

The core (kp_motion.training.losses) applies extra terms by name: `register_terms` registers the
TERMS below with this study's settings bound, and a run switches them on with weights in its
`losses.extra`. What each term does:

    keypoint_concentration   mean spread of the keypoint heatmaps (sharper heatmaps)
    keypoint_separation      penalty on keypoints closer than about sigma to each other
    part_following           for every moving part of a synthetic dataset, some keypoint
                             moves with it (part_following_match says which keypoint)
    part_following_jacobian  ... and that keypoint's Jacobians turn with the part
    background_mask          the dense motion's background share is 1 where no part is

The last three need the part poses of every training pair (poses.part_pose_targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kp_motion.training.losses import LossInputs, inverse_times, register_loss, unregister_loss
from kp_motion.training.samples import heatmap_spread

TERMS = (
    "keypoint_concentration",
    "keypoint_separation",
    "part_following",
    "part_following_jacobian",
    "background_mask",
)
# Terms that need the batch's part poses ("parts_source", "parts_driving", "parts_valid").
PART_TERMS = ("part_following", "part_following_jacobian", "background_mask")
# Parts whose centre moves less than this between two frames (image units, [0, 1]; about 1.3 px
# at 64 px) are not scored by part_following, in training or in the diagnostics: with no
# motion to follow, any keypoint that stays put would do.
PART_MIN_MOTION = 0.02
# How part_following picks the keypoint that should follow each part (its docstring says).
PART_MATCHES = ("motion", "position", "slot")
# Local units by which part_coverage grows each synthetic part's square [-1, 1]^2 by default:
# with it every pixel of every object kind lies on its part at 64 px (outlines and a blob's
# wobble lie outside the bare square; 7-11 % of object pixels do at 0).
PART_MARGIN = 0.5


@dataclass(frozen=True)
class StudySettings:
    """The terms' own knobs (research/part_supervision/config.yaml); weights are the run's."""

    keypoint_separation_sigma: float  # [-1, 1] units
    part_following_match: str  # one of PART_MATCHES
    background_mask_margin: float  # local units a part's square is grown by (part_coverage)

    def __post_init__(self) -> None:
        if self.keypoint_separation_sigma <= 0:
            raise ValueError(
                "keypoint_separation_sigma must be positive, got "
                f"{self.keypoint_separation_sigma}"
            )
        if self.part_following_match not in PART_MATCHES:
            raise ValueError(
                f"part_following_match must be one of {', '.join(PART_MATCHES)}, got "
                f"{self.part_following_match!r}"
            )
        if self.background_mask_margin < 0:
            raise ValueError(
                f"background_mask_margin must be >= 0, got {self.background_mask_margin}"
            )


def check_weights(weights: dict[str, float]) -> None:
    """The study's rule between its weights (the core checks each weight itself)."""
    if weights.get("part_following_jacobian", 0) > 0 and weights.get("part_following", 0) <= 0:
        raise ValueError(
            "part_following_jacobian needs part_following on (it scores the keypoints that "
            "term picks as the parts' followers)"
        )


def register_terms(settings: StudySettings) -> None:
    """Register every term of TERMS with the core, bound to `settings` (again: replaced)."""
    for name, term in _terms(settings).items():
        unregister_loss(name)
        register_loss(name, term)


def _terms(settings: StudySettings) -> dict:
    def concentration(inputs: LossInputs) -> torch.Tensor:
        kps = (inputs.kp_source, inputs.kp_driving)
        return 0.5 * sum(heatmap_spread(kp["heatmap"], kp["value"]) for kp in kps)

    def separation(inputs: LossInputs) -> torch.Tensor:
        kps = (inputs.kp_source, inputs.kp_driving)
        return 0.5 * sum(
            keypoint_separation(kp["value"], settings.keypoint_separation_sigma) for kp in kps
        )

    def following(inputs: LossInputs) -> torch.Tensor:
        return _following_terms(inputs, settings, False)["part_following"]

    def following_jacobian(inputs: LossInputs) -> torch.Tensor:
        if not inputs.estimate_jacobian:  # fixed identity Jacobians: nothing to turn
            return inputs.driving.new_zeros(())
        return _following_terms(inputs, settings, True)["part_following_jacobian"]

    def ground(inputs: LossInputs) -> torch.Tensor:
        parts = _part_targets(inputs, "background_mask")
        return background_mask(inputs.generated["mask"], *parts, settings.background_mask_margin)

    return {
        "keypoint_concentration": concentration,
        "keypoint_separation": separation,
        "part_following": following,
        "part_following_jacobian": following_jacobian,
        "background_mask": ground,
    }


def _part_targets(inputs: LossInputs, term: str) -> tuple[torch.Tensor, ...]:
    names = ("parts_source", "parts_driving", "parts_valid")
    if not all(name in inputs.targets for name in names):
        raise ValueError(
            f"{term} is on but the batch has no part poses: train with "
            f"research/part_supervision/train.py on a dataset made by kp-motion synth"
        )
    return tuple(inputs.targets[name] for name in names)


def _following_terms(
    inputs: LossInputs, settings: StudySettings, with_jacobian: bool
) -> dict[str, torch.Tensor]:
    parts = _part_targets(inputs, "part_following")
    return part_following(inputs.kp_source, inputs.kp_driving, *parts, with_jacobian,
                          settings.part_following_match)  # fmt: skip


# --------------------------------------------------------------------------- the terms


def keypoint_separation(positions: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean over batch and keypoints of sum_{j != k} exp(-|kp_k - kp_j|^2 / (2 sigma^2)) for
    (B, K, 2) keypoints ([-1, 1] units): about K - 1 when all coincide, 0 when they are far apart.

    Broad heatmaps of one object end up nearly identical, so several keypoints sit on its
    centroid and express one motion between them; this pushes them apart, the separation prior
    of unsupervised landmark discovery. (On compact-64 they spread around the object, not onto
    its parts: docs/research/part-supervision.md.)"""
    squared = (positions[:, :, None] - positions[:, None]).square().sum(dim=-1)  # (B, K, K)
    closeness = torch.exp(-squared / (2 * sigma**2))
    others = closeness.sum(dim=-1) - 1  # every keypoint is at distance 0 from itself
    return others.mean()


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
    known (synthetic: poses.video_part_poses).

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
    masks (background first) that no part covers in either frame (part_coverage).

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
