"""The study's loss terms on hand-made keypoints and part poses (no training)."""

from __future__ import annotations

import math

import pytest
import torch

from kp_motion.training.losses import LossInputs, extra_losses, unregister_loss
from kp_motion.training.samples import heatmap_spread
from research.part_supervision.losses import (
    TERMS,
    StudySettings,
    background_mask,
    check_weights,
    keypoint_separation,
    part_coverage,
    part_following,
    register_terms,
)


def test_keypoint_separation_counts_close_neighbours():
    coincident = torch.zeros(2, 4, 2)  # 4 keypoints on one spot: 3 neighbours each
    assert float(keypoint_separation(coincident, sigma=0.1)) == pytest.approx(3.0)
    corners = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]])
    assert float(keypoint_separation(corners, sigma=0.1)) == pytest.approx(0.0, abs=1e-6)
    # Two keypoints 0.1 apart at sigma 0.1: exp(-1/2) for each of them.
    pair = torch.tensor([[[0.0, 0.0], [0.1, 0.0]]])
    assert float(keypoint_separation(pair, sigma=0.1)) == pytest.approx(math.exp(-0.5), rel=1e-5)
    # Its gradient pushes them apart along the line that joins them.
    pair.requires_grad_(True)
    keypoint_separation(pair, sigma=0.1).backward()
    assert pair.grad[0, 0, 0] > 0 > pair.grad[0, 1, 0]  # descending moves 0 left, 1 right
    assert torch.allclose(pair.grad[..., 1], torch.zeros(1, 2))


def _part_poses(centres: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """(B, P, 2) centres and (B, P) turns -> (B, P, 2, 3) part poses of size 0.1."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    linear = 0.1 * torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    return torch.cat([linear, centres[..., None]], dim=-1)


def test_part_following_scores_the_best_following_keypoint_of_each_moving_part():
    kp_source = {"value": torch.tensor([[[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2]]]),  # [-1, 1]
                 "jacobian": torch.eye(2).repeat(1, 3, 1, 1)}  # fmt: skip
    kp_driving = {"value": kp_source["value"] + torch.tensor([[[0.2, 0.0], [0, 0], [0, -0.4]]]),
                  "jacobian": torch.eye(2).repeat(1, 3, 1, 1)}  # fmt: skip
    centres = torch.tensor([[[0.5, 0.5], [0.2, 0.2], [0.7, 0.7], [0.1, 0.9]]])
    # Part 0 moves as keypoint 0 (0.1 image units right), part 1 as keypoint 2 would if it
    # moved 0.1 further, part 2 moves less than PART_MIN_MOTION, part 3 is padding. Part 0
    # turns by 0.5 radians between the frames; the keypoints' Jacobians do not.
    moved = centres + torch.tensor([[[0.1, 0.0], [0.0, -0.3], [0.01, 0.0], [1, 1]]])
    parts_source = _part_poses(centres, torch.zeros(1, 4))
    parts_driving = _part_poses(moved, torch.tensor([[-0.5, 0.0, 0.0, 0.0]]))
    valid = torch.tensor([[True, True, True, False]])
    terms = part_following(kp_source, kp_driving, parts_source, parts_driving, valid, True)
    assert float(terms["part_following"]) == pytest.approx((0.0 + 0.1) / 2, abs=1e-4)
    # The driving->source turn of part 0 is a rotation by +0.5: |I - R(0.5)| over 4 entries.
    turn_error = (2 * (1 - math.cos(0.5)) + 2 * math.sin(0.5)) / 4
    assert float(terms["part_following_jacobian"]) == pytest.approx(turn_error / 2, abs=1e-5)
    # Keypoint 0's Jacobians made to turn as the part does (J_D = A_D A_S^-1 J_S, with an
    # anisotropic J_S so that the order of the products matters): it follows part 0 exactly;
    # the padding part's zero pose does not get in the way.
    stretched = torch.diag(torch.tensor([2.0, 1.0]))
    kp_source["jacobian"] = kp_source["jacobian"].clone()
    kp_source["jacobian"][0, 0] = stretched
    kp_driving["jacobian"] = kp_driving["jacobian"].clone()
    kp_driving["jacobian"][0, 0] = parts_driving[0, 0, :, :2] @ torch.linalg.inv(
        parts_source[0, 0, :, :2]) @ stretched  # fmt: skip
    terms = part_following(kp_source, kp_driving, parts_source, parts_driving, valid, True)
    assert float(terms["part_following_jacobian"]) == pytest.approx(0.0, abs=1e-5)
    # Gradients reach only the followers: keypoint 1 follows no part.
    kp_driving["value"].requires_grad_(True)
    part_following(kp_source, kp_driving, parts_source, parts_driving, valid, False)[
        "part_following"
    ].backward()
    assert float(kp_driving["value"].grad[0, 1].abs().sum()) == 0
    assert float(kp_driving["value"].grad[0, 2, 1]) > 0  # descent moves keypoint 2 up, after part 1
    nothing = part_following(kp_source, kp_source, parts_source, parts_source, valid, True)
    assert float(nothing["part_following"]) == 0 and float(nothing["part_following_jacobian"]) == 0


def test_part_following_by_position_gives_each_moving_part_its_own_keypoint():
    def to_unit(image_xy: list) -> torch.Tensor:  # image units [0, 1] -> keypoints in [-1, 1]
        return 2 * torch.tensor([image_xy]) - 1

    # Keypoint 0 is the nearest to both moving parts (0.2 and 0.3 away, in both frames);
    # keypoint 1 is 0.25 from part 0 and 0.75 from part 1. One keypoint each: 0 -> part 1,
    # 1 -> part 0 (0.3 + 0.25 < 0.2 + 0.75). Part 2 does not move and is not scored.
    kp_source = {"value": to_unit([[0.45, 0.5], [0.0, 0.5]]),
                 "jacobian": torch.eye(2).repeat(1, 2, 1, 1)}  # fmt: skip
    kp_driving = {"value": to_unit([[0.45, 0.6], [0.0, 0.6]]),
                  "jacobian": torch.eye(2).repeat(1, 2, 1, 1)}  # fmt: skip
    centres = torch.tensor([[[0.25, 0.5], [0.75, 0.5], [0.5, 0.1]]])
    moved = centres + torch.tensor([[[0.0, 0.1], [0.0, 0.1], [0.0, 0.0]]])
    parts_source = _part_poses(centres, torch.zeros(1, 3))
    parts_driving = _part_poses(moved, torch.zeros(1, 3))
    valid = torch.ones(1, 3, dtype=torch.bool)
    kp_driving["value"].requires_grad_(True)
    terms = part_following(kp_source, kp_driving, parts_source, parts_driving, valid, True,
                           match="position")  # fmt: skip
    assert float(terms["part_following"].detach()) == pytest.approx((0.3 + 0.25) / 2, abs=1e-5)
    assert float(terms["part_following_jacobian"].detach()) == pytest.approx(0.0, abs=1e-6)
    # Descent pulls each keypoint towards its own part: both to the right, keypoint 0 to
    # part 1 rather than back to the nearer part 0.
    terms["part_following"].backward()
    assert (kp_driving["value"].grad[0, :, 0] < 0).all()
    kp_driving["value"] = kp_driving["value"].detach()
    # With its motion alone keypoint 0 follows both parts exactly: the motion match scores 0.
    motion = part_following(kp_source, kp_driving, parts_source, parts_driving, valid, False)
    assert float(motion["part_following"]) == pytest.approx(0.0, abs=1e-4)
    # More moving parts than keypoints: only as many parts as keypoints are scored.
    three = torch.tensor([[[0.0, 0.1]] * 3])
    crowded = part_following(kp_source, kp_driving, parts_source,
                             _part_poses(centres + three, torch.zeros(1, 3)), valid, False,
                             match="position")  # fmt: skip
    assert 0 < float(crowded["part_following"]) < 0.5
    # By slot, keypoint k is part k's whatever is nearer: 0 -> part 0 (0.2), 1 -> part 1 (0.75).
    by_slot = part_following(kp_source, kp_driving, parts_source, parts_driving, valid, False,
                             match="slot")  # fmt: skip
    assert float(by_slot["part_following"]) == pytest.approx((0.2 + 0.75) / 2, abs=1e-5)
    crowded = part_following(kp_source, kp_driving, parts_source,
                             _part_poses(centres + three, torch.zeros(1, 3)), valid, False,
                             match="slot")  # fmt: skip
    assert float(crowded["part_following"]) == pytest.approx((0.2 + 0.75) / 2, abs=1e-5)
    with pytest.raises(ValueError, match="match must be one of"):
        part_following(kp_source, kp_driving, parts_source, parts_driving, valid, False, "pose")


def test_part_coverage_is_each_parts_local_square_grown_by_the_margin():
    # One part 0.2 wide and 0.4 tall around (0.5, 0.25), one padding part over everything.
    parts = torch.tensor([[[[0.1, 0.0, 0.5], [0.0, 0.2, 0.25]],
                           [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]]])  # fmt: skip
    valid = torch.tensor([[True, False]])
    covered = part_coverage(parts, valid, 8, 8, margin=0.0)[0]
    # Cell centres (i + 0.5) / 8: columns 3-4 (x 0.44, 0.56), rows 0-3 (y 0.06 ... 0.44).
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[0:4, 3:5] = True
    assert torch.equal(covered, expected)
    grown = part_coverage(parts, valid, 8, 8, margin=1.0)[0]  # 0.4 wide, 0.8 tall
    assert torch.equal(grown[:, 2:6].any(dim=0), torch.ones(4, dtype=torch.bool))
    assert int(grown.sum()) == 4 * 5 and not grown[5:].any()
    # Turned by 90 degrees, the tall part lies on its side.
    turned = torch.tensor([[[[0.0, -0.2, 0.5], [0.1, 0.0, 0.25]]]])
    covered = part_coverage(turned, valid[:, :1], 8, 8, margin=0.0)[0]
    assert torch.equal(covered[1:3, 2:6], torch.ones(2, 4, dtype=torch.bool))
    assert int(covered.sum()) == 8


def test_background_mask_scores_the_ground_of_both_frames_only():
    centres = torch.tensor([[[0.25, 0.25]], [[0.25, 0.25]]])
    parts_source = _part_poses(centres, torch.zeros(2, 1))
    parts_driving = _part_poses(centres + torch.tensor([0.5, 0.0]), torch.zeros(2, 1))
    valid = torch.tensor([[True], [False]])  # item 1 has no known parts: not scored
    on_a_part = part_coverage(parts_source, valid, 8, 8, 0.0) | part_coverage(
        parts_driving, valid, 8, 8, 0.0
    )
    masks = torch.zeros(2, 3, 8, 8)
    masks[:, 0] = 1.0  # the background's identity motion everywhere
    assert float(background_mask(masks, parts_source, parts_driving, valid, 0.0)) == 0
    # A keypoint taking the parts' cells, where the source pixel is hidden or revealed, costs
    # nothing; taking the ground costs its share, averaged over the ground of item 0 only.
    masks[0, 0][on_a_part[0]], masks[0, 1][on_a_part[0]] = 0.0, 1.0
    masks[1, :2] = torch.tensor([0.0, 1.0])[:, None, None]
    assert float(background_mask(masks, parts_source, parts_driving, valid, 0.0)) == 0
    masks[0, 0], masks[0, 2] = 0.75, 0.25
    ground = int((~on_a_part[0]).sum())
    assert ground == 64 - 2 * 4
    assert float(background_mask(masks, parts_source, parts_driving, valid, 0.0)) == 0.25
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    background_mask(torch.softmax(logits, dim=1), parts_source, parts_driving, valid,
                    0.0).backward()  # fmt: skip
    # Descent raises the background's logits on the ground of item 0 and nowhere else.
    assert (logits.grad[0, 0][~on_a_part[0]] < 0).all()
    assert float(logits.grad[0, 0][on_a_part[0]].abs().sum()) == 0
    assert float(logits.grad[1].abs().sum()) == 0




def _inputs(targets: dict, estimate_jacobian: bool = True) -> LossInputs:
    """Two items, three keypoints with point heatmaps, an all-background dense motion."""
    value = torch.tensor([[[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2]]]).repeat(2, 1, 1)
    heatmap = torch.zeros(2, 3, 5, 5)
    heatmap[..., 2, 2] = 1.0
    kp = {"value": value, "jacobian": torch.eye(2).repeat(2, 3, 1, 1), "heatmap": heatmap}
    moved = {**kp, "value": value + 0.1}
    mask = torch.zeros(2, 4, 8, 8)
    mask[:, 1] = 1.0  # every pixel to keypoint 0's motion
    frames = torch.zeros(2, 3, 8, 8)
    return LossInputs(frames, frames, kp, moved, {"mask": mask}, targets, estimate_jacobian)


def test_registered_terms_are_the_functions_above_with_the_study_knobs():
    settings = StudySettings(keypoint_separation_sigma=0.3, part_following_match="slot",
                             background_mask_margin=0.0)  # fmt: skip
    register_terms(settings)
    try:
        terms = extra_losses(dict.fromkeys(TERMS, 1.0))
        centres = torch.tensor([[[0.5, 0.5]], [[0.5, 0.5]]])
        parts = {"parts_source": _part_poses(centres, torch.zeros(2, 1)),
                 "parts_driving": _part_poses(centres + 0.2, torch.zeros(2, 1)),
                 "parts_valid": torch.ones(2, 1, dtype=torch.bool)}  # fmt: skip
        inputs = _inputs(parts)
        found = {name: float(term(inputs)) for name, (term, _) in terms.items()}
        expected_separation = 0.5 * sum(
            float(keypoint_separation(kp["value"], 0.3)) for kp in (inputs.kp_source,
                                                                    inputs.kp_driving)
        )  # fmt: skip
        assert found["keypoint_separation"] == pytest.approx(expected_separation)
        following = part_following(inputs.kp_source, inputs.kp_driving, *parts.values(), True,
                                   match="slot")  # fmt: skip
        assert found["part_following"] == pytest.approx(float(following["part_following"]))
        assert found["part_following_jacobian"] == pytest.approx(
            float(following["part_following_jacobian"])
        )
        assert found["background_mask"] == 1.0  # the ground is all keypoint motion
        spreads = [float(heatmap_spread(kp["heatmap"], kp["value"]))
                   for kp in (inputs.kp_source, inputs.kp_driving)]  # fmt: skip
        assert found["keypoint_concentration"] == pytest.approx(0.5 * sum(spreads))
        # A detector without Jacobians: nothing to turn.
        assert float(terms["part_following_jacobian"][0](_inputs(parts, False))) == 0
        with pytest.raises(ValueError, match="part_following is on but the batch has no part"):
            terms["part_following"][0](_inputs({}))
    finally:
        for name in TERMS:
            unregister_loss(name)


def test_study_settings_and_weights_are_checked():
    with pytest.raises(ValueError, match="keypoint_separation_sigma must be positive"):
        StudySettings(0.0, "motion", 0.5)
    with pytest.raises(ValueError, match="part_following_match must be one of motion, position"):
        StudySettings(0.1, "pose", 0.5)
    with pytest.raises(ValueError, match="background_mask_margin must be >= 0"):
        StudySettings(0.1, "motion", -0.1)
    with pytest.raises(ValueError, match="part_following_jacobian needs part_following on"):
        check_weights({"part_following_jacobian": 1.0})
    check_weights({"part_following": 1.0, "part_following_jacobian": 1.0})
