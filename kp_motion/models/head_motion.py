"""Scripted head motion on a face's keypoints: a driving clip made from one still image.

The demo needs a driving video of a face that the project may distribute. Instead of frames of
a real recording, the face model's own keypoints of one photograph are moved by a script (nod,
turn, tilt) and the generator renders the photograph with them.

Each motion is an affine map of the keypoints about their centroid, the first-order view of a
rigid head turning in front of the camera:
    nod  (pitch): the face shortens vertically by cos(angle) and its centre moves by r sin(angle)
    turn (yaw):   the same horizontally
    tilt (roll):  a rotation in the image plane
where r is the keypoints' mean distance from their centroid. Positions x' = c + A (x - c) + d,
Jacobians J' = A J (the local motion around each keypoint turns with the head). Pure PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kp_motion.models.normalization import Keypoints
from kp_motion.names import HEAD_MOTIONS

# Peak angles in degrees: visible, and within what a face makes on a call.
PEAK_DEGREES = {"nod": 15.0, "turn": 25.0, "tilt": 12.0}
_AXIS = {"nod": "pitch", "turn": "yaw", "tilt": "roll"}  # the HeadPose field each one moves


@dataclass(frozen=True)
class HeadPose:
    """Angles in radians: pitch (nod, positive = chin down), yaw (turn), roll (tilt)."""

    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


def scripted_poses(motions: list[str], frames_per_motion: int) -> list[HeadPose]:
    """One pose per frame: each motion in turn, a full swing (rest, +peak, -peak, rest)."""
    unknown = [name for name in motions if name not in HEAD_MOTIONS]
    if unknown:
        known = ", ".join(HEAD_MOTIONS)
        raise ValueError(f"unknown motion(s) {', '.join(unknown)}; known: {known}")
    if frames_per_motion < 2:
        raise ValueError(f"frames per motion must be >= 2, got {frames_per_motion}")
    poses = []
    for name in motions:
        peak = math.radians(PEAK_DEGREES[name])
        for frame in range(frames_per_motion):
            angle = peak * math.sin(2 * math.pi * frame / frames_per_motion)
            poses.append(HeadPose(**{_AXIS[name]: angle}))
    poses.append(HeadPose())  # end at rest, as it started
    return poses



def pose_affine(pose: HeadPose, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (2, 2), d (2,)) of a pose, for keypoints spread `radius` around their centroid."""
    cos_roll, sin_roll = math.cos(pose.roll), math.sin(pose.roll)
    rotation = torch.tensor([[cos_roll, -sin_roll], [sin_roll, cos_roll]])
    foreshortening = torch.diag(torch.tensor([math.cos(pose.yaw), math.cos(pose.pitch)]))
    shift = torch.tensor([radius * math.sin(pose.yaw), radius * math.sin(pose.pitch)])
    return rotation @ foreshortening, shift


def move_keypoints(kp: Keypoints, poses: list[HeadPose]) -> Keypoints:
    """Keypoints of one frame ({"value": (1, K, 2), "jacobian": (1, K, 2, 2)}) moved by each
    pose: a batch of len(poses) frames."""
    positions, jacobians = kp["value"][0].float().cpu(), kp["jacobian"][0].float().cpu()
    centre = positions.mean(dim=0)
    radius = float((positions - centre).norm(dim=-1).mean())
    moved_positions, moved_jacobians = [], []
    for pose in poses:
        affine, shift = pose_affine(pose, radius)
        moved_positions.append(centre + (positions - centre) @ affine.T + shift)
        moved_jacobians.append(affine @ jacobians)
    return {"value": torch.stack(moved_positions), "jacobian": torch.stack(moved_jacobians)}
