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
    equivariance_losses,
    image_pyramid,
    inverse_times,
    load_vgg19,
    perceptual_loss,
    pyramid_l1,
    ssim_loss,
)
from kp_motion.training.samples import heatmap_spread
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
