"""The part poses: rebuilt from a synthetic dataset's manifest, served with each pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kp_motion.data import synthetic, video_io
from kp_motion.data.augmentation import AugmentationConfig
from kp_motion.data.datasets import FramesDataset
from kp_motion.data.synthetic_scenes import build_scene
from research.part_supervision.poses import part_pose_targets, video_part_poses

TINY = synthetic.SynthConfig(
    seed=7, size=32, num_train=2, num_test=2, num_frames=6, format="png", supersample=2
)


def test_video_part_poses_follow_the_manifest(tmp_path: Path) -> None:
    assert video_part_poses(tmp_path, "test") == {}  # no manifest
    synthetic.generate_dataset(TINY, tmp_path, progress=False)
    poses = video_part_poses(tmp_path, "test")
    specs = [spec for spec in synthetic.plan_videos(TINY) if spec.split == "test"]
    assert sorted(poses) == sorted(spec.name for spec in specs)
    canvas = TINY.size * TINY.supersample
    for spec in specs:
        rng = np.random.default_rng(spec.seed)
        scene, _ = build_scene(spec.kind, rng, TINY.num_frames, TINY.fps, canvas)
        assert np.array_equal(poses[spec.name], scene.part_poses())
    manifest = tmp_path / synthetic.MANIFEST_NAME
    current = f"generator_version: {synthetic.GENERATOR_VERSION}"
    manifest.write_text(manifest.read_text().replace(current, "generator_version: -1"))
    with pytest.raises(ValueError, match="generator version -1.*cannot be rebuilt"):
        video_part_poses(tmp_path, "test")



def test_part_poses_come_from_the_pairs_frames_and_are_augmented_with_them(tmp_path: Path) -> None:
    # Frame t is grey at level 8 t (which frames a pair took); part 0 of the video sits at
    # x = t / 100 in frame t, turned by t / 10 radians; part 1 stays put. Another video's three
    # parts set the padding.
    frames = np.stack([np.full((16, 16, 3), 8 * t, dtype=np.uint8) for t in range(30)])
    video_io.write_video(tmp_path / "train" / "ramp", frames)
    video_io.write_video(tmp_path / "train" / "unknown", frames[:4])
    times = np.arange(30)
    cos, sin = np.cos(times / 10), np.sin(times / 10)
    turning = np.stack([np.stack([cos, -sin, times / 100], -1),
                        np.stack([sin, cos, np.full(30, 0.5)], -1)], 1)  # fmt: skip
    still = np.tile(np.array([[0.1, 0.0, 0.25], [0.0, 0.1, 0.25]]), (30, 1, 1))
    ramp_poses = np.stack([turning, still], 1)  # (30, 2, 2, 3)
    poses = {"ramp": ramp_poses, "elsewhere": np.zeros((30, 3, 2, 3))}
    flip_and_reverse = AugmentationConfig(
        horizontal_flip=1.0, time_flip=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0
    )
    dataset = FramesDataset(tmp_path, "train", size=16, repeats=20, seed=3,
                            augmentation=flip_and_reverse,
                            pair_targets=part_pose_targets(poses))  # fmt: skip
    mirror = np.diag([-1.0, 1.0])
    for index in range(len(dataset)):
        item = dataset[index]
        if item["name"] == "unknown":
            assert not item["parts_valid"].any()
            continue
        assert item["parts_valid"].tolist() == [True, True, False]
        picked = {key: round(float(item[key].mean()) * 255 / 8) for key in ("source", "driving")}
        assert picked["source"] > picked["driving"]  # time-reversed: the later frame is the source
        for key, frame in picked.items():
            expected = mirror @ ramp_poses[frame]  # x -> -x, then the centre's x -> 1 - x
            expected[:, 0, 2] += 1.0
            np.testing.assert_allclose(item[f"parts_{key}"][:2].numpy(), expected, atol=1e-6)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["parts_source"].shape == (4, 3, 2, 3) and batch["parts_valid"].dtype == torch.bool
