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

Per-video diagnostics can be grouped (e.g. per synthetic kind). research/part_supervision adds
its own per-video diagnostics (whether the keypoints move with a synthetic dataset's parts)
through `video_diagnostics(..., more=...)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kp_motion.data import video_io
from kp_motion.data.datasets import VideoDataset
from kp_motion.evaluation.model_card import reconstruct_clip
from kp_motion.evaluation.report import frame_mosaic
from kp_motion.models.animator import Animator, draw_keypoints
from kp_motion.models.blocks import make_coordinate_grid
from kp_motion.training.losses import keypoints_in_use

DIAGNOSTICS = ("rendered", "still", "warped", "self", "heatmap_spread", "keypoints_in_use")
# more(name, video, detected, rendered) -> further diagnostics of one video (see motion_diagnostics)
MoreDiagnostics = Callable[
    [str, torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]], dict[str, float]
]


@torch.inference_mode()
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
        reconstruction = reconstruct_clip(animator, video)
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


def heatmap_spread(heatmaps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Mean over batch and keypoints of sqrt(E|z - kp|^2) under each (B, K, h, w) heatmap.

    In [-1, 1] units: about 0.8 for a uniform heatmap, 0 for a single pixel. A keypoint whose
    heatmap is broad is an average over a large area (an object's centroid) and follows no part.
    """
    height, width = heatmaps.shape[-2:]
    grid = make_coordinate_grid(height, width, heatmaps.dtype, heatmaps.device)
    offsets = grid - positions[:, :, None, None, :]
    variance = (heatmaps * (offsets**2).sum(-1)).sum(dim=(2, 3))
    return torch.sqrt(variance + 1e-8).mean()


@torch.inference_mode()
def motion_diagnostics(
    animator: Animator, video: torch.Tensor, name: str = "", more: MoreDiagnostics | None = None
) -> dict[str, float]:
    """The DIAGNOSTICS of one (T, 3, H, W) video named `name`, source = its first frame, and
    those of `more` (given the video, the detector's outputs and the generator's full ones)."""
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
    if more is not None:
        found.update(more(name, video, detected, rendered))
    return found


def video_diagnostics(
    animator: Animator,
    dataset: VideoDataset,
    num_videos: int,
    more: MoreDiagnostics | None = None,
) -> dict[str, dict[str, float]]:
    """{video name: motion_diagnostics} for the first `num_videos` videos of the dataset."""
    found = {}
    for index in range(min(num_videos, len(dataset))):
        item = dataset[index]
        found[item["name"]] = motion_diagnostics(animator, item["video"], item["name"], more)
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
