"""Forecaster checkpoints and the single entry point to get a forecaster by name or folder.

A checkpoint is a folder:
    forecaster.yaml       kind, the model's settings, and a record of how it was trained
    weights.safetensors   the model's parameters plus the normalisation statistics
                          (normalizer.mean / normalizer.std)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kp_motion import config as config_io
from kp_motion import names
from kp_motion.forecasting.base import Forecaster, LearnedForecaster, SequenceModel
from kp_motion.forecasting.baselines import BASELINES
from kp_motion.forecasting.linear import load_linear
from kp_motion.forecasting.normalization import MEAN_KEY, STD_KEY, Standardizer
from kp_motion.forecasting.rnn import RnnForecastModel
from kp_motion.forecasting.settings import (
    LINEAR_KINDS,
    RnnSettings,
    VaeSettings,
    VrnnSettings,
)
from kp_motion.forecasting.vae import VaeForecastModel
from kp_motion.forecasting.vrnn import VrnnForecastModel

MANIFEST_NAME = "forecaster.yaml"
WEIGHTS_NAME = "weights.safetensors"
FORMAT_VERSION = 1

MODEL_CLASSES: dict[str, tuple[type[SequenceModel], type]] = {
    "vrnn": (VrnnForecastModel, VrnnSettings),
    "rnn": (RnnForecastModel, RnnSettings),
    "vae": (VaeForecastModel, VaeSettings),
}


def build_model(kind: str, settings: Any) -> SequenceModel:
    """A fresh (untrained) model of `kind` from its settings dataclass."""
    if kind not in MODEL_CLASSES:
        raise ValueError(
            f"unknown forecaster kind {kind!r} (expected one of {list(MODEL_CLASSES)})"
        )
    model_class, settings_class = MODEL_CLASSES[kind]
    if not isinstance(settings, settings_class):
        raise ValueError(f"{kind} needs {settings_class.__name__}, got {type(settings).__name__}")
    return model_class(settings)


def save_checkpoint(
    folder: str | Path,
    model: SequenceModel,
    standardizer: Standardizer,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (with its statistics) to `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()
    }
    tensors.update(standardizer.state_tensors())
    return write_checkpoint_files(folder, tensors, model.kind, model.settings, training)


def write_checkpoint_files(
    folder: Path, tensors: dict[str, torch.Tensor], kind: str, settings: Any,
    training: dict[str, Any] | None,
) -> Path:
    """weights.safetensors + forecaster.yaml: the one layout of every forecaster checkpoint
    (learned and linear)."""
    save_file(tensors, str(folder / WEIGHTS_NAME))
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model": config_io.to_dict(settings),
        "training": training or {},
    }
    (folder / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def read_weights(weights_path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's weights file; a missing or unreadable file is one line."""
    if not weights_path.is_file():
        raise FileNotFoundError(f"forecaster weights not found: {weights_path}")
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{weights_path}: not a readable safetensors file ({error})") from None


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest = config_io.load_yaml(folder / MANIFEST_NAME)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{folder / MANIFEST_NAME}: unsupported format_version {version!r}")
    missing = [key for key in ("kind", "model") if key not in manifest]
    if missing:
        raise ValueError(f"{folder / MANIFEST_NAME}: missing {', '.join(missing)}")
    return manifest


def load_model(
    folder: str | Path, device: str | torch.device = "cpu"
) -> tuple[SequenceModel, Standardizer, dict[str, Any]]:
    """(model in eval mode, its Standardizer, the manifest) from a checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"forecaster checkpoint folder not found: {folder}")
    manifest = _read_manifest(folder)
    kind = manifest["kind"]
    if kind not in MODEL_CLASSES:
        raise ValueError(f"{folder / MANIFEST_NAME}: unknown kind {kind!r}")
    settings_class = MODEL_CLASSES[kind][1]
    settings = config_io.from_dict(settings_class, manifest["model"], f"{folder}: model")
    model = build_model(kind, settings)
    weights_path = folder / WEIGHTS_NAME
    tensors = read_weights(weights_path)
    standardizer = Standardizer.from_state_tensors(tensors)
    parameters = {k: v for k, v in tensors.items() if k not in (MEAN_KEY, STD_KEY)}
    try:
        model.load_state_dict(parameters)
    except RuntimeError as error:
        raise ValueError(f"{weights_path} does not match its {kind} settings: {error}") from None
    return model.to(device).eval(), standardizer, manifest


# Forecaster sets shipped under models/, by the detector whose keypoints they were trained on
# (each member's forecaster.yaml names it: training.detector_model_id / detector).
SET_FOLDERS = {
    "face-128": "forecasters-face128",  # the embedded face model models/fomm-face-128
    "compact-64": "forecasters",  # the embedded detector models/fomm-compact-64
    "vox-256": "forecasters-vox256",  # the FOMM authors' vox-256 checkpoint (vox-cpk.pth.tar)
}
FORECASTER_SETS = {name: SET_FOLDERS[name] for name in names.FORECASTER_SETS}
DEFAULT_SET = names.DEFAULT_FORECASTER_SET


def forecaster_set_folder(name: str) -> Path:
    """The folder of a shipped forecaster set ("face-128", "compact-64", "vox-256")."""
    from kp_motion import paths

    if name not in FORECASTER_SETS:
        known = list(FORECASTER_SETS)
        raise ValueError(f"unknown forecaster set {name!r} (expected one of {known})")
    return paths.models_dir() / FORECASTER_SETS[name]


def forecaster_set_members(name_or_folder: str | Path) -> dict[str, Path]:
    """kind -> checkpoint folder of every member of a set (a set name or a folder of them)."""
    if str(name_or_folder) in FORECASTER_SETS:
        folder = forecaster_set_folder(str(name_or_folder))
    else:
        folder = Path(name_or_folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"forecaster set not found: {name_or_folder} (not a folder, nor one of "
            f"{list(FORECASTER_SETS)})"
        )
    members = {
        _read_manifest(sub)["kind"]: sub
        for sub in sorted(folder.iterdir())
        if (sub / MANIFEST_NAME).is_file()
    }
    if not members:
        raise ValueError(f"{folder}: no forecaster checkpoints (<kind>/{MANIFEST_NAME})")
    return members


def embedded_forecaster_folder(kind: str, set_name: str = DEFAULT_SET) -> Path:
    """Where the shipped forecaster of `kind` of a set lives (default: the embedded one)."""
    return forecaster_set_folder(set_name) / kind


def resolve_forecaster(spec: str) -> str | Path:
    """A baseline name, a checkpoint folder, the name of an embedded forecaster ("vrnn"), or
    SET/KIND for a member of a shipped set (e.g. "vox-256/direct-linear")."""
    if spec in BASELINES:
        return spec
    path = Path(spec).expanduser()
    if path.exists():
        return path
    set_name, _, kind = spec.rpartition("/")
    if set_name in FORECASTER_SETS and kind:
        member = embedded_forecaster_folder(kind, set_name)
        if member.exists():
            return member
        raise FileNotFoundError(f"forecaster set {set_name} has no {kind} forecaster ({member})")
    embedded = embedded_forecaster_folder(spec)
    if embedded.exists():
        return embedded
    raise FileNotFoundError(
        f"forecaster not found: {spec} (not a baseline {sorted(BASELINES)}, a path, "
        f"SET/KIND with SET in {list(FORECASTER_SETS)}, or a folder {embedded})"
    )


def load_forecaster(name_or_folder: str | Path, device: str | torch.device = "cpu") -> Forecaster:
    """A baseline by name ("hold-last", "constant-velocity") or a checkpoint folder (learned
    or linear). A loaded checkpoint's forecaster carries the model_id of the detector it was
    trained on (`detector_model_id`, None where its record names none)."""
    if str(name_or_folder) in BASELINES:
        return BASELINES[str(name_or_folder)]()
    folder = Path(name_or_folder)
    if (folder / MANIFEST_NAME).is_file():
        manifest = _read_manifest(folder)
        if manifest["kind"] in LINEAR_KINDS:
            forecaster = load_linear(folder, manifest)
            forecaster.detector_model_id = trained_detector_id(manifest)
            return forecaster
    model, standardizer, manifest = load_model(name_or_folder, device)
    forecaster = LearnedForecaster(model, standardizer)
    forecaster.detector_model_id = trained_detector_id(manifest)
    return forecaster


def trained_detector_id(manifest: dict[str, Any]) -> str | None:
    """The model_id of the detector whose keypoints a checkpoint was trained on, or None where
    its record names the detector only by a name (the vox-256 set: an external checkpoint)."""
    found = (manifest.get("training") or {}).get("detector_model_id")
    return str(found) if found else None


def detector_mismatch(forecaster: Forecaster, model_id: str, label: str = "") -> str | None:
    """A one-line warning when `forecaster` was trained on keypoints of a detector other than
    `model_id`, else None. Its forecasts are then of the wrong distribution (each detector
    places its keypoints its own way), so callers must show it; a forecaster without a record
    (baselines, sets of external detectors) passes."""
    trained_on = forecaster.detector_model_id
    if trained_on is None or trained_on == model_id:
        return None
    return (
        f"forecaster {label or forecaster.name} was trained on keypoints of detector "
        f"{trained_on}, not of this model ({model_id}): its forecasts will be poor; use the "
        f"forecaster set of this model"
    )


def load_forecaster_set(
    name_or_folder: str | Path, device: str | torch.device = "cpu"
) -> dict[str, Forecaster]:
    """kind -> forecaster for every member of a shipped set (or a folder of checkpoints)."""
    return {
        kind: load_forecaster(folder, device)
        for kind, folder in forecaster_set_members(name_or_folder).items()
    }
