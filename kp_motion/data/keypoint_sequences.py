"""On-disk keypoint sequences: what `kp-motion extract` writes and the forecasters train on.

A sequence folder holds
    meta.yaml          model_id, dataset, split, fps, num_keypoints (more keys are kept as-is)
    <video_name>.npz   values (T, 6 * num_keypoints) float32 in the kp_motion.keypoints layout,
                       frame_indices (T,) int64, strictly increasing (a jump = frames without
                       keypoints, e.g. skipped by the extractor)
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kp_motion import config as config_io

META_NAME = "meta.yaml"
REQUIRED_META = ("model_id", "dataset", "split", "fps", "num_keypoints")


@dataclass
class KeypointSequence:
    name: str
    values: np.ndarray  # (T, 60) float32
    frame_indices: np.ndarray  # (T,) int64

    def __len__(self) -> int:
        return len(self.values)

    def segments(self) -> list[np.ndarray]:
        """The values split wherever frame_indices jump: runs of consecutive frames.

        Forecasters assume one frame per step, so training and evaluation use these runs.
        """
        breaks = np.flatnonzero(np.diff(self.frame_indices) != 1) + 1
        return [part for part in np.split(self.values, breaks) if len(part)]


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f"invalid sequence name {name!r}: it becomes a file name in the folder")


def _check_meta(meta: Mapping[str, Any], where: str) -> dict[str, Any]:
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    num_keypoints = meta["num_keypoints"]
    if not isinstance(num_keypoints, int) or isinstance(num_keypoints, bool) or num_keypoints < 1:
        raise ValueError(
            f"{where}: num_keypoints must be a positive integer, got {num_keypoints!r}"
        )
    fps = meta["fps"]
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise ValueError(f"{where}: fps must be a positive number, got {fps!r}")
    return dict(meta)


def _check_arrays(
    values: np.ndarray, frame_indices: np.ndarray, num_keypoints: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values)
    frame_indices = np.asarray(frame_indices)
    width = 6 * num_keypoints
    if values.ndim != 2 or values.shape[1] != width:
        raise ValueError(
            f"{where}: values must be (T, {width}) for {num_keypoints} keypoints, "
            f"got shape {values.shape}"
        )
    if frame_indices.shape != (len(values),):
        raise ValueError(
            f"{where}: frame_indices must be ({len(values)},), got shape {frame_indices.shape}"
        )
    if not np.issubdtype(frame_indices.dtype, np.integer):
        raise ValueError(f"{where}: frame_indices must be integers, got {frame_indices.dtype}")
    if len(frame_indices) and (frame_indices[0] < 0 or (np.diff(frame_indices) <= 0).any()):
        raise ValueError(f"{where}: frame_indices must be non-negative and strictly increasing")
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: values contain NaN or Inf")
    return values.astype(np.float32), frame_indices.astype(np.int64)


def save_sequences(
    folder: str | Path,
    sequences: Mapping[str, tuple[np.ndarray, np.ndarray]],
    meta: Mapping[str, Any],
) -> Path:
    """Write name -> (values, frame_indices) and meta.yaml into `folder` (created if needed)."""
    folder = Path(folder)
    meta = _check_meta(meta, "sequence meta")
    checked = {}
    for name, (values, frame_indices) in sequences.items():
        _check_name(name)
        checked[name] = _check_arrays(values, frame_indices, meta["num_keypoints"], name)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (values, frame_indices) in checked.items():
        np.savez(folder / f"{name}.npz", values=values, frame_indices=frame_indices)
    (folder / META_NAME).write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


def _load_npz(path: Path, num_keypoints: int) -> KeypointSequence:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, expected an archive with named arrays")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    missing = [key for key in ("values", "frame_indices") if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)}")
    values, frame_indices = _check_arrays(
        arrays["values"], arrays["frame_indices"], num_keypoints, str(path)
    )
    return KeypointSequence(path.stem, values, frame_indices)


def load_sequences(folder: str | Path) -> tuple[list[KeypointSequence], dict[str, Any]]:
    """(sequences sorted by name, meta) from a sequence folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"keypoint sequence folder not found: {folder}")
    meta = _check_meta(config_io.load_yaml(folder / META_NAME), str(folder / META_NAME))
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise ValueError(f"{folder}: no <video>.npz sequence files")
    return [_load_npz(path, meta["num_keypoints"]) for path in paths], meta
