"""The Jacobian guard: bounds, non-finite input, counts, and gradients."""

import torch

from kp_motion.jacobian import (
    MAX_SINGULAR_VALUE,
    MIN_SINGULAR_VALUE,
    GuardCounter,
    guard_jacobians,
    guard_positions,
)


def test_well_conditioned_jacobians_pass_unchanged():
    jacobians = torch.tensor([[[1.0, 0.2], [-0.1, 0.9]], [[2.0, 0.0], [0.0, 0.5]]])
    safe, corrected = guard_jacobians(jacobians)
    assert corrected == 0
    assert torch.equal(safe, jacobians)


def test_singular_huge_and_nan_jacobians_are_repaired_and_counted():
    jacobians = torch.tensor(
        [
            [[1.0, 1.0], [1.0, 1.0]],  # singular
            [[100.0, 0.0], [0.0, 1.0]],  # too large
            [[float("nan"), 0.0], [0.0, 1.0]],  # not finite
            [[float("inf"), 0.0], [0.0, 1.0]],
            [[1.0, 0.0], [0.0, 1.0]],  # fine
        ]
    )
    safe, corrected = guard_jacobians(jacobians)
    assert corrected == 4
    assert torch.isfinite(safe).all()
    singular_values = torch.linalg.svdvals(safe)
    assert (singular_values >= MIN_SINGULAR_VALUE - 1e-5).all()
    assert (singular_values <= MAX_SINGULAR_VALUE + 1e-4).all()
    assert torch.equal(safe[2], torch.eye(2))
    assert torch.equal(safe[4], torch.eye(2))
    # Safe Jacobians invert to finite matrices.
    assert torch.isfinite(torch.linalg.inv(safe)).all()


def test_reflections_keep_their_sign():
    mirror = torch.tensor([[[-1.0, 0.0], [0.0, 1e-4]]])
    safe, corrected = guard_jacobians(mirror)
    assert corrected == 1
    assert torch.linalg.det(safe)[0] < 0


def test_gradient_is_finite_at_the_identity():
    """An untrained detector outputs identity Jacobians; SVD's gradient is NaN there."""
    jacobians = torch.eye(2).repeat(3, 1, 1).requires_grad_()
    safe, _ = guard_jacobians(jacobians)
    safe.sum().backward()
    assert torch.isfinite(jacobians.grad).all()
    assert torch.equal(jacobians.grad, torch.ones_like(jacobians))


def test_positions_guard_and_counter():
    positions = torch.tensor([[0.5, -0.2], [float("nan"), 0.0], [3.0, 0.0]])
    safe, corrected = guard_positions(positions)
    assert corrected == 2
    assert torch.equal(safe, torch.tensor([[0.5, -0.2], [0.0, 0.0], [1.5, 0.0]]))
    counter = GuardCounter()
    counter.positions_checked(positions)
    counter.jacobians_checked(torch.zeros(2, 2, 2))
    assert counter.as_dict() == {"jacobians_corrected": 2, "positions_corrected": 2}
