"""Training losses: pyramid L1, SSIM term, VGG19 perceptual loading, equivariance."""

from __future__ import annotations

import math

import pytest
import torch
from train_helpers import tiny_model_config

from kp_motion.jacobian import guard_jacobians
from kp_motion.models.checkpoint import build_models
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.training.losses import (
    VGG19_TAPS,
    Vgg19Features,
    background_mask,
    equivariance_losses,
    heatmap_spread,
    image_pyramid,
    inverse_times,
    load_vgg19,
    part_coverage,
    part_following,
    perceptual_loss,
    pyramid_l1,
    ssim_loss,
)
from kp_motion.training.transforms import AffineTpsWarp, make_coordinate_grid

torch.set_num_threads(1)


def _images(seed: int, batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_pyramid_sizes_and_l1():
    images = _images(0)
    pyramid = image_pyramid(images, (1.0, 0.5, 0.25, 0.125))
    assert [tuple(level.shape[-2:]) for level in pyramid.values()] == [
        (32, 32),
        (16, 16),
        (8, 8),
        (4, 4),
    ]
    assert pyramid[1.0] is images
    assert pyramid_l1(pyramid, pyramid).item() == 0.0
    other = image_pyramid(_images(1), (1.0, 0.5))
    # Full scale of two uniform-noise images: E|a - b| = 1/3; lower scales average the noise.
    full_only = pyramid_l1({1.0: other[1.0]}, {1.0: images}).item()
    assert abs(full_only - 1 / 3) < 0.02
    assert pyramid_l1(other, {s: pyramid[s] for s in other}).item() > full_only
    with pytest.raises(ValueError, match="scales"):
        image_pyramid(images, (1.0, 1.5))


def test_ssim_term_is_zero_for_identical_images_and_positive_otherwise():
    images = _images(0)
    assert ssim_loss(images, images).item() == pytest.approx(0.0, abs=1e-6)
    assert ssim_loss(images, _images(1)).item() > 0.5


def _centroid_detector(frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """A hand-made equivariant 'detector': the brightness centroid, identity Jacobian."""
    weights = frames.mean(dim=1)
    weights = weights / weights.sum(dim=(1, 2), keepdim=True)
    grid = make_coordinate_grid(*frames.shape[-2:])
    centroid = (weights[..., None] * grid).sum(dim=(1, 2))[:, None, :]
    identity = torch.eye(2).expand(frames.shape[0], 1, 2, 2)
    return {"value": centroid, "jacobian": identity}


def _blob_frames(size: int = 33) -> torch.Tensor:
    grid = make_coordinate_grid(size, size)
    centres = torch.tensor([[0.1, -0.05], [-0.1, 0.1]])
    squared = ((grid[None] - centres[:, None, None, :]) ** 2).sum(-1)
    return torch.exp(-squared / (2 * 0.15**2))[:, None].repeat(1, 3, 1, 1)


def test_equivariance_maps_warped_keypoints_back_to_the_original_frame():
    frames = _blob_frames()
    shift = torch.tensor([0.12, -0.08])
    warp = AffineTpsWarp.identity(2)
    warp.affine[:, :, 2] = shift
    losses = equivariance_losses(_centroid_detector, frames, _centroid_detector(frames), warp)
    # Mapping back in the wrong direction would be off by twice the shift (0.2 on average).
    assert losses["equivariance_value"].item() < 0.01
    assert losses["equivariance_jacobian"].item() == 0.0


def test_equivariance_is_exactly_zero_under_the_identity_warp():
    torch.manual_seed(0)
    kp_detector = KeypointDetector(tiny_model_config())
    frames = _images(2, batch=3)
    # Non-trivial Jacobians (inside the guard's range): perturb the identity-initialised head.
    with torch.no_grad():
        kp_detector.jacobian.weight.normal_(0.0, 0.005)
    kp_driving = kp_detector(frames)
    assert not torch.allclose(kp_driving["jacobian"], torch.eye(2).expand(3, 10, 2, 2))
    assert guard_jacobians(kp_driving["jacobian"])[1] == 0
    losses = equivariance_losses(kp_detector, frames, kp_driving, AffineTpsWarp.identity(3))
    assert losses["equivariance_value"].item() == 0.0
    assert losses["equivariance_jacobian"].item() == 0.0


def test_equivariance_is_positive_and_has_finite_gradients_for_random_warps():
    torch.manual_seed(0)
    kp_detector, _ = build_models(tiny_model_config())
    frames = _images(3, batch=2)
    warp = AffineTpsWarp.random(2, 0.05, 0.005, generator=torch.Generator().manual_seed(0))
    # The untrained head outputs exactly identity Jacobians (equal singular values).
    losses = equivariance_losses(kp_detector, frames, kp_detector(frames), warp)
    assert losses["equivariance_value"].item() > 0
    assert losses["equivariance_jacobian"].item() > 0
    sum(losses.values()).backward()
    gradients = [p.grad for p in kp_detector.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)
    no_jacobian = equivariance_losses(
        kp_detector, frames, kp_detector(frames), warp, with_jacobian=False
    )
    assert set(no_jacobian) == {"equivariance_value"}


def test_inverse_times_is_exact_for_the_matrix_itself_and_guards_singular_ones():
    noise = torch.randn(50, 2, 2, generator=torch.Generator().manual_seed(0))
    jacobians = torch.eye(2) + 0.3 * noise  # singular values well inside the guard's range
    assert torch.equal(inverse_times(jacobians, jacobians), torch.eye(2).expand(50, 2, 2))
    other = torch.randn(50, 2, 2)
    expected = torch.linalg.solve(jacobians, other)
    torch.testing.assert_close(inverse_times(jacobians, other), expected, atol=1e-5, rtol=1e-5)
    singular = torch.tensor([[[1.0, 2.0], [2.0, 4.0]], [[float("nan"), 0.0], [0.0, 1.0]]])
    assert torch.isfinite(inverse_times(singular, torch.eye(2).expand(2, 2, 2))).all()


def _save_vgg_state(path, model: Vgg19Features, layout: str) -> None:
    features = model.features.state_dict()
    if layout == "features-only":
        state = features
    else:  # a whole torchvision model: 'features.N.*' plus a classifier the loss ignores
        state = {f"features.{k}": v for k, v in features.items()}
        state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)


@pytest.mark.parametrize("layout", ["features-only", "whole-model"])
def test_vgg19_loads_torchvision_layouts_and_gives_a_perceptual_loss(tmp_path, layout):
    torch.manual_seed(0)
    reference = Vgg19Features()
    path = tmp_path / "vgg19.pth"
    _save_vgg_state(path, reference, layout)
    vgg = load_vgg19(path)
    assert all(not p.requires_grad for p in vgg.parameters())
    assert torch.equal(vgg.features[34].weight, reference.features[34].weight)
    target = image_pyramid(_images(0, batch=1, size=16), (1.0,))
    prediction = {1.0: _images(1, batch=1, size=16).requires_grad_(True)}
    weights = (1.0,) * len(VGG19_TAPS)
    assert perceptual_loss(vgg, target, target, weights).item() == 0.0
    loss = perceptual_loss(vgg, prediction, target, weights)
    loss.backward()
    assert loss.item() > 0 and prediction[1.0].grad.abs().sum() > 0


def test_vgg19_loading_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG19 weights file not found"):
        load_vgg19(tmp_path / "absent.pth")
    state = Vgg19Features().features.state_dict()
    del state["28.weight"]
    state["99.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as error:
        load_vgg19(tmp_path / "bad.pth")
    message = str(error.value)
    assert "missing keys: features.28.weight" in message
    assert "unexpected keys: features.99.weight" in message
    assert "wrong shapes: features.0.weight" in message
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable state dict"):
        load_vgg19(tmp_path / "junk.pth")


def test_heatmap_spread_is_zero_for_a_point_and_large_for_a_flat_map():
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1.0
    assert float(heatmap_spread(point, torch.zeros(1, 1, 2))) == pytest.approx(0.0, abs=1e-3)
    flat = torch.full((1, 1, 9, 9), 1 / 81)
    # sqrt(E x^2 + E y^2) for x, y uniform on the 9 grid points of [-1, 1].
    expected = math.sqrt(2 * sum(((i - 4) / 4) ** 2 for i in range(9)) / 9)
    assert float(heatmap_spread(flat, torch.zeros(1, 1, 2))) == pytest.approx(expected, rel=1e-4)


def test_keypoint_separation_counts_close_neighbours():
    from kp_motion.training.losses import keypoint_separation

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


def test_mask_balance_penalises_the_keypoints_whose_masks_are_empty():
    from kp_motion.training.losses import mask_balance

    balanced = torch.full((2, 4, 8, 8), 0.25)  # background + 3 keypoints, a quarter each
    assert float(mask_balance(balanced, floor=0.02)) == 0
    logits = torch.zeros(2, 4, 8, 8)
    logits[:, 3] = -6.0  # keypoint 3: a nearly empty mask, share e^-6 / (3 + e^-6) = 0.08 %
    logits.requires_grad_(True)
    penalty = mask_balance(torch.softmax(logits, dim=1), floor=0.02)
    share = math.exp(-6) / (3 + math.exp(-6))
    assert float(penalty.detach()) == pytest.approx((0.02 - share) / 0.02, rel=1e-5)
    penalty.backward()
    # Lowering the penalty raises the empty keypoint's logits: its gradient is negative.
    assert float(logits.grad[:, 3].sum()) < 0
