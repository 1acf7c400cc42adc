"""Keypoint extraction: a trained detector over a dataset's videos -> keypoint sequence folders.

Each video becomes (values (T, 6K) in the kp_motion.keypoints layout, frame_indices (T,)); the
folder's meta.yaml names the detector by its model_id, so that forecasters trained on these
sequences and renderers fed with their output can refuse keypoints of another detector.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from kp_motion.keypoints import pack

logger = logging.getLogger(__name__)


@torch.no_grad()
def detect_video(
    kp_detector: nn.Module, video: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """(T, 3, H, W) frames in [0, 1] -> (T, 6K) float32 keypoint values, `batch_size` at a time."""
    values = []
    for frames in video.split(batch_size):
        keypoints = kp_detector(frames.to(device))
        values.append(
            pack(
                keypoints["value"].float().cpu().numpy(),
                keypoints["jacobian"].float().cpu().numpy(),
            )
        )
    return np.concatenate(values, axis=0)


def extract_split(
    kp_detector: nn.Module,
    dataset,
    batch_size: int,
    device: torch.device,
    progress: bool = True,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """Sequences {name: (values, frame_indices)} and {name: fps} of every video of a dataset."""
    sequences, rates = {}, {}
    videos = tqdm(
        range(len(dataset)), desc=f"extract {dataset.split}", unit="video", disable=not progress
    )
    for index in videos:
        item = dataset[index]
        values = detect_video(kp_detector, item["video"], batch_size, device)
        sequences[item["name"]] = (values, np.arange(len(values), dtype=np.int64))
        rates[item["name"]] = float(item["fps"])
    return sequences, rates


def extract_dataset(
    dataset: Path,
    splits: list[str],
    checkpoint: Path,
    output: Path,
    device: torch.device,
    batch_size: int = 32,
    fit: str = "resize",
    max_frames: int | None = None,
    progress: bool = True,
    checkpoint_label: str | None = None,
) -> dict[str, tuple[Path, int, str]]:
    """Write <output>/<split>/ sequence folders; returns {split: (folder, videos, model_id)}.

    `checkpoint_label` names the checkpoint in meta.yaml (default: its path as given).
    """
    from kp_motion.data.datasets import VideoDataset
    from kp_motion.data.keypoint_sequences import save_sequences
    from kp_motion.models.checkpoint import load_model, model_id
    from kp_motion.training.fomm_trainer import profile_size

    config, kp_detector, _ = load_model(checkpoint, device)
    detector_id = model_id(config, kp_detector)
    size = profile_size(config)
    written = {}
    for split in splits:
        videos = VideoDataset(dataset, split, size=size, fit=fit, max_frames=max_frames)
        sequences, rates = extract_split(kp_detector, videos, batch_size, device, progress)
        # One fps for the folder (forecasters step frame by frame); per-video rates kept if mixed.
        fps, _ = Counter(rates.values()).most_common(1)[0]
        meta = {
            "model_id": detector_id,
            "dataset": str(dataset),
            "split": split,
            "fps": fps,
            "num_keypoints": config.num_kp,
            "profile": config.name,
            "image_size": list(config.image_size),
            "checkpoint": checkpoint_label or str(checkpoint),
            "fit": fit,
        }
        if len(set(rates.values())) > 1:
            logger.warning("%s/%s: videos have different frame rates", dataset, split)
            meta["fps_per_video"] = rates
        if videos.skipped:
            meta["skipped_videos"] = list(videos.skipped)
        folder = save_sequences(output / split, sequences, meta)
        written[split] = (folder, len(sequences), detector_id)
    return written


def extract_keypoint_set(
    clips_folder: Path,
    checkpoint: Path,
    output: Path,
    device: torch.device,
    batch_size: int = 32,
    fit: str = "resize",
    max_frames: int | None = None,
    progress: bool = True,
) -> tuple[Path, int, int, str]:
    """Every video of one folder -> a keypoint set .npz (kp_motion.data.keypoint_sets layout,
    with the detector's model_id and name); returns (path, clips, frames, model_id).

    Clips are named by file name (the shared VoxCeleb set's names), so that the identity of
    each is its `idNNNNN` prefix and two sets of the same clips line up name by name.
    """
    from kp_motion.data.datasets import VideoDataset
    from kp_motion.data.keypoint_sets import save_keypoint_set
    from kp_motion.models.checkpoint import load_model, model_id
    from kp_motion.training.fomm_trainer import profile_size

    config, kp_detector, _ = load_model(checkpoint, device)
    detector_id = model_id(config, kp_detector)
    # A plain folder of clips is read as the one "split" of its parent folder.
    videos = VideoDataset(
        clips_folder.parent, clips_folder.name, size=profile_size(config), fit=fit,
        max_frames=max_frames,
    )  # fmt: skip
    sequences, _ = extract_split(kp_detector, videos, batch_size, device, progress)
    file_names = {entry.name: entry.path.name for entry in videos.videos}
    clips = {file_names[name]: values for name, (values, _) in sequences.items()}
    if videos.skipped:
        logger.warning("%s: left out unreadable clips %s", clips_folder, videos.skipped)
    path = save_keypoint_set(output, clips, {"model_id": detector_id, "model": config.name})
    frames = sum(len(values) for values in clips.values())
    return path, len(clips), frames, detector_id
