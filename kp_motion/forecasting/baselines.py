"""Baselines every learned forecaster has to beat: hold the last frame, or extrapolate it with
constant velocity. Both work directly on raw values (no training, no statistics)."""

from __future__ import annotations

import numpy as np

from kp_motion.forecasting.base import Forecaster
from kp_motion.keypoints import NUM_KEYPOINTS, pack
from kp_motion.names import CONSTANT_VELOCITY, HOLD_LAST


def rest_frame() -> np.ndarray:
    """The neutral frame used before anything was observed: keypoints at 0, identity Jacobians."""
    positions = np.zeros((NUM_KEYPOINTS, 2), np.float32)
    jacobians = np.broadcast_to(np.eye(2, dtype=np.float32), (NUM_KEYPOINTS, 2, 2))
    return pack(positions, jacobians)


class HoldLastForecaster(Forecaster):
    """Repeats the last observed (or predicted) frame."""

    name = HOLD_LAST

    def __init__(self) -> None:
        super().__init__()
        self._last: np.ndarray | None = None

    def _observe(self, frame: np.ndarray) -> None:
        self._last = frame.copy()

    def _predict_next(self, sample: bool) -> np.ndarray:
        frame = rest_frame() if self._last is None else self._last
        self._last = self.sanitizer(frame).copy()
        return self._last.copy()

    def _reset(self) -> None:
        self._last = None


class ConstantVelocityForecaster(Forecaster):
    """x_{t+1} = x_t + (x_t - x_{t-1}) on all 60 values; velocity 0 after a single frame.

    Predicted frames are committed like observed ones, so a run of predictions continues the
    same straight line (until the sanitiser has to clamp it).
    """

    name = CONSTANT_VELOCITY

    def __init__(self) -> None:
        super().__init__()
        self._last: np.ndarray | None = None
        self._previous: np.ndarray | None = None

    def _observe(self, frame: np.ndarray) -> None:
        self._previous, self._last = self._last, frame.copy()

    def _predict_next(self, sample: bool) -> np.ndarray:
        if self._last is None:
            proposal = rest_frame()
        elif self._previous is None:
            proposal = self._last
        else:
            proposal = 2.0 * self._last - self._previous
        safe = self.sanitizer(proposal).copy()
        self._previous, self._last = self._last, safe
        return safe.copy()

    def _reset(self) -> None:
        self._last = None
        self._previous = None


BASELINES: dict[str, type[Forecaster]] = {
    HoldLastForecaster.name: HoldLastForecaster,
    ConstantVelocityForecaster.name: ConstantVelocityForecaster,
}
