"""Settings of `kp-motion evaluate`: the fields live here, the shipped values in
config/evaluate.yaml (one source of truth per setting; the dataclasses carry no defaults).
Command-line options override single fields of the loaded settings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from kp_motion import config as config_io
from kp_motion.names import MODES
from kp_motion.paths import config_path

MOTION_MODES = ("relative", "absolute")


@dataclass
class DatasetSettings:
    # "synthetic" (generated procedurally) or the root of a first-order-model-layout dataset
    # (root/train, root/test: one video file or frame folder per video).
    source: str
    split: str
    max_videos: int | None  # first N videos of the split (sorted by name); null = all
    max_frames: int | None  # frames read per video; null = all
    synthetic_videos: int  # videos generated when source is "synthetic"
    synthetic_frames: int  # frames per generated video
    seed: int  # seed of the synthetic videos and of the transfer pairing


@dataclass
class FvdSettings:
    i3d_weights: str | None  # Kinetics-400 RGB I3D state dict; null = FVD unavailable
    feature: str  # "logits" (400-d, the original FVD's feature) or "pre_logits" (1024-d)
    input_size: int  # frames are resized to input_size^2 for I3D (224 for the real model)
    clip_length: int  # frames per I3D clip
    clip_stride: int  # frames between clip starts
    batch_size: int  # clips per I3D forward pass


@dataclass
class CodecSettings:
    enabled: bool
    videos: int  # the first N videos get the (slow) bitrate search
    preset: str  # libx264 preset
    min_kbps: float
    max_kbps: float
    relative_tolerance: float  # stop the bisection when high / low bitrate < 1 + this
    max_trials: int
    # Also search, per method, k and video, the bitrate H.264 needs for the method's PSNR (up
    # to max_trials encodings each). The comparison at the keypoint stream's own bit rate (two
    # encodings per k and video) is always made.
    match_psnr: bool = True


@dataclass
class BandwidthSettings:
    # The message size is the graph's own (its frame_id comes from config/nodes.yaml).
    fps: float | None  # stream rate; null = the videos' own fps


@dataclass
class EvaluateSettings:
    dataset: DatasetSettings
    # FOMM checkpoint: a folder name under the embedded models/ folder, or a path.
    checkpoint: str
    # Forecasters: "hold-last", "constant-velocity", a folder name under models/forecasters/,
    # or a path to a forecaster checkpoint folder. The label is the name/folder name.
    forecasters: list[str]
    block_sizes: list[int]  # k: k true keypoint frames, then k predicted, repeated
    modes: list[str]  # "reconstruction" and/or "transfer"
    reconstruction_motion: str  # keypoint normalisation in reconstruction ("absolute" in FOMM)
    transfer_motion: str  # keypoint normalisation in transfer ("relative" in the method)
    adapt_movement_scale: bool  # relative motion: scale by the keypoint hulls' size ratio
    sample: bool  # forecasters draw from their latent distribution instead of the mean
    device: str  # torch device for the FOMM, forecasters and I3D
    detect_batch_size: int  # frames per keypoint-detector pass
    # Columns of the frame-strip figure; 0 = no figure (its first row shows the real frames).
    strip_frames: int
    fvd: FvdSettings
    codec: CodecSettings
    bandwidth: BandwidthSettings

    def __post_init__(self) -> None:
        check_settings(self)


def check_settings(settings: EvaluateSettings) -> None:
    """Raise ValueError naming the first setting that cannot work."""
    if not settings.block_sizes or any(k < 1 for k in settings.block_sizes):
        raise ValueError(f"block_sizes must be positive integers, got {settings.block_sizes}")
    unknown = [mode for mode in settings.modes if mode not in MODES]
    if unknown or not settings.modes:
        raise ValueError(
            f"modes must be a non-empty subset of {MODES}, got {settings.modes}"
        )
    for name in ("reconstruction_motion", "transfer_motion"):
        if getattr(settings, name) not in MOTION_MODES:
            raise ValueError(
                f"{name} must be one of {MOTION_MODES}, got {getattr(settings, name)!r}"
            )
    if not settings.forecasters:
        raise ValueError("at least one forecaster is needed")
    if len(set(forecaster_label(f) for f in settings.forecasters)) != len(settings.forecasters):
        raise ValueError(f"forecaster labels must be unique, got {settings.forecasters}")
    if settings.fvd.feature not in ("logits", "pre_logits"):
        raise ValueError(
            f"fvd.feature must be 'logits' or 'pre_logits', got {settings.fvd.feature!r}"
        )
    positive = {
        "fvd.clip_length": settings.fvd.clip_length,
        "fvd.clip_stride": settings.fvd.clip_stride,
        "fvd.input_size": settings.fvd.input_size,
        "fvd.batch_size": settings.fvd.batch_size,
        "detect_batch_size": settings.detect_batch_size,
    }
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if settings.strip_frames < 0:
        raise ValueError(f"strip_frames must be >= 0 (0 = no strip), got {settings.strip_frames}")


def forecaster_label(spec: str) -> str:
    """The column name of a forecaster spec: a baseline's name or a folder's name."""
    return Path(spec).name or spec


def load_settings(path: str | Path | None = None) -> EvaluateSettings:
    """Read config/evaluate.yaml (or `path`) into EvaluateSettings."""
    path = path or config_path("evaluate.yaml")
    data = _without_retired_keys(config_io.load_yaml(path), path)
    return config_io.from_dict(EvaluateSettings, data, where=str(path))


def _without_retired_keys(data: dict, path: str | Path) -> dict:
    """Settings files written before bandwidth.frame_id was retired keep loading, with a
    warning: the size now comes from the message the graph sends."""
    bandwidth = data.get("bandwidth")
    if isinstance(bandwidth, dict) and "frame_id" in bandwidth:
        warnings.warn(f"{path}: bandwidth.frame_id is no longer used (the message size is the "
                      "graph's, with the camera's frame_id from config/nodes.yaml); remove it",
                      FutureWarning, stacklevel=3)
        data = {**data, "bandwidth": {k: v for k, v in bandwidth.items() if k != "frame_id"}}
    return data
