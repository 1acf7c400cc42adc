"""The study's diagnostics: whether keypoints move with the parts, where the error lies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import tiny_model_config, write_tiny_model

from kp_motion.data import synthetic
from kp_motion.models import build_models
from kp_motion.models.animator import Animator
from kp_motion.training.samples import DIAGNOSTICS, mean_diagnostics, motion_diagnostics
from research.part_supervision.diagnostics import (
    GROUND_DIAGNOSTICS,
    PART_DIAGNOSTICS,
    ground_diagnostics,
    main,
    part_diagnostics,
    part_misses,
)

torch.set_num_threads(1)


def _poses(centres: np.ndarray) -> np.ndarray:
    """(T, P, 2) part centres -> (T, P, 2, 3) part poses that do not turn."""
    linear = np.broadcast_to(0.1 * np.eye(2), (*centres.shape[:2], 2, 2))
    return np.concatenate([linear, centres[..., None]], axis=-1)


def test_part_misses_score_how_well_the_best_keypoint_moves_with_each_part():
    frames = 5
    step = np.linspace(0, 0.2, frames)[:, None] * np.array([1.0, 0.5])  # (T, 2), image units
    # Part 0 moves along `step`, part 1 twice as far the other way, part 2 stays put.
    parts = _poses(np.stack([0.3 + step, 0.6 - 2 * step, np.full((frames, 2), 0.5)], axis=1))
    still = np.zeros((frames, 3, 2))  # keypoints in [-1, 1], so twice the image-unit motion
    assert part_misses(still, parts) == pytest.approx([1.0, 1.0])  # part 2 is not scored
    kp_driving = still.copy()
    kp_driving[:, 0] = -0.5 + 2 * step  # keypoint 0 moves exactly with part 0
    kp_driving[:, 2] = 0.2 - 2 * step  # keypoint 2 half as far as part 1
    assert part_misses(kp_driving, parts) == pytest.approx([0.0, 0.5])
    assert part_misses(kp_driving[:3], parts).shape == (2,)  # a video read in part
    with pytest.raises(ValueError, match="part poses cover 5 frames, the keypoints 6"):
        part_misses(np.zeros((6, 3, 2)), parts)


def test_the_command_scores_part_following_on_a_synthetic_dataset(tmp_path, capsys):
    checkpoint = write_tiny_model(tmp_path / "model")
    tiny = synthetic.SynthConfig(seed=1, size=32, num_train=1, num_test=2, num_frames=8,
                                 format="png", supersample=2)  # fmt: skip
    synthetic.generate_dataset(tiny, tmp_path / "synth", progress=False)
    status = main([str(tmp_path / "synth"), "--checkpoint", str(checkpoint), "--videos", "2",
                   "--device", "cpu"])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out.splitlines()
    overall = next(line for line in printed if line.startswith("all (2 videos)"))
    assert "parts followed" in overall and "keypoint miss / part motion" in overall
    assert "of the rendered L1" in overall and "of its motion from keypoints" in overall
    # A dataset without a synthetic manifest, a missing model: one line each, status 2.
    assert main([str(tmp_path), "--checkpoint", str(checkpoint)]) == 2
    assert "has no synthetic manifest" in capsys.readouterr().err
    assert main([str(tmp_path / "synth"), "--checkpoint", str(tmp_path / "absent")]) == 2
    error = capsys.readouterr().err.strip()
    assert "absent" in error and len(error.splitlines()) == 1


def test_motion_diagnostics_add_the_part_scores_when_parts_are_given():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = tiny_model_config()
    animator = Animator(*build_models(config, "cpu"), config, mode="absolute")
    video = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    moving_part = np.linspace(0.2, 0.6, 4)[:, None, None] * np.ones((1, 1, 2))
    poses = {"moving": _poses(moving_part), "still": _poses(np.full((4, 1, 2), 0.5))}
    more = part_diagnostics(poses)
    found = motion_diagnostics(animator, video, "moving", more)
    assert set(found) == set(DIAGNOSTICS) | set(PART_DIAGNOSTICS) | set(GROUND_DIAGNOSTICS)
    assert found["part_error"] >= 0 and found["parts_followed"] in (0.0, 1.0)
    assert 0 < found["rendered_ground"] < found["rendered"] and 0 <= found["ground_motion"] <= 1
    # No part moves: nothing to score, so no part keys (mean_diagnostics averages what is there).
    without = motion_diagnostics(animator, video, "still", more)
    assert set(without) == set(DIAGNOSTICS) | set(GROUND_DIAGNOSTICS)
    assert mean_diagnostics({"a": found, "b": without})["part_error"] == found["part_error"]
    # A video whose parts are not known: the core diagnostics only.
    assert set(motion_diagnostics(animator, video, "unknown", more)) == set(DIAGNOSTICS)


def test_ground_diagnostics_split_the_error_and_score_the_motion_of_the_ground():
    video = torch.zeros(2, 3, 8, 8)
    # A part 0.2 wide moving from (0.25, 0.25) to (0.75, 0.25); grown by the margin of 0.5 it
    # covers 2 x 2 of the 8 x 8 pixels (centres 0.19 and 0.31 on both axes in frame 0).
    poses = _poses(np.array([[[0.25, 0.25]], [[0.75, 0.25]]]))
    masks = torch.zeros(2, 3, 4, 4)
    masks[:, 0] = 1.0
    rendered = {"prediction": torch.full_like(video, 0.5), "mask": masks}
    found = ground_diagnostics(video, rendered, poses)
    assert found["rendered_ground"] == pytest.approx(0.5 * 60 / 64)
    assert found["ground_motion"] == 0
    # Half of every mask cell to keypoint 1: the ground's share is half, whichever cells of the
    # 4 x 4 masks the part leaves out (2 x 2 in each frame).
    masks[:, 0], masks[:, 1] = 0.5, 0.5
    assert ground_diagnostics(video, rendered, poses)["ground_motion"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="part poses cover 1 frames, the video 2"):
        ground_diagnostics(video, rendered, poses[:1])


