"""Shared helpers of the training tests (test/test_train_*.py): a tiny dataset and settings
(the tiny model comes from model_helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from model_helpers import TINY_SIZE, tiny_model_config

from kp_motion import config as config_io
from kp_motion.data.video_io import write_video
from kp_motion.training.settings import TrainFommConfig, load_train_config, settings_from_dict

__all__ = ["make_tiny_dataset", "tiny_model_config", "tiny_train_config"]


def make_tiny_dataset(
    root: Path, train_videos: int = 4, test_videos: int = 2, frames: int = 8, seed: int = 0
) -> Path:
    """First-order-model layout of PNG-frame videos: a coloured disc moving over a gradient."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:TINY_SIZE, 0:TINY_SIZE].astype(np.float32) / (TINY_SIZE - 1)
    for split, count in (("train", train_videos), ("test", test_videos)):
        for index in range(count):
            colour = rng.uniform(0.3, 1.0, size=3)
            background = rng.uniform(0.0, 0.4, size=3)
            start, velocity = rng.uniform(0.3, 0.7, size=2), rng.uniform(-0.04, 0.04, size=2)
            video = []
            for t in range(frames):
                cx, cy = start + velocity * t
                disc = (((xs - cx) ** 2 + (ys - cy) ** 2) < 0.04)[..., None]
                image = background * (0.5 + 0.5 * xs[..., None]) * ~disc + colour * disc
                video.append((image * 255).astype(np.uint8))
            write_video(root / split / f"video{index}", np.stack(video))
    return root


def tiny_train_config(**changes) -> TrainFommConfig:
    """The shipped training settings, shrunk for tests (overrides as keyword arguments)."""
    settings = config_io.to_dict(load_train_config())
    settings.update(
        profile="unused-the-tests-pass-a-model-config",
        epochs=2,
        batch_size=4,
        log_every=1,
        checkpoint_every=0,
    )
    settings["data"].update(repeats=2, num_workers=0)
    settings["validation"].update(max_videos=2, max_frames=4, batch_size=4)
    settings.update(changes)
    return settings_from_dict(settings, where="tiny train config")
