"""The First Order Motion Model (keypoint detector, dense motion, generator) in pure PyTorch.

Module and parameter names follow the FOMM reference, so the authors' vox-256, mgif-256 and
bair-256 checkpoints load with strict checks (checkpoint.load_reference_checkpoint).
"""

from kp_motion.models.animator import Animator, keypoints_from_values, keypoints_to_values
from kp_motion.models.checkpoint import (
    build_models,
    load_model,
    load_reference_checkpoint,
    model_id,
    save_checkpoint,
)
from kp_motion.models.generator import OcclusionAwareGenerator, SourceCache
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.models.model_config import ModelConfig, load_profile
from kp_motion.models.normalization import MotionMode, normalize_keypoints

__all__ = [
    "Animator",
    "KeypointDetector",
    "ModelConfig",
    "MotionMode",
    "OcclusionAwareGenerator",
    "SourceCache",
    "build_models",
    "keypoints_from_values",
    "keypoints_to_values",
    "load_model",
    "load_profile",
    "load_reference_checkpoint",
    "model_id",
    "normalize_keypoints",
    "save_checkpoint",
]
