"""Keypoint forecasting: VRNN, RNN and VAE forecasters over 60-value keypoint frames, linear
ones fit by least squares (linear-ar, direct-linear), the hold-last and constant-velocity
baselines, the block evaluation protocol (closed loop: closed_loop.py) and the streaming
receiver schedule. Pure PyTorch/numpy; the ROS nodes build on it.

    from kp_motion.forecasting import load_forecaster, load_forecaster_set, resolve_forecaster
    forecaster = load_forecaster("path/to/checkpoint")   # or "hold-last", "constant-velocity"
    forecaster = load_forecaster(resolve_forecaster("vox-256/direct-linear"))  # a shipped one
    forecaster.observe(frame)                            # raw (60,) values
    upcoming = forecaster.predict(5)                     # (5, 60) float32
    every_member = load_forecaster_set("vox-256")        # kind -> forecaster
"""

from kp_motion.forecasting.base import Forecaster, LearnedForecaster
from kp_motion.forecasting.baselines import ConstantVelocityForecaster, HoldLastForecaster
from kp_motion.forecasting.checkpoint import (
    FORECASTER_SETS,
    forecaster_set_folder,
    forecaster_set_members,
    load_forecaster,
    load_forecaster_set,
    resolve_forecaster,
    save_checkpoint,
)
from kp_motion.forecasting.protocol import block_indices, protocol_mse, run_protocol
from kp_motion.forecasting.schedule import EmittedFrame, Receiver, is_transmitted

__all__ = [
    "FORECASTER_SETS",
    "ConstantVelocityForecaster",
    "EmittedFrame",
    "Forecaster",
    "HoldLastForecaster",
    "LearnedForecaster",
    "Receiver",
    "block_indices",
    "forecaster_set_folder",
    "forecaster_set_members",
    "is_transmitted",
    "load_forecaster",
    "load_forecaster_set",
    "protocol_mse",
    "resolve_forecaster",
    "run_protocol",
    "save_checkpoint",
]
