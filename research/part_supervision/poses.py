"""Where the parts of a synthetic dataset are: rebuilt from its manifest, served with each pair.

The synthetic scenes are deterministic, so a dataset's manifest (seed, config and per-video
seed and kind) is enough to rebuild every part's pose without storing it: `video_part_poses`
gives, per video, the local->image affine of every part (each rigid bone, each blob) in every
frame, (T, P, 2, 3) in image units [0, 1] (Scene.part_poses of kp_motion.data.synthetic_scenes).
`part_pose_targets` hands them to FramesDataset (its pair_targets hook) for the loss terms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from kp_motion.data.augmentation import Augmentation
from kp_motion.data.synthetic import GENERATOR_VERSION, MANIFEST_NAME
from kp_motion.data.synthetic_scenes import build_scene


def video_part_poses(root: str | Path, split: str) -> dict[str, np.ndarray]:
    """{video name: (T, P, 2, 3) part poses} for the videos of one split of a synthetic
    dataset; {} for a dataset without a manifest."""
    manifest = Path(root) / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    found = yaml.safe_load(manifest.read_text()) or {}
    version = found.get("generator_version")
    if version != GENERATOR_VERSION:
        raise ValueError(
            f"{manifest}: made by synthetic generator version {version}, this is version "
            f"{GENERATOR_VERSION}: its part poses cannot be rebuilt (run kp-motion synth again)"
        )
    config = found["config"]
    canvas = config["size"] * config["supersample"]
    poses = {}
    for video in found.get("videos", []):
        if video.get("split") == split:
            rng = np.random.default_rng(video["seed"])
            scene, _ = build_scene(video["kind"], rng, video["frames"], config["fps"], canvas)
            poses[video["name"]] = scene.part_poses()
    return poses


def training_part_poses(root: str | Path) -> dict[str, np.ndarray]:
    """The training split's part poses, or a clear error for a dataset that has none."""
    poses = video_part_poses(root, "train")
    if not poses:
        raise ValueError(
            f"the part terms need part poses: {root} has no {MANIFEST_NAME} with training "
            f"videos (a dataset made by kp-motion synth)"
        )
    return poses


def part_pose_targets(poses: dict[str, np.ndarray]):
    """A FramesDataset pair_targets function: "parts_source" and "parts_driving" (P_max, 2, 3)
    float32 and "parts_valid" (P_max,) bool of a pair, mirrored and time-reversed with its
    frames, padded to the most parts of any video so that batches stack. A video without
    known parts (or shorter poses than frames) gives no valid part."""
    max_parts = max((video.shape[1] for video in poses.values()), default=0)

    def targets(name: str, frame_pair: np.ndarray, drawn: Augmentation | None) -> dict:
        pair = np.zeros((2, max_parts, 2, 3), np.float32)
        valid = np.zeros(max_parts, bool)
        video_poses = poses.get(name)
        if video_poses is not None and frame_pair.max() < len(video_poses):
            count = video_poses.shape[1]
            pair[:, :count] = video_poses[frame_pair]
            valid[:count] = True
            if drawn is not None and drawn.flip:  # x -> 1 - x, as the image is mirrored
                pair[..., 0, :] *= -1
                pair[..., 0, 2] += 1.0
            if drawn is not None and drawn.reverse:
                pair = pair[::-1]
        return {
            "parts_source": torch.from_numpy(pair[0].copy()),
            "parts_driving": torch.from_numpy(pair[1].copy()),
            "parts_valid": torch.from_numpy(valid),
        }

    return targets
