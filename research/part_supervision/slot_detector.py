"""Experiment: can the detector alone learn to put keypoint k on part k (the `slot` match of
losses.part_following) well enough for the generator to draw far-swept robot arms?
docs/research/part-supervision.md reports what it measured.

The detector of a model is trained without its generator on a synthetic dataset: the slot term
(keypoint k's distance to part k's centre in both frames of a pair, plus its Jacobian term) and
FOMM's equivariance terms (the slot weights are options; the equivariance ones and the warp
are config/train_fomm.yaml's, as are the pair sampling and colour jitter). The
detector may be run at another input scale than its profile's (`--scale 1`: full resolution;
the weights are the same, only the anti-alias filter of the downscale goes). It is judged on
the test videos, which it never saw:

    miss    per kind: keypoint k's mean distance to part k's centre, px, over the first 32
            frames (parts from K on, and parts that never move, not scored);
    drift   per arm part: how far keypoint k is from where it would be if it were fixed to
            part k at its frame-0 offset, px, mean over frames 1..31; what rendering from
            frame 0 needs. The `oracle-noisy` run of oracle_keypoints.py erased the arms
            with 3.3 px of per-frame noise. Also "in frame": only the frames in which the
            part's centre is inside the picture (and was in frame 0); the far parts of some
            test arms leave it for part of the clip.
    turn    per arm part, in frame: the angle between the turn slot k's Jacobians give the
            dense motion from a frame back to frame 0 and the part's own, degrees.

    python -m research.part_supervision.slot_detector train OUT --steps 6000 --scale 1
    python -m research.part_supervision.slot_detector judge MODEL      # any project checkpoint

`train` writes OUT as a project checkpoint (this detector, the starting model's generator, the
profile with the scale used), so `oracle_keypoints --checkpoint OUT train detected` and
`kp-motion samples --checkpoint OUT` take it, and OUT/log.json with the judged numbers per
evaluation. Options: --dataset (out/datasets/synth-64-x5: `kp-motion synth --train 1000`),
--checkpoint (models/fomm-compact-64), --lr (1e-3, cosine to 0), --threads (1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kp_motion.data.datasets import FramesDataset, VideoDataset
from kp_motion.data.synthetic import video_kinds
from kp_motion.models.checkpoint import load_model, save_checkpoint, strict_load
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.models.model_config import with_widths
from kp_motion.training.full_model import FommTrainingModel
from kp_motion.training.settings import load_train_config
from research.part_supervision.losses import PART_MIN_MOTION, part_following
from research.part_supervision.poses import part_pose_targets, video_part_poses

TRAINING = load_train_config()
JUDGED_FRAMES = 32
BATCH = 8


def rescaled_detector(checkpoint: str, scale: float | None):
    """(config, detector, generator) of `checkpoint`, the detector rebuilt to run at input
    `scale` (None: the profile's) with the same weights."""
    config, detector, generator = load_model(checkpoint)
    if scale is None or scale == config.kp_detector.scale_factor:
        return config, detector, generator
    config = with_widths(config, kp_detector={"scale_factor": scale})
    rebuilt = KeypointDetector(config)
    # The downscale's anti-alias kernel is a fixed buffer of the scale, not a learned weight.
    state = {key: value for key, value in detector.state_dict().items()
             if not key.startswith("down.")}  # fmt: skip
    state.update({key: value for key, value in rebuilt.state_dict().items()
                  if key.startswith("down.")})  # fmt: skip
    strict_load(rebuilt, state, f"{checkpoint} (kp_detector at scale {scale})")
    return config, rebuilt.eval(), generator


def test_videos(root: str) -> list[tuple[str, str, torch.Tensor, torch.Tensor]]:
    """[(name, kind, (T, 3, H, W) frames, (T, P, 2, 3) part poses)], first JUDGED_FRAMES."""
    kinds = video_kinds(root)
    poses = video_part_poses(root, "test")
    data = VideoDataset(root, "test", max_frames=JUDGED_FRAMES)
    found = []
    for index in range(len(data)):
        item = data[index]
        video_poses = torch.from_numpy(poses[item["name"]][: len(item["video"])]).float()
        found.append((item["name"], kinds[item["name"]], item["video"], video_poses))
    return found


def slot_errors(
    values: torch.Tensor, poses: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(T, K, 2) keypoints in [-1, 1] and (T, P, 2, 3) poses -> for the slots k < min(K, P):
    (T, S) distance to part k's centre and (T - 1, S) drift from the point fixed to part k at
    keypoint k's frame-0 offset, both in image units, (S,) which of the parts move and
    (T, S) whether part k's centre is inside the picture."""
    slots = min(values.shape[1], poses.shape[1])
    points = (values[:, :slots] + 1) / 2  # image units, as the poses
    linear, centre = poses[:, :slots, :, :2], poses[:, :slots, :, 2]
    miss = (points - centre).norm(dim=-1)
    local = torch.linalg.solve(linear[0], points[0] - centre[0])  # (S, 2) offset on the part
    fixed = (linear[1:] @ local[None, :, :, None]).squeeze(-1) + centre[1:]
    drift = (points[1:] - fixed).norm(dim=-1)
    moves = (centre - centre[:1]).norm(dim=-1).amax(dim=0) >= PART_MIN_MOTION
    in_frame = ((centre >= 0) & (centre <= 1)).all(dim=-1)
    return miss, drift, moves, in_frame


def turn_errors(jacobians: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """(T, K, 2, 2) keypoint Jacobians and (T, P, 2, 3) poses -> (T - 1, S) how far, in
    degrees, the turn the dense motion builds for slot k from frame t back to frame 0
    (J_0 J_t^-1) is from part k's own turn (A_0 A_t^-1); the angle of each map's rotation."""
    slots = min(jacobians.shape[1], poses.shape[1])
    linear = poses[:, :slots, :, :2]
    kp_turn = jacobians[:1, :slots] @ torch.linalg.inv(jacobians[1:, :slots])
    part_turn = linear[:1] @ torch.linalg.inv(linear[1:])

    def angle(maps: torch.Tensor) -> torch.Tensor:
        return torch.atan2(maps[..., 1, 0] - maps[..., 0, 1], maps[..., 0, 0] + maps[..., 1, 1])

    error = torch.remainder(angle(kp_turn) - angle(part_turn) + np.pi, 2 * np.pi) - np.pi
    return error.abs() * 180 / np.pi


def _pooled(total: torch.Tensor, count: torch.Tensor, scale: float) -> list[float | None]:
    """Per-slot means of pooled sums; None for a slot never counted (the arm's pedestal, whose
    centre is below the picture)."""
    means = zip(total, count, strict=True)
    return [round(scale * float(t / n), 2) if n > 0 else None for t, n in means]


@torch.no_grad()
def judge(detector: KeypointDetector, videos: list[tuple]) -> dict:
    """{"miss_px": {kind: px}, "arm_drift_px": [per arm part], "arm_miss_px": [per part],
    "arm_drift_in_frame_px": [per part], "arm_turn_error_in_frame_deg": [per part]}. The
    first three average every frame, also those in which the part has left the picture (an
    arm reaching out of it), where no keypoint can be on it and nothing of it is drawn; the
    last two pool, over all test arms, only the frames with the part's centre inside the
    picture, in that frame and in frame 0."""
    detector.eval()
    size = videos[0][2].shape[-1]
    misses: dict[str, list[float]] = {}
    arm_drift, arm_miss = [], []
    drift_total = turn_total = seen_count = 0
    for _, kind, frames, poses in videos:
        keypoints = detector(frames)
        miss, drift, moves, in_frame = slot_errors(keypoints["value"], poses)
        if moves.any():
            misses.setdefault(kind, []).append(float(miss[:, moves].mean()))
        if kind == "arm":
            arm_drift.append(drift.mean(dim=0))
            arm_miss.append(miss.mean(dim=0))
            seen = in_frame[1:] & in_frame[:1]  # the frame-0 offset needs the part seen too
            turn = turn_errors(keypoints["jacobian"], poses)
            drift_total = drift_total + (drift * seen).sum(dim=0)
            turn_total = turn_total + (turn * seen).sum(dim=0)
            seen_count = seen_count + seen.sum(dim=0)
    detector.train()
    scaled = {kind: round(size * float(np.mean(found)), 2) for kind, found in misses.items()}
    return {
        "miss_px": dict(sorted(scaled.items())),
        "arm_drift_px": [round(size * float(x), 2) for x in torch.stack(arm_drift).mean(dim=0)],
        "arm_miss_px": [round(size * float(x), 2) for x in torch.stack(arm_miss).mean(dim=0)],
        "arm_drift_in_frame_px": _pooled(drift_total, seen_count, size),
        "arm_turn_error_in_frame_deg": _pooled(turn_total, seen_count, 1.0),
    }


def training_pairs(root: str, size: int, seed: int) -> DataLoader:
    """The shipped pair sampling and colour jitter, horizontal flips off: a mirrored biped's
    left arm looks like its right one but keeps its slot."""
    augmentation = dataclasses.replace(TRAINING.data.augmentation, horizontal_flip=0.0)
    pairs = FramesDataset(
        root, "train", size=size, is_train=True, repeats=TRAINING.data.repeats,
        augmentation=augmentation, seed=seed,
        pair_targets=part_pose_targets(video_part_poses(root, "train")),
    )  # fmt: skip
    return DataLoader(pairs, batch_size=BATCH, shuffle=True, drop_last=True)


def detector_losses(
    objective: FommTrainingModel, batch: dict, part_weight: float, jacobian_weight: float
) -> dict[str, torch.Tensor]:
    """The slot terms and the equivariance terms; no generator, so no reconstruction."""
    detector = objective.kp_detector
    kp_source, kp_driving = detector(batch["source"]), detector(batch["driving"])
    terms = part_following(
        kp_source, kp_driving, batch["parts_source"], batch["parts_driving"],
        batch["parts_valid"], with_jacobian=jacobian_weight > 0, match="slot",
    )  # fmt: skip
    losses = {"part_following": part_weight * terms["part_following"]}
    if jacobian_weight > 0:
        losses["part_following_jacobian"] = jacobian_weight * terms["part_following_jacobian"]
    losses.update(objective.equivariance(batch["driving"], kp_driving))
    return losses


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    config, detector, generator = rescaled_detector(args.checkpoint, args.scale)
    detector.train()
    # FommTrainingModel only for its equivariance warp settings (shipped weights).
    objective = FommTrainingModel(detector, generator, TRAINING.losses, config.estimate_jacobian)
    videos = test_videos(args.dataset)
    loader = training_pairs(args.dataset, config.width, args.seed)
    optimizer = torch.optim.Adam(detector.parameters(), lr=args.lr,
                                 betas=tuple(TRAINING.optimizer.betas))  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * min(step, args.steps) / args.steps))
    )
    log = {0: judge(detector, videos)}
    print(f"step 0: {log[0]}", flush=True)
    started, step, window = time.time(), 0, []
    while step < args.steps:
        for batch in loader:
            losses = detector_losses(objective, batch, args.part_weight, args.jacobian_weight)
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            schedule.step()
            step += 1
            window.append(losses["part_following"].item() / args.part_weight)
            if step % args.judge_every == 0 or step == args.steps:
                log[step] = judge(detector, videos)
                log[step]["train_miss_px"] = round(config.width * float(np.mean(window)), 2)
                window = []
                print(f"step {step} ({time.time() - started:.0f} s): {log[step]}", flush=True)
            if step == args.steps:
                break
    out = Path(args.out)
    save_checkpoint(out, config, detector.eval(), generator,
                    extra_meta={"experiment": "slot_detector", "args": vars(args)})  # fmt: skip
    (out / "log.json").write_text(json.dumps(log, indent=1))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="out/datasets/synth-64-x5")
    parser.add_argument("--checkpoint", default="models/fomm-compact-64")
    parser.add_argument("--threads", type=int, default=1)
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train")
    training.add_argument("out")
    training.add_argument("--steps", type=int, default=6000)
    training.add_argument("--scale", type=float, default=None,
                          help="detector input scale (default: the profile's)")  # fmt: skip
    training.add_argument("--lr", type=float, default=1e-3)
    training.add_argument("--part-weight", type=float, default=50.0)
    training.add_argument("--jacobian-weight", type=float, default=10.0)
    training.add_argument("--judge-every", type=int, default=1000)
    training.add_argument("--seed", type=int, default=0)
    judging = commands.add_parser("judge")
    judging.add_argument("model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "train":
        train(args)
    else:
        _, detector, _ = load_model(args.model)
        print(json.dumps(judge(detector, test_videos(args.dataset)), indent=1))


if __name__ == "__main__":
    main()
