"""The Jacobian guard: one rule, used wherever a keypoint Jacobian is inverted or produced.

First-order motion inverts the driving Jacobians (T(z) = kp_S + J_S J_D^-1 (z - kp_D)). A
forecaster can emit Jacobians that are singular, huge, NaN or Inf; inverted as they are, one
such matrix turns the whole rendered frame into NaN. The guard keeps every 2x2 Jacobian's
singular values inside [MIN_SINGULAR_VALUE, MAX_SINGULAR_VALUE] (which bounds |det| and the
condition number, and keeps the sign of the determinant) and replaces non-finite matrices
with the identity. Positions get the same treatment: non-finite -> 0, clamped to
[-POSITION_LIMIT, POSITION_LIMIT].

Everything here is pure PyTorch; it returns how many entries it had to correct so that
callers can count and report corrections.
"""

from __future__ import annotations

import torch

MIN_SINGULAR_VALUE = 0.05
MAX_SINGULAR_VALUE = 20.0
POSITION_LIMIT = 1.5


def guard_jacobians(
    jacobians: torch.Tensor,
    min_singular_value: float = MIN_SINGULAR_VALUE,
    max_singular_value: float = MAX_SINGULAR_VALUE,
) -> tuple[torch.Tensor, int]:
    """Return (safe Jacobians, number of 2x2 matrices corrected) for a (..., 2, 2) tensor."""
    if jacobians.shape[-2:] != (2, 2):
        raise ValueError(f"expected (..., 2, 2) Jacobians, got {tuple(jacobians.shape)}")
    finite = torch.isfinite(jacobians).all(dim=-1).all(dim=-1)
    identity = torch.eye(2, dtype=jacobians.dtype, device=jacobians.device)
    safe_input = torch.where(finite[..., None, None], jacobians, identity)
    # The repair runs without autograd: the SVD's gradient is NaN wherever the two singular
    # values are equal (the identity, which an untrained detector outputs). Jacobians that
    # pass the check keep their gradient; repaired ones are constants.
    with torch.no_grad():
        # SVD in float32 at least: half-precision SVD is not supported everywhere.
        work = safe_input.float()
        left, singular, right_t = torch.linalg.svd(work)
        in_range = (singular >= min_singular_value) & (singular <= max_singular_value)
        needs_fix = ~in_range.all(dim=-1)
        clamped = singular.clamp(min_singular_value, max_singular_value)
        repaired = ((left * clamped[..., None, :]) @ right_t).to(jacobians.dtype)
    result = torch.where(needs_fix[..., None, None], repaired, safe_input)
    corrected = int((~finite | needs_fix).sum().item())
    return result, corrected


def guard_positions(
    positions: torch.Tensor, limit: float = POSITION_LIMIT
) -> tuple[torch.Tensor, int]:
    """Return (finite positions clamped to [-limit, limit], number of keypoints corrected)."""
    finite = torch.isfinite(positions)
    safe = torch.where(finite, positions, torch.zeros_like(positions))
    clamped = safe.clamp(-limit, limit)
    changed = (~finite | (clamped != safe)).any(dim=-1)
    return clamped, int(changed.sum().item())


class GuardCounter:
    """Running totals of guard corrections, for logs, reports and diagnostics."""

    def __init__(self) -> None:
        self.jacobians = 0
        self.positions = 0

    def jacobians_checked(self, jacobians: torch.Tensor) -> torch.Tensor:
        safe, corrected = guard_jacobians(jacobians)
        self.jacobians += corrected
        return safe

    def positions_checked(self, positions: torch.Tensor) -> torch.Tensor:
        safe, corrected = guard_positions(positions)
        self.positions += corrected
        return safe

    def as_dict(self) -> dict[str, int]:
        return {"jacobians_corrected": self.jacobians, "positions_corrected": self.positions}
