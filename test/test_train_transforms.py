"""The affine + thin-plate-spline warps behind the equivariance loss."""

from __future__ import annotations

import pytest
import torch

from kp_motion.training.transforms import AffineTpsWarp, control_point_grid

torch.set_num_threads(1)


def _random_warp(batch: int = 3, seed: int = 0) -> AffineTpsWarp:
    generator = torch.Generator().manual_seed(seed)
    return AffineTpsWarp.random(batch, sigma_affine=0.1, sigma_tps=0.05, generator=generator)


def test_identity_parameters_give_the_identity_map_exactly():
    warp = AffineTpsWarp.identity(2, points_per_side=5)
    points = torch.rand(2, 7, 2) * 2 - 1
    assert warp.is_identity()
    assert torch.equal(warp.warp_coordinates(points), points)
    assert torch.equal(warp.jacobian(points), torch.eye(2).expand(2, 7, 2, 2))
    frames = torch.rand(2, 3, 9, 11)
    assert torch.equal(warp.warp_frame(frames), frames)


def test_zero_noise_random_warp_is_the_identity():
    warp = AffineTpsWarp.random(4, sigma_affine=0.0, sigma_tps=0.0)
    assert warp.is_identity()
    assert not _random_warp().is_identity()


def test_seeded_random_warps_repeat():
    first, second = _random_warp(seed=3), _random_warp(seed=3)
    assert torch.equal(first.affine, second.affine)
    assert torch.equal(first.control_weights, second.control_weights)


def test_translation_samples_the_original_frame_at_the_warped_coordinates():
    # T(z) = z + one pixel in x: warped(z) = frame(T(z)), so warped column i is frame column i+1.
    height, width = 6, 9
    warp = AffineTpsWarp.identity(1)
    warp.affine[0, 0, 2] = 2.0 / (width - 1)
    frames = torch.rand(1, 3, height, width)
    warped = warp.warp_frame(frames)
    torch.testing.assert_close(warped[..., :-1], frames[..., 1:], atol=1e-5, rtol=0)


def test_closed_form_jacobian_matches_autograd():
    warp = _random_warp(batch=2, seed=1)
    # Include a control point itself, where the radial term's gradient is a 0 * log 0 limit.
    on_control_points = control_point_grid(5)[None, :2].repeat(2, 1, 1)
    points = torch.cat([torch.rand(2, 5, 2) * 2 - 1, on_control_points], dim=1)
    points = points.double().requires_grad_(True)
    warp64 = AffineTpsWarp(
        warp.affine.double(), warp.control_points.double(), warp.control_weights.double()
    )
    mapped = warp64.warp_coordinates(points)
    rows = []
    for output in range(2):
        (gradient,) = torch.autograd.grad(mapped[..., output].sum(), points, retain_graph=True)
        rows.append(gradient)
    autograd_jacobian = torch.stack(rows, dim=-2)
    torch.testing.assert_close(warp64.jacobian(points), autograd_jacobian, atol=1e-9, rtol=1e-7)
    assert torch.isfinite(warp64.jacobian(points)).all()


def test_bad_shapes_are_refused_with_clear_errors():
    with pytest.raises(ValueError, match="affine"):
        AffineTpsWarp(torch.zeros(2, 3, 3), control_point_grid(3), torch.zeros(2, 9, 2))
    with pytest.raises(ValueError, match="control weights"):
        AffineTpsWarp(torch.zeros(2, 2, 3), control_point_grid(3), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="points must be"):
        AffineTpsWarp.identity(2).warp_coordinates(torch.zeros(3, 4, 2))
    with pytest.raises(ValueError, match="at least 2 control points"):
        control_point_grid(1)
    with pytest.raises(ValueError, match=">= 0"):
        AffineTpsWarp.random(1, sigma_affine=-1.0, sigma_tps=0.0)
