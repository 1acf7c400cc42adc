"""Sample reconstructions of a trained model as one PNG: for each test video, a row of driving
frames and under it the model's reconstruction (source = the video's first frame, absolute
keypoints, as in FOMM's reconstruction protocol), with the per-video L1 error.

`motion_diagnostics` says where a poor reconstruction comes from, by comparing the rendering
with three references (all mean L1 against the driving frames):
    still     the source frame unchanged: what a model that learned no motion scores;
    warped    the source warped by the predicted dense flow, without the generator: the motion;
    self      each frame rendered from itself (identity motion): the generator's own loss;
the mean spread of the keypoint heatmaps ([-1, 1] units; broad heatmaps put keypoints on
object centroids, which cannot express the motion of thin parts), and how many keypoints the
dense motion uses: those whose mask holds at least losses.MASK_IN_USE of the frame on average. A
keypoint the masks never pick moves nothing (a collapsed or dead keypoint).

On a synthetic dataset, whose part poses are known (data.synthetic.video_part_poses), two more
say whether the keypoints move with the parts (`part_misses`):
    part_error      median over the moving parts of how far the best-following keypoint's
                    displacement is from the part's, over the part's own displacement
                    (0 = a keypoint moves exactly with the part, 1 = no better than a still one);
    parts_followed  the share of moving parts with part_error below PART_FOLLOWED;
and two where the error lies (`ground_diagnostics`), the ground being the pixels that no part
covers (losses.part_coverage) in the driving frame, or for ground_motion in either frame:
    rendered_ground the ground's share of `rendered` (the rest is on the parts);
    ground_motion   the share of the ground's dense-motion mask held by keypoint motions
                    rather than the background's identity (losses.background_mask): on a
                    static background, motion that drags the ground along with a part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kp_motion.data import video_io
from kp_motion.data.datasets import VideoDataset
from kp_motion.evaluation.report import frame_mosaic
from kp_motion.models.animator import Animator, draw_keypoints
from kp_motion.training.losses import (
    PART_MARGIN,
    PART_MIN_MOTION,
    background_mask,
    heatmap_spread,
    keypoints_in_use,
    part_coverage,
)

DIAGNOSTICS = ("rendered", "still", "warped", "self", "heatmap_spread", "keypoints_in_use")
PART_DIAGNOSTICS = ("part_error", "parts_followed")
GROUND_DIAGNOSTICS = ("rendered_ground", "ground_motion")
PART_FOLLOWED = 0.5


@torch.inference_mode()
def reconstruct(animator: Animator, video: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) frames -> their reconstruction from frame 0 and each frame's keypoints."""
    animator.set_source(video[:1])
    return torch.cat([animator.render(animator.detect(frame[None]))["prediction"]
                      for frame in video])  # fmt: skip


def sample_rows(
    animator: Animator,
    dataset: VideoDataset,
    num_videos: int,
    num_frames: int,
    zoom: int = 1,
    keypoints: bool = False,
) -> tuple[list[np.ndarray], list[float]]:
    """Mosaic rows (driving, reconstruction, ...) of frames zoomed `zoom` times, with each driving
    frame's detected keypoints drawn on it when `keypoints`, and the mean L1 of each video."""
    rows, errors = [], []
    for index in range(min(num_videos, len(dataset))):
        video = dataset[index]["video"]
        reconstruction = reconstruct(animator, video).cpu()
        errors.append(float((reconstruction - video).abs().mean()))
        picks = np.linspace(0, len(video) - 1, num_frames).round().astype(int)
        driving = _zoomed(video_io.from_tensor(video[picks]), zoom)
        if keypoints:
            positions = animator.detect(video[picks])["value"].cpu().numpy()
            radius = max(1, driving.shape[1] // 48)
            driving = np.stack([draw_keypoints(frame, kp, radius)
                                for frame, kp in zip(driving, positions, strict=True)])
        rows.append(driving)
        rows.append(_zoomed(video_io.from_tensor(reconstruction[picks]), zoom))
    return rows, errors


def _zoomed(frames: np.ndarray, zoom: int) -> np.ndarray:
    """(N, H, W, 3) frames with every pixel repeated `zoom` times: small frames stay readable."""
    return frames.repeat(zoom, axis=1).repeat(zoom, axis=2)


def write_sample_strip(
    animator: Animator,
    dataset: VideoDataset,
    path: str | Path,
    num_videos: int = 4,
    num_frames: int = 8,
    zoom: int = 2,
    keypoints: bool = False,
) -> list[float]:
    """Write the strip PNG; `keypoints` draws the detected keypoints on the driving frames."""
    if len(dataset) == 0:
        raise ValueError("the dataset split has no readable videos")
    rows, errors = sample_rows(animator, dataset, num_videos, num_frames, zoom, keypoints)
    video_io.write_image(path, frame_mosaic(rows, gap=2 * zoom))
    return errors


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


@torch.inference_mode()
def motion_diagnostics(
    animator: Animator, video: torch.Tensor, part_poses: np.ndarray | None = None
) -> dict[str, float]:
    """The DIAGNOSTICS of one (T, 3, H, W) video, source = its first frame; with its
    (T', P, 2, 3) part poses the GROUND_DIAGNOSTICS, and the PART_DIAGNOSTICS if a part moves."""
    video = video.to(animator.device)
    animator.set_source(video[:1])
    detected = animator.kp_detector(video)  # not detect(): the heatmaps are needed too
    kp_driving = {"value": detected["value"], "jacobian": detected["jacobian"]}
    rendered = animator.render(kp_driving, full_outputs=True)
    itself = animator.generator(video, kp_driving, kp_driving, full_outputs=False)

    def l1(frames: torch.Tensor) -> float:
        return float((frames - video).abs().mean())

    found = {
        "rendered": l1(rendered["prediction"]),
        "still": l1(video[:1].expand_as(video)),
        "warped": l1(rendered["deformed"]),
        "self": l1(itself["prediction"]),
        "heatmap_spread": float(heatmap_spread(detected["heatmap"], detected["value"])),
        "keypoints_in_use": keypoints_in_use(rendered["mask"]),
    }
    if part_poses is not None:
        found.update(ground_diagnostics(video, rendered, part_poses))
        errors = part_misses(detected["value"].cpu().numpy(), part_poses)
        if len(errors):
            found["part_error"] = float(np.median(errors))
            found["parts_followed"] = float(np.mean(errors < PART_FOLLOWED))
    return found


def video_diagnostics(
    animator: Animator,
    dataset: VideoDataset,
    num_videos: int,
    part_poses: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """{video name: motion_diagnostics} for the first `num_videos` videos of the dataset, with
    the part diagnostics of those named in `part_poses` ({name: (T, P, 2, 3) part poses})."""
    part_poses = part_poses or {}
    found = {}
    for index in range(min(num_videos, len(dataset))):
        item = dataset[index]
        parts = part_poses.get(item["name"])
        found[item["name"]] = motion_diagnostics(animator, item["video"], parts)
    return found


def mean_diagnostics(per_video: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean of each diagnostic over the videos that have it."""
    names = dict.fromkeys(name for diagnostics in per_video.values() for name in diagnostics)
    return {
        name: float(np.mean([d[name] for d in per_video.values() if name in d])) for name in names
    }


def group_videos(
    per_video: dict[str, dict[str, float]], groups: dict[str, str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{group: {video name: diagnostics}} in group order; videos with no group are left out."""
    members: dict[str, dict[str, dict[str, float]]] = {}
    for name, diagnostics in per_video.items():
        if name in groups:
            members.setdefault(groups[name], {})[name] = diagnostics
    return dict(sorted(members.items()))


def diagnostics_by_group(
    per_video: dict[str, dict[str, float]], groups: dict[str, str]
) -> dict[str, dict[str, float]]:
    """{group: mean diagnostics of its videos}, e.g. per synthetic kind."""
    return {
        group: mean_diagnostics(videos) for group, videos in group_videos(per_video, groups).items()
    }
