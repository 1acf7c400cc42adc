"""Whether a model's keypoints move with the parts of a synthetic dataset, and where its error
lies: `kp-motion samples`'s diagnostics plus four that need the part poses.

    part_error       median over the moving parts of how far the best-following keypoint's
                     displacement is from the part's, over the part's own displacement
                     (0 = a keypoint moves exactly with the part, 1 = no better than a still one)
    parts_followed   the share of moving parts with part_error below PART_FOLLOWED
    rendered_ground  the ground's share of the rendered L1 (the ground: the pixels no part
                     covers, losses.part_coverage, in the driving frame; the rest is on the parts)
    ground_motion    the share of the ground's dense-motion mask held by keypoint motions rather
                     than the background's identity (losses.background_mask; the ground of
                     either frame): on a static background, motion that drags the ground along

    python -m research.part_supervision.diagnostics DATASET [--checkpoint MODEL] [--split test]
        [--videos 40] [--max-frames 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from kp_motion.data.datasets import VideoDataset
from kp_motion.data.synthetic import video_kinds
from kp_motion.models.animator import Animator
from kp_motion.models.checkpoint import load_model, resolve_checkpoint, resolve_device
from kp_motion.training.samples import group_videos, mean_diagnostics, video_diagnostics
from research.part_supervision.losses import (
    PART_MARGIN,
    PART_MIN_MOTION,
    background_mask,
    part_coverage,
)
from research.part_supervision.poses import video_part_poses

PART_DIAGNOSTICS = ("part_error", "parts_followed")
GROUND_DIAGNOSTICS = ("rendered_ground", "ground_motion")
PART_FOLLOWED = 0.5


def part_misses(kp_driving: np.ndarray, part_poses: np.ndarray) -> np.ndarray:
    """For each part that moves, how badly the keypoint that follows it best misses its motion.

    kp_driving (T, K, 2) keypoints in [-1, 1]; part_poses (T, P, 2, 3) local->image affines in
    normalised image units [0, 1], whose last column is the part's centre. Displacements are
    from frame 0, so where on the part a keypoint sits does not matter, only that it moves
    with it. -> (moving parts,) mean |d_keypoint - d_part| / mean |d_part|.
    """
    if part_poses.shape[0] < kp_driving.shape[0]:
        raise ValueError(
            f"part poses cover {part_poses.shape[0]} frames, the keypoints {kp_driving.shape[0]}"
        )
    part_centres = part_poses[: kp_driving.shape[0], :, :, 2]
    kp_moved = (kp_driving - kp_driving[:1]) / 2  # [-1, 1] -> [0, 1] units
    part_moved = part_centres - part_centres[:1]
    part_motion = np.linalg.norm(part_moved, axis=-1).mean(0)  # (P,)
    miss = np.linalg.norm(kp_moved[:, :, None] - part_moved[:, None], axis=-1).mean(0)  # (K, P)
    moving = part_motion >= PART_MIN_MOTION
    return miss.min(0)[moving] / part_motion[moving]


def ground_diagnostics(
    video: torch.Tensor, rendered: dict[str, torch.Tensor], part_poses: np.ndarray
) -> dict[str, float]:
    """The GROUND_DIAGNOSTICS of one (T, 3, H, W) video rendered from its first frame
    (`rendered`: the generator's full outputs) with its (T', P, 2, 3) part poses, T' >= T."""
    if part_poses.shape[0] < len(video):
        raise ValueError(f"part poses cover {part_poses.shape[0]} frames, the video {len(video)}")
    poses = torch.as_tensor(part_poses[: len(video)], dtype=video.dtype, device=video.device)
    every_part = torch.ones(poses.shape[:2], dtype=torch.bool, device=video.device)
    ground = ~part_coverage(poses, every_part, *video.shape[-2:], PART_MARGIN)  # (T, H, W)
    error = (rendered["prediction"] - video).abs().mean(dim=1)
    from_source = poses[:1].expand_as(poses)
    return {
        "rendered_ground": float((error * ground).mean()),
        "ground_motion": float(
            background_mask(rendered["mask"], from_source, poses, every_part, PART_MARGIN)
        ),
    }


def part_diagnostics(poses: dict[str, np.ndarray]):
    """The `more` function of training.samples.video_diagnostics: for a video with known part
    poses, the GROUND_DIAGNOSTICS, and the PART_DIAGNOSTICS when a part moves."""

    def more(name: str, video: torch.Tensor, detected: dict, rendered: dict) -> dict[str, float]:
        video_poses = poses.get(name)
        if video_poses is None:
            return {}
        found = ground_diagnostics(video, rendered, video_poses)
        errors = part_misses(detected["value"].cpu().numpy(), video_poses)
        if len(errors):
            found["part_error"] = float(np.median(errors))
            found["parts_followed"] = float(np.mean(errors < PART_FOLLOWED))
        return found

    return more


def diagnostics_text(found: dict[str, float]) -> str:
    text = (
        f"rendered {found['rendered']:.4f}, still {found['still']:.4f}, warped "
        f"{found['warped']:.4f}, self {found['self']:.4f}, spread {found['heatmap_spread']:.3f}, "
        f"in use {found['keypoints_in_use']:.1f}"
    )
    if "part_error" in found:
        text += (
            f"; parts followed {found['parts_followed']:.0%} "
            f"(keypoint miss / part motion {found['part_error']:.2f})"
        )
    if "rendered_ground" in found:
        text += (
            f"; ground: {found['rendered_ground']:.4f} of the rendered L1, "
            f"{found['ground_motion']:.1%} of its motion from keypoints"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    """Bad input (a dataset without part poses, a missing model) is one line and status 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a dataset made by kp-motion synth")
    parser.add_argument("--checkpoint", default="fomm-compact-64")
    parser.add_argument("--split", default="test")
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--device")
    args = parser.parse_args(argv)
    try:
        report(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"part_supervision.diagnostics: error: {error}", file=sys.stderr)
        return 2
    return 0


def report(args: argparse.Namespace) -> None:
    poses = video_part_poses(args.dataset, args.split)  # checked before the model is loaded
    if not poses:
        raise ValueError(f"{args.dataset} has no synthetic manifest with {args.split} videos")
    device = resolve_device(args.device)
    config, kp_detector, generator = load_model(resolve_checkpoint(args.checkpoint), device)
    dataset = VideoDataset(
        args.dataset, args.split, size=config.image_size[0], max_frames=args.max_frames
    )
    animator = Animator(kp_detector, generator, config, mode="absolute")
    per_video = video_diagnostics(animator, dataset, args.videos, part_diagnostics(poses))
    print(f"all ({len(per_video)} videos): {diagnostics_text(mean_diagnostics(per_video))}")
    for kind, videos in group_videos(per_video, video_kinds(args.dataset)).items():
        print(f"  {kind} ({len(videos)} videos): {diagnostics_text(mean_diagnostics(videos))}")


if __name__ == "__main__":
    sys.exit(main())
