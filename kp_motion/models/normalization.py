"""Keypoint normalisation for motion transfer (driving person != source person).

Absolute mode uses the driving keypoints as they are, which also transfers the driving face's
shape and position. Relative mode transfers only the motion since the first driving frame:

    value    = kp_S + s * (kp_D - kp_D0)
    jacobian = (J_D J_D0^-1) J_S            (when relative Jacobians are on)

with s = sqrt(area(hull(kp_S)) / area(hull(kp_D0))) when the movement scale is adapted (a
small face in the source moves less than a big one in the driving video), otherwise 1.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch

from kp_motion.jacobian import GuardCounter
from kp_motion.models.blocks import guarded_jacobians

Keypoints = dict[str, torch.Tensor]


class MotionMode(str, Enum):
    RELATIVE = "relative"
    ABSOLUTE = "absolute"


def hull_area(positions: np.ndarray) -> float:
    """Area of the convex hull of (K, 2) points; 0 when they are (nearly) collinear."""
    from scipy.spatial import ConvexHull, QhullError

    if positions.shape[0] < 3 or not np.isfinite(positions).all():
        return 0.0
    try:
        return float(ConvexHull(positions).volume)  # in 2D, 'volume' is the area
    except QhullError:
        return 0.0


def movement_scale(source_positions: torch.Tensor, initial_positions: torch.Tensor) -> torch.Tensor:
    """(B,) sqrt(source hull area / initial driving hull area), 1 where a hull is degenerate."""
    source_np = source_positions.detach().double().cpu().numpy()
    initial_np = initial_positions.detach().double().cpu().numpy()
    scales = []
    for source_points, initial_points in zip(source_np, initial_np, strict=True):
        source_area, initial_area = hull_area(source_points), hull_area(initial_points)
        # A degenerate hull gives no usable size ratio: keep the motion at its own scale.
        usable = source_area > 0 and initial_area > 0
        scales.append(np.sqrt(source_area / initial_area) if usable else 1.0)
    return torch.tensor(scales, dtype=source_positions.dtype, device=source_positions.device)


def relative_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    scale: torch.Tensor | float = 1.0,
    relative_jacobian: bool = True,
    guard: GuardCounter | None = None,
) -> Keypoints:
    """Transfer the driving motion since kp_driving_initial onto kp_source (see module doc)."""
    guard = guard if guard is not None else GuardCounter()
    if isinstance(scale, torch.Tensor):
        scale = scale.view(-1, 1, 1)
    displacement = kp_driving["value"] - kp_driving_initial["value"]
    values = kp_source["value"] + scale * displacement
    jacobians = kp_driving["jacobian"]
    if relative_jacobian:
        # J_D0 is inverted: guard it (and J_D, which is multiplied in) first.
        initial = guarded_jacobians(kp_driving_initial["jacobian"], guard)
        current = guarded_jacobians(jacobians, guard)
        jacobians = current @ torch.inverse(initial) @ kp_source["jacobian"]
    return {"value": values, "jacobian": jacobians}


def normalize_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints | None,
    mode: MotionMode | str = MotionMode.RELATIVE,
    adapt_movement_scale: bool = False,
    relative_jacobian: bool = True,
    guard: GuardCounter | None = None,
) -> Keypoints:
    """The keypoints to render with: absolute (driving as is) or relative to the initial frame."""
    mode = MotionMode(mode)
    if mode is MotionMode.ABSOLUTE:
        return {"value": kp_driving["value"], "jacobian": kp_driving["jacobian"]}
    if kp_driving_initial is None:
        raise ValueError("relative motion needs the initial driving keypoints")
    scale = (
        movement_scale(kp_source["value"], kp_driving_initial["value"])
        if adapt_movement_scale
        else 1.0
    )
    return relative_keypoints(
        kp_source, kp_driving, kp_driving_initial, scale, relative_jacobian, guard
    )
