"""Random smooth warps (affine + thin-plate spline) for the keypoint equivariance loss.

A warp T maps coordinates of the *warped* frame to coordinates of the *original* frame, both in
the keypoint convention (x, y) in [-1, 1] with -1 and 1 at the centres of the border pixels
(the convention of a linspace(-1, 1) grid, hence `align_corners=True` when sampling):

    warped_frame(z) = frame(T(z))

so a point that sits at p in the original frame appears at z with T(z) = p in the warped one.
T is an affine map plus a thin-plate-spline term on a regular grid of control points c_i:

    T(z) = A z + b + sum_i w_i U(|z - c_i|),   U(r) = r^2 log r

(one weight vector w_i in R^2 per control point, so x and y bend independently). Its Jacobian
dT/dz is computed in closed form, which keeps it exact and differentiable with respect to the
points it is evaluated at (the detected keypoints of the warped frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kp_motion.models.blocks import make_coordinate_grid

# Floor for r^2 inside the logarithm: U and its gradient are r^2 log r and (log r^2 + 1)(z - c),
# which tend to 0 at the control point itself; the floor only avoids log(0) there.
_MIN_SQUARED_DISTANCE = 1e-12


def control_point_grid(
    points_per_side: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """(N, 2) regular grid of TPS control points covering [-1, 1]^2, N = points_per_side^2."""
    if points_per_side < 2:
        raise ValueError(f"the TPS needs at least 2 control points per side, got {points_per_side}")
    return make_coordinate_grid(points_per_side, points_per_side, dtype, device).reshape(-1, 2)


class AffineTpsWarp:
    """A batch of warps T_b(z) = A_b z + b_b + sum_i w_bi U(|z - c_i|), see the module docstring.

    affine: (B, 2, 3) rows [A | b]; control_points: (N, 2); control_weights: (B, N, 2).
    """

    def __init__(
        self,
        affine: torch.Tensor,
        control_points: torch.Tensor,
        control_weights: torch.Tensor,
    ) -> None:
        if affine.dim() != 3 or affine.shape[1:] != (2, 3):
            raise ValueError(f"affine parameters must be (B, 2, 3), got {tuple(affine.shape)}")
        if control_points.dim() != 2 or control_points.shape[1] != 2:
            raise ValueError(f"control points must be (N, 2), got {tuple(control_points.shape)}")
        expected = (affine.shape[0], control_points.shape[0], 2)
        if tuple(control_weights.shape) != expected:
            raise ValueError(
                f"control weights must be (B, N, 2) = {expected}, "
                f"got {tuple(control_weights.shape)}"
            )
        self.affine = affine
        self.control_points = control_points
        self.control_weights = control_weights

    @property
    def batch_size(self) -> int:
        return self.affine.shape[0]

    @classmethod
    def identity(
        cls,
        batch_size: int,
        points_per_side: int = 5,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
    ) -> AffineTpsWarp:
        """The warp T(z) = z for every batch element."""
        affine = torch.zeros(batch_size, 2, 3, dtype=dtype, device=device)
        affine[:, 0, 0] = 1.0
        affine[:, 1, 1] = 1.0
        points = control_point_grid(points_per_side, dtype, device)
        weights = torch.zeros(batch_size, points.shape[0], 2, dtype=dtype, device=device)
        return cls(affine, points, weights)

    @classmethod
    def random(
        cls,
        batch_size: int,
        sigma_affine: float,
        sigma_tps: float,
        points_per_side: int = 5,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> AffineTpsWarp:
        """Identity plus Gaussian noise: N(0, sigma_affine) on [A | b], N(0, sigma_tps) on w.

        The noise is drawn on the CPU (from `generator`, or the global CPU generator) so that a
        seed gives the same warps on every device.
        """
        if sigma_affine < 0 or sigma_tps < 0:
            raise ValueError(
                f"warp noise levels must be >= 0, got sigma_affine={sigma_affine}, "
                f"sigma_tps={sigma_tps}"
            )
        warp = cls.identity(batch_size, points_per_side, dtype, device)
        affine_noise = torch.randn(batch_size, 2, 3, generator=generator) * sigma_affine
        weight_noise = (
            torch.randn(tuple(warp.control_weights.shape), generator=generator) * sigma_tps
        )
        return cls(
            warp.affine + affine_noise.to(device=device, dtype=dtype),
            warp.control_points,
            weight_noise.to(device=device, dtype=dtype),
        )

    def is_identity(self) -> bool:
        """True when every warp of the batch is exactly T(z) = z."""
        identity = torch.zeros_like(self.affine)
        identity[:, 0, 0] = 1.0
        identity[:, 1, 1] = 1.0
        return bool(torch.equal(self.affine, identity)) and not bool(self.control_weights.any())

    def _offsets(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z - c_i) as (B, P, N, 2) and |z - c_i|^2 (floored) as (B, P, N)."""
        offsets = points[:, :, None, :] - self.control_points[None, None, :, :]
        squared = (offsets**2).sum(dim=-1).clamp_min(_MIN_SQUARED_DISTANCE)
        return offsets, squared

    def _check_points(self, points: torch.Tensor) -> None:
        if points.dim() != 3 or points.shape[-1] != 2 or points.shape[0] != self.batch_size:
            raise ValueError(
                f"points must be (B={self.batch_size}, P, 2), got {tuple(points.shape)}"
            )

    def warp_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """T(z) for (B, P, 2) points -> (B, P, 2)."""
        self._check_points(points)
        linear = self.affine[:, :, :2]
        translation = self.affine[:, :, 2]
        affine_part = torch.einsum("bij,bpj->bpi", linear, points) + translation[:, None, :]
        _, squared = self._offsets(points)
        # U(r) = r^2 log r = 0.5 r^2 log r^2 (~1e-11 at a control point, thanks to the floor).
        radial = 0.5 * squared * torch.log(squared)
        bending = torch.einsum("bpn,bnk->bpk", radial, self.control_weights)
        return affine_part + bending

    def jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """dT/dz at (B, P, 2) points -> (B, P, 2, 2), rows = output coordinate (x, y)."""
        self._check_points(points)
        linear = self.affine[:, None, :, :2].expand(-1, points.shape[1], -1, -1)
        offsets, squared = self._offsets(points)
        # grad_z U(|z - c|) = (log r^2 + 1) (z - c); d T_k / d z_j = sum_i w_ik * that_j.
        radial_gradient = (torch.log(squared) + 1.0)[..., None] * offsets
        bending = torch.einsum("bnk,bpnj->bpkj", self.control_weights, radial_gradient)
        return linear + bending

    def warp_frame(self, frames: torch.Tensor) -> torch.Tensor:
        """warped(z) = frames(T(z)) for (B, C, H, W) frames (bilinear, reflected borders).

        The identity warp returns the frames untouched: bilinear resampling at the pixel
        centres would reproduce them only up to float rounding (~1e-6), and the identity must
        be exact (the equivariance loss is then exactly zero).
        """
        if frames.dim() != 4 or frames.shape[0] != self.batch_size:
            raise ValueError(
                f"frames must be (B={self.batch_size}, C, H, W), got {tuple(frames.shape)}"
            )
        if self.is_identity():
            return frames
        height, width = frames.shape[-2:]
        grid = make_coordinate_grid(height, width, frames.dtype, frames.device)
        points = grid.reshape(1, -1, 2).expand(self.batch_size, -1, -1)
        sample_at = self.warp_coordinates(points).reshape(self.batch_size, height, width, 2)
        return F.grid_sample(
            frames, sample_at, mode="bilinear", padding_mode="reflection", align_corners=True
        )
