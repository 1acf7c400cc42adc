"""Model configs written in the FOMM reference's own YAML format (its config/*.yaml files).

A reference config keeps the model sizes under `model_params` (common_params,
kp_detector_params, generator_params with dense_motion_params inside) and the frame size under
`dataset_params.frame_shape` ([H, W, C]). Whatever it leaves out takes the reference code's
constructor default (REFERENCE_DEFAULTS), so a config for taichi-256, fashion-256, nemo-256,
vox-adv-256 or a user's own training reads exactly as the reference would build it.

Two settings exist here but not in the reference YAML (see model_config.ModelConfig):
- warp_align_corners: the reference calls grid_sample without align_corners. Under PyTorch 1.0,
  on which the published checkpoints were trained, that sampled with align_corners=True; since
  PyTorch 1.3 it means False. The default here is True, the training-time behaviour (and the one
  of the shipped profiles); pass False to reproduce the reference run on current PyTorch.
- resize_align_corners: always False, as the reference's F.interpolate calls mean on any version.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kp_motion import config as config_io
from kp_motion.models.model_config import (
    DenseMotionParams,
    GeneratorParams,
    KeypointDetectorParams,
    ModelConfig,
    config_from_dict,
    load_profile,
)

# The grid_sample setting under which the published reference checkpoints were trained.
DEFAULT_WARP_ALIGN_CORNERS = True
# The reference dataset's default frame shape (frames_dataset.FramesDataset), [H, W, C].
DEFAULT_FRAME_SHAPE = (256, 256, 3)

# Constructor defaults of the reference modules for keys its YAML files may omit.
REFERENCE_DEFAULTS = {
    "common_params": {"estimate_jacobian": False},
    "kp_detector_params": {"scale_factor": 1.0, "single_jacobian_map": False, "pad": 0},
    "generator_params": {"estimate_occlusion_map": False},
    "dense_motion_params": {"scale_factor": 1.0, "kp_variance": 0.01},
}
REQUIRED = {
    "common_params": ("num_kp", "num_channels"),
    "kp_detector_params": ("temperature", "block_expansion", "max_features", "num_blocks"),
    "generator_params": (
        "block_expansion",
        "max_features",
        "num_down_blocks",
        "num_bottleneck_blocks",
        "dense_motion_params",
    ),
    "dense_motion_params": ("block_expansion", "max_features", "num_blocks"),
}


def is_reference_format(data: dict) -> bool:
    """A reference config has `model_params`; a project profile has its fields at the top."""
    return "model_params" in data


def _section(data: Any, name: str, where: str) -> dict[str, Any]:
    """A section with its defaults filled in; refuses missing and unknown keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    missing = [key for key in REQUIRED[name] if key not in data]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    known = set(REQUIRED[name]) | set(REFERENCE_DEFAULTS[name])
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} for the FOMM model")
    return {**REFERENCE_DEFAULTS[name], **data}


def _frame_shape(data: dict, where: str) -> tuple[int, int, int]:
    dataset = data.get("dataset_params") or {}
    shape = dataset.get("frame_shape", DEFAULT_FRAME_SHAPE) if isinstance(dataset, dict) else None
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        raise ValueError(f"{where}: dataset_params.frame_shape must be [height, width, channels]")
    return tuple(int(side) for side in shape)


def config_from_reference_dict(
    data: dict,
    name: str,
    where: str,
    warp_align_corners: bool = DEFAULT_WARP_ALIGN_CORNERS,
) -> ModelConfig:
    """A ModelConfig from the parsed reference YAML `data` (`where` prefixes error messages)."""
    model = data.get("model_params")
    if not isinstance(model, dict):
        raise ValueError(f"{where}: no model_params mapping (not a FOMM reference config)")
    for section in ("common_params", "kp_detector_params", "generator_params"):
        if section not in model:
            raise ValueError(f"{where}: model_params.{section} is missing")
    common = _section(model["common_params"], "common_params", f"{where} common_params")
    detector = _section(
        model["kp_detector_params"], "kp_detector_params", f"{where} kp_detector_params"
    )
    generator = _section(model["generator_params"], "generator_params", f"{where} generator")
    dense = _section(
        generator.pop("dense_motion_params"), "dense_motion_params", f"{where} dense_motion"
    )
    height, width, channels = _frame_shape(data, where)
    if channels != common["num_channels"]:
        raise ValueError(
            f"{where}: frame_shape has {channels} channels but num_channels is "
            f"{common['num_channels']}"
        )
    values = {
        "name": name,
        "image_size": [height, width],
        "num_channels": common["num_channels"],
        "num_kp": common["num_kp"],
        "estimate_jacobian": common["estimate_jacobian"],
        "warp_align_corners": warp_align_corners,
        "resize_align_corners": False,
        "kp_detector": _fields_of(KeypointDetectorParams, detector),
        "dense_motion": _fields_of(DenseMotionParams, dense),
        "generator": {
            **_fields_of(GeneratorParams, generator),
            "warped_skips": False,
            "output_blend": False,
        },
    }
    return config_io.from_dict(ModelConfig, values, where=where)


def _fields_of(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of `values` that are fields of dataclass `cls`."""
    names = {field.name for field in dataclasses.fields(cls)}
    return {key: value for key, value in values.items() if key in names}


def resolve_model_config(
    spec: str | Path | ModelConfig, warp_align_corners: bool | None = None
) -> ModelConfig:
    """The config for a reference checkpoint: a shipped profile's name, a project profile YAML,
    or a YAML in the FOMM reference's format. warp_align_corners=None keeps the config's own
    setting (True for the shipped profiles and, by default, for reference YAML files)."""
    if isinstance(spec, ModelConfig):
        config = spec
    elif str(spec).endswith((".yaml", ".yml")) or Path(spec).is_file():
        data = config_io.load_yaml(spec)
        if is_reference_format(data):
            config = config_from_reference_dict(data, Path(spec).stem, str(spec))
        else:
            config = config_from_dict(data, where=str(spec))
    else:
        config = load_profile(spec)
    if warp_align_corners is None or warp_align_corners == config.warp_align_corners:
        return config
    return dataclasses.replace(config, warp_align_corners=warp_align_corners)
