"""Keypoint forecasting: VRNN, RNN and VAE forecasters over 60-value keypoint frames, the
hold-last and constant-velocity baselines, the block evaluation protocol and the streaming
receiver schedule. Pure PyTorch/numpy; the ROS nodes build on it.

    from kp_motion.forecasting import load_forecaster
    forecaster = load_forecaster("path/to/checkpoint")   # or "hold-last", "constant-velocity"
    forecaster.observe(frame)                            # raw (60,) values
    upcoming = forecaster.predict(5)                     # (5, 60) float32
"""

from kp_motion.forecasting.base import Forecaster, LearnedForecaster
from kp_motion.forecasting.baselines import ConstantVelocityForecaster, HoldLastForecaster
from kp_motion.forecasting.checkpoint import load_forecaster, save_checkpoint
from kp_motion.forecasting.protocol import block_indices, protocol_mse, run_protocol
from kp_motion.forecasting.schedule import EmittedFrame, Receiver, is_transmitted

__all__ = [
    "ConstantVelocityForecaster",
    "EmittedFrame",
    "Forecaster",
    "HoldLastForecaster",
    "LearnedForecaster",
    "Receiver",
    "block_indices",
    "is_transmitted",
    "load_forecaster",
    "protocol_mse",
    "run_protocol",
    "save_checkpoint",
]
