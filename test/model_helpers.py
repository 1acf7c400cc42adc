"""The one tiny-model helper of the tests: a shipped profile shrunk to a few channels per layer,
and a checkpoint folder of it with random weights."""

from __future__ import annotations

from pathlib import Path

import torch

from kp_motion import config as config_io
from kp_motion.models.checkpoint import build_models, save_checkpoint
from kp_motion.models.model_config import ModelConfig, config_from_dict, load_profile

TINY_SIZE = 32
# A few channels per layer: a training step at batch 4 takes about 0.1 s on one core.
TINY_WIDTHS = {
    "kp_detector": {"block_expansion": 8, "max_features": 32, "num_blocks": 3,
                    "scale_factor": 0.5, "pad": 3},
    "dense_motion": {"block_expansion": 8, "max_features": 32, "num_blocks": 2,
                     "scale_factor": 0.5},
    "generator": {"block_expansion": 8, "max_features": 32, "num_down_blocks": 2,
                  "num_bottleneck_blocks": 1},
}  # fmt: skip
# Only the channel counts shrunk: the profile's layers, and so its weights' names, are kept.
NARROW_WIDTHS = {
    section: {"block_expansion": 4, "max_features": 16}
    for section in ("kp_detector", "dense_motion", "generator")
}


def tiny_model_config(
    profile: str = "vox-256",
    size: int | None = TINY_SIZE,
    widths: dict[str, dict] = TINY_WIDTHS,
    estimate_jacobian: bool = True,
    name: str = "tiny-test-32",
) -> ModelConfig:
    """`profile` with `widths` per section, `size` px frames (None: the profile's size)."""
    settings = config_io.to_dict(load_profile(profile))
    settings.update(name=name, estimate_jacobian=estimate_jacobian)
    if size is not None:
        settings["image_size"] = [size, size]
    for section, values in widths.items():
        settings[section].update(values)
    return config_from_dict(settings, where=f"tiny test profile from {profile}")


def write_tiny_model(folder: Path, config: ModelConfig | None = None, seed: int = 0) -> Path:
    """A checkpoint folder of randomly initialised models (`config`: tiny_model_config())."""
    config = config or tiny_model_config()
    torch.manual_seed(seed)
    return save_checkpoint(folder, config, *build_models(config))
