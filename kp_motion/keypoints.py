"""The 60-value keypoint frame: layout of Keypoint60 without any ROS dependency.

A frame holds K = 10 keypoints, each a position (x, y) in [-1, 1] and a 2x2 Jacobian.
The flat layout (shared by the ROS message, extracted sequences and the forecasters) is
positions first, keypoint-major, then Jacobians, keypoint-major and row-major:

    [x0, y0, ..., x9, y9, J0_00, J0_01, J0_10, J0_11, ..., J9_11]
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

NUM_KEYPOINTS = 10
POSITION_VALUES = NUM_KEYPOINTS * 2
NUM_VALUES = NUM_KEYPOINTS * 6  # 60


class Origin(IntEnum):
    """Where a frame's values came from; mirrors the ORIGIN_* constants of Keypoint60.msg."""

    DETECTED = 0
    PREDICTED = 1
    CONCEALED = 2


def pack(positions: np.ndarray, jacobians: np.ndarray) -> np.ndarray:
    """(..., K, 2) positions and (..., K, 2, 2) Jacobians -> (..., 6K) float32 values."""
    positions = np.asarray(positions, dtype=np.float32)
    jacobians = np.asarray(jacobians, dtype=np.float32)
    if positions.shape[-1] != 2 or jacobians.shape[-2:] != (2, 2):
        raise ValueError(
            f"expected positions (..., K, 2) and Jacobians (..., K, 2, 2), "
            f"got {positions.shape} and {jacobians.shape}"
        )
    if positions.shape[:-1] != jacobians.shape[:-2]:
        raise ValueError(
            f"positions {positions.shape} and Jacobians {jacobians.shape} disagree on K"
        )
    lead = positions.shape[:-2]
    return np.concatenate(
        [positions.reshape(*lead, -1), jacobians.reshape(*lead, -1)], axis=-1
    )


def unpack(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 6K) values -> ((..., K, 2) positions, (..., K, 2, 2) Jacobians)."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] % 6 != 0:
        raise ValueError(f"a keypoint frame has 6 values per keypoint, got {values.shape[-1]}")
    num_kp = values.shape[-1] // 6
    lead = values.shape[:-1]
    positions = values[..., : 2 * num_kp].reshape(*lead, num_kp, 2)
    jacobians = values[..., 2 * num_kp :].reshape(*lead, num_kp, 2, 2)
    return positions, jacobians
