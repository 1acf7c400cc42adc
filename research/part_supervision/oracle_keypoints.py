"""Experiment: can the dense motion + generator draw a far-swept robot arm when the keypoints
are right? docs/research/part-supervision.md reports what it measured.

The ground-truth pose of every arm part is known on the synthetic data. "oracle" keypoints are
one per part: its centre, and as Jacobian its rotation (the part's local->image map with unit
columns; only J_S J_D^-1 reaches the dense motion, so the part's size cancels), the spare
slots parked in the corners without motion. The generator of a model (dense motion included)
is fine-tuned on the training arms with those keypoints, and as the control with its own
detector's keypoints (frozen), same steps and seed; both are judged on the test arms (first
32 frames, source = frame 0, absolute keypoints: rendered and flow-warped source L1).

    python -m research.part_supervision.oracle_keypoints train oracle 4000 OUT     # and: detected,
        # oracle-positions (identity Jacobians), oracle-shuffled (slots in another order per
        # video), oracle-noisy (positions off by NOISE_PX on average, per frame),
        # detected-turned (the detector's positions, the parts' rotations as Jacobians),
        # detected-visible (the oracle with the detector's positions of the parts in view);
        # --checkpoint for another model's generator
    python -m research.part_supervision.oracle_keypoints strip OUT                 # OUT/arms.png

`train detected` also writes OUT/model_detected, a project checkpoint of the frozen detector
and the fine-tuned generator.

Options: --dataset (default out/datasets/synth-64), --checkpoint (models/fomm-compact-64),
--threads (1). About 0.3 s a step on one core of the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import yaml

from kp_motion.data import video_io
from kp_motion.data.datasets import VideoDataset
from kp_motion.data.synthetic import MANIFEST_NAME
from kp_motion.evaluation.report import frame_mosaic
from kp_motion.models.checkpoint import load_model, save_checkpoint
from kp_motion.training.losses import image_pyramid, mask_balance, pyramid_l1, ssim_loss
from kp_motion.training.settings import load_train_config
from research.part_supervision.poses import video_part_poses

# The shipped training settings (config/train_fomm.yaml): its losses and Adam betas.
TRAINING = load_train_config()
CORNERS = torch.tensor([[-0.9, -0.9], [0.9, -0.9], [-0.9, 0.9], [0.9, 0.9]])
EVAL_FRAMES = 32
KEYPOINTS = (
    "oracle",
    "oracle-positions",
    "oracle-shuffled",
    "oracle-noisy",
    "detected",
    "detected-turned",
    "detected-visible",
)
NOISE_PX = 3.3  # oracle-noisy: about the part keypoints' miss of a trained detector


def arm_videos(root: str, split: str, max_frames: int | None = None) -> list[tuple]:
    """[(name, (T, 3, H, W) frames, (T, P, 2, 3) part poses)] of the split's robot arms."""
    manifest = yaml.safe_load((Path(root) / MANIFEST_NAME).read_text())
    kinds = {video["name"]: video["kind"] for video in manifest["videos"]}
    poses = video_part_poses(root, split)
    data = VideoDataset(root, split, max_frames=max_frames)
    found = []
    for index in range(len(data)):
        item = data[index]
        if kinds[item["name"]] == "arm":
            found.append((item["name"], item["video"],
                          torch.from_numpy(poses[item["name"]]).float()))  # fmt: skip
    return found


def oracle_keypoints(
    poses: torch.Tensor, num_kp: int, turned: bool = True
) -> dict[str, torch.Tensor]:
    """(B, P, 2, 3) part poses in [0, 1] image units -> keypoints, num_kp slots; Jacobians the
    parts' rotations when `turned`, else the identity (positions only)."""
    if not 0 <= num_kp - poses.shape[1] <= len(CORNERS):
        raise ValueError(f"{poses.shape[1]} parts do not fit {num_kp} keypoint slots")
    centres = (2 * poses[..., 2] - 1).clamp(-0.98, 0.98)  # an arm's base sits below the frame
    linear = poses[..., :2]
    rotations = linear / linear.norm(dim=-2, keepdim=True)
    if not turned:
        rotations = torch.eye(2).expand_as(rotations)
    batch, parts = centres.shape[:2]
    spare = num_kp - parts
    value = torch.cat([centres, CORNERS[:spare].expand(batch, spare, 2)], dim=1)
    jacobian = torch.cat([rotations, torch.eye(2).expand(batch, spare, 2, 2)], dim=1)
    return {"value": value, "jacobian": jacobian}


class Experiment:
    def __init__(self, checkpoint: str, keypoints_from: str) -> None:
        self.config, self.detector, self.generator = load_model(checkpoint)
        self.keypoints_from = keypoints_from  # one of KEYPOINTS

    @torch.no_grad()
    def keypoints(
        self, frames: torch.Tensor, poses: torch.Tensor, names: list[str]
    ) -> dict[str, torch.Tensor]:
        """Keypoints of (B, 3, H, W) frames of the videos `names` with (B, P, 2, 3) poses."""
        if self.keypoints_from.startswith("oracle"):
            turned = self.keypoints_from != "oracle-positions"
            found = oracle_keypoints(poses, self.config.num_kp, turned)
            if self.keypoints_from == "oracle-shuffled":
                # Each video its own slot order (fixed within the video), as a detector's
                # keypoints need not mean the same part in every video.
                orders = torch.stack([torch.from_numpy(np.random.default_rng(
                    zlib.crc32(name.encode())).permutation(self.config.num_kp))
                    for name in names])  # fmt: skip
                found = {key: value[torch.arange(len(names))[:, None], orders]
                         for key, value in found.items()}  # fmt: skip
            if self.keypoints_from == "oracle-noisy":
                # Independent per frame: mean distance 1.25 sigma = NOISE_PX.
                sigma = 2 * NOISE_PX / 1.25 / frames.shape[-1]  # [-1, 1] units
                found["value"] = found["value"] + sigma * torch.randn_like(found["value"])
            return found
        found = self.detector(frames)
        found = {"value": found["value"], "jacobian": found["jacobian"]}
        if self.keypoints_from == "detected-visible":
            # The oracle, but the detector's positions for the parts inside the picture: the
            # spare slots parked, parts out of the picture at the oracle's clamped centre.
            oracle = oracle_keypoints(poses, self.config.num_kp)
            slots = min(self.config.num_kp, poses.shape[1])
            centre = poses[:, :slots, :, 2]
            visible = ((centre >= 0) & (centre <= 1)).all(dim=-1, keepdim=True)
            value = oracle["value"].clone()
            value[:, :slots] = torch.where(visible, found["value"][:, :slots], value[:, :slots])
            return {"value": value, "jacobian": oracle["jacobian"]}
        if self.keypoints_from == "detected-turned":
            # The detector's positions, the parts' own rotations as the slots' Jacobians: how
            # much of what the detector loses is its Jacobians.
            slots = min(self.config.num_kp, poses.shape[1])
            turns = oracle_keypoints(poses, self.config.num_kp)["jacobian"][:, :slots]
            found["jacobian"] = torch.cat([turns, found["jacobian"][:, slots:]], dim=1)
        return found

    @torch.no_grad()
    def render(
        self, name: str, video: torch.Tensor, poses: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Every frame rendered from frame 0 with absolute keypoints."""
        kp_driving = self.keypoints(video, poses[: len(video)], [name] * len(video))
        kp_source = {key: value[:1].expand_as(value) for key, value in kp_driving.items()}
        source = video[:1].expand_as(video)
        return self.generator(source, kp_source, kp_driving, full_outputs=True)

    def evaluate(self, test: list[tuple]) -> tuple[float, float]:
        self.generator.eval()
        rendered, warped = [], []
        for name, video, poses in test:
            outputs = self.render(name, video, poses)
            rendered.append(float((outputs["prediction"] - video).abs().mean()))
            warped.append(float((outputs["deformed"] - video).abs().mean()))
        self.generator.train()
        return float(np.mean(rendered)), float(np.mean(warped))

    def train_step(self, optimizer, train: list[tuple], rng: np.random.Generator) -> float:
        sources, drivings, source_poses, driving_poses, names = [], [], [], [], []
        for video_index in rng.integers(len(train), size=8):
            name, video, poses = train[video_index]
            names.append(name)
            first, second = rng.choice(len(video), 2, replace=False)
            sources.append(video[first])
            drivings.append(video[second])
            source_poses.append(poses[first])
            driving_poses.append(poses[second])
        source, driving = torch.stack(sources), torch.stack(drivings)
        kp_source = self.keypoints(source, torch.stack(source_poses), names)
        kp_driving = self.keypoints(driving, torch.stack(driving_poses), names)
        generated = self.generator(source, kp_source, kp_driving, full_outputs=False)
        # The shipped training losses, less those on the (here unused) detector.
        losses = TRAINING.losses
        loss = (
            losses.reconstruction_l1 * pyramid_l1(
                image_pyramid(generated["prediction"], losses.pyramid_scales),
                image_pyramid(driving, losses.pyramid_scales))
            + losses.ssim * ssim_loss(generated["prediction"], driving)
            + losses.mask_balance * mask_balance(generated["mask"], losses.mask_balance_floor)
        )  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    experiment = Experiment(args.checkpoint, args.keypoints)
    training = arm_videos(args.dataset, "train")
    test = arm_videos(args.dataset, "test", EVAL_FRAMES)
    print(f"{args.keypoints}: {len(training)} training arms, {len(test)} test arms", flush=True)
    log = {0: experiment.evaluate(test)}
    print(f"step 0: rendered, warped L1 {log[0]}", flush=True)
    optimizer = torch.optim.Adam(experiment.generator.parameters(), lr=1e-4,
                                 betas=tuple(TRAINING.optimizer.betas))  # fmt: skip
    rng = np.random.default_rng(0)
    started = time.time()
    for step in range(1, args.steps + 1):
        loss = experiment.train_step(optimizer, training, rng)
        if step % 500 == 0 or step == args.steps:
            log[step] = experiment.evaluate(test)
            print(f"step {step} ({time.time() - started:.0f} s): rendered, warped L1 {log[step]}"
                  f", training loss {loss:.3f}", flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(experiment.generator.state_dict(), out / f"generator_{args.keypoints}.pt")
    if args.keypoints == "detected":
        # The pair as rendered here, for kp-motion samples or another round of this command.
        save_checkpoint(out / "model_detected", experiment.config, experiment.detector,
                        experiment.generator.eval())  # fmt: skip
    (out / f"log_{args.keypoints}.json").write_text(json.dumps(log))


def strip(args: argparse.Namespace) -> None:
    """Per test arm: driving frames, then the model, the detected-keypoint fine-tune and the
    oracle fine-tune (both from `train`), each rendering the video from its first frame."""
    out = Path(args.out)
    runs = [("detected", None), ("detected", out / "generator_detected.pt"),
            ("oracle", out / "generator_oracle.pt")]  # fmt: skip
    experiments = []
    for keypoints_from, weights in runs:
        experiment = Experiment(args.checkpoint, keypoints_from)
        if weights is not None:
            experiment.generator.load_state_dict(torch.load(weights, weights_only=True))
        experiment.generator.eval()
        experiments.append(experiment)
    picks = np.linspace(0, EVAL_FRAMES - 1, 8).round().astype(int)

    def zoomed(frames: torch.Tensor) -> np.ndarray:
        return video_io.from_tensor(frames[picks].clamp(0, 1)).repeat(2, 1).repeat(2, 2)

    rows = []
    for name, video, poses in arm_videos(args.dataset, "test", EVAL_FRAMES)[: args.videos]:
        rows.append(zoomed(video))
        rows.extend(zoomed(e.render(name, video, poses)["prediction"]) for e in experiments)
    video_io.write_image(out / "arms.png", frame_mosaic(rows, gap=4))
    print(f"wrote {out / 'arms.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="out/datasets/synth-64")
    parser.add_argument("--checkpoint", default="models/fomm-compact-64")
    parser.add_argument("--threads", type=int, default=1)
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train")
    training.add_argument("keypoints", choices=KEYPOINTS)
    training.add_argument("steps", type=int)
    training.add_argument("out")
    drawing = commands.add_parser("strip")
    drawing.add_argument("out")
    drawing.add_argument("--videos", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "train":
        train(args)
    else:
        strip(args)


if __name__ == "__main__":
    main()
