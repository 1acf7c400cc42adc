"""Relative/absolute keypoint normalisation on hand-made numbers."""

from __future__ import annotations

import pytest
import torch

from kp_motion.models.normalization import movement_scale, normalize_keypoints

torch.set_num_threads(1)


def square(centre: tuple[float, float], side: float) -> torch.Tensor:
    """(1, 4, 2) corners of an axis-aligned square."""
    half = side / 2
    cx, cy = centre
    corners = [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
               [cx - half, cy + half]]  # fmt: skip
    return torch.tensor([corners])


def keypoints(positions: torch.Tensor, jacobian: list[list[float]]) -> dict[str, torch.Tensor]:
    count = positions.shape[1]
    return {"value": positions, "jacobian": torch.tensor(jacobian).expand(1, count, 2, 2).clone()}


@pytest.fixture
def frames():
    kp_source = keypoints(square((0.0, 0.0), 0.5), [[1.0, 1.0], [0.0, 1.0]])
    kp_initial = keypoints(square((0.2, 0.1), 1.0), [[1.0, 0.0], [0.0, 2.0]])
    moved = square((0.2, 0.1), 1.0) + torch.tensor([0.1, -0.3])
    kp_driving = keypoints(moved, [[2.0, 0.0], [0.0, 1.0]])
    return kp_source, kp_initial, kp_driving


def test_absolute_mode_uses_driving_keypoints(frames):
    kp_source, kp_initial, kp_driving = frames
    result = normalize_keypoints(kp_source, kp_driving, kp_initial, mode="absolute")
    assert torch.equal(result["value"], kp_driving["value"])
    assert torch.equal(result["jacobian"], kp_driving["jacobian"])


def test_relative_mode_moves_source_by_driving_displacement(frames):
    kp_source, kp_initial, kp_driving = frames
    result = normalize_keypoints(kp_source, kp_driving, kp_initial, mode="relative")
    # Every driving keypoint moved by (0.1, -0.3): the source's move by the same amount.
    assert torch.allclose(result["value"], kp_source["value"] + torch.tensor([0.1, -0.3]))
    # (J_D J_D0^-1) J_S = diag(2, 0.5) @ [[1, 1], [0, 1]] = [[2, 2], [0, 0.5]].
    expected = torch.tensor([[2.0, 2.0], [0.0, 0.5]]).expand(1, 4, 2, 2)
    assert torch.allclose(result["jacobian"], expected)


def test_relative_without_relative_jacobian_keeps_driving_jacobian(frames):
    kp_source, kp_initial, kp_driving = frames
    result = normalize_keypoints(
        kp_source, kp_driving, kp_initial, mode="relative", relative_jacobian=False
    )
    assert torch.equal(result["jacobian"], kp_driving["jacobian"])


def test_movement_scale_from_convex_hull_areas(frames):
    kp_source, kp_initial, kp_driving = frames
    # Source hull area 0.25, initial driving area 1.0 -> sqrt(0.25 / 1) = 0.5.
    assert movement_scale(kp_source["value"], kp_initial["value"]).item() == pytest.approx(0.5)
    result = normalize_keypoints(
        kp_source, kp_driving, kp_initial, mode="relative", adapt_movement_scale=True
    )
    assert torch.allclose(result["value"], kp_source["value"] + torch.tensor([0.05, -0.15]))


def test_degenerate_hull_falls_back_to_unit_scale():
    collinear = torch.tensor([[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]])
    assert movement_scale(collinear, square((0, 0), 1.0)[:, :3]).item() == 1.0


def test_relative_mode_needs_an_initial_frame(frames):
    kp_source, _, kp_driving = frames
    with pytest.raises(ValueError, match="initial"):
        normalize_keypoints(kp_source, kp_driving, None, mode="relative")
    with pytest.raises(ValueError):
        normalize_keypoints(kp_source, kp_driving, None, mode="sideways")


def test_singular_initial_jacobian_is_guarded(frames):
    kp_source, kp_initial, kp_driving = frames
    kp_initial["jacobian"][0, 0] = 0.0
    result = normalize_keypoints(kp_source, kp_driving, kp_initial, mode="relative")
    assert torch.isfinite(result["jacobian"]).all()
