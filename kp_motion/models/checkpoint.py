"""Building, saving and loading FOMM models; the detector's model id.

Project checkpoint = a folder with
    model.yaml            the profile (kp_motion.models.model_config.ModelConfig)
    weights.safetensors   tensors 'kp_detector.<name>' and 'generator.<name>', plus metadata
                          (model_id, profile name, and the caller's extra_meta as JSON)

Reference checkpoints (the FOMM authors' .pth.tar files) hold {"kp_detector": state_dict,
"generator": state_dict, ...}. They are read with torch.load(weights_only=True) only, which
never runs code from the file, and loaded with strict key and shape checks.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kp_motion import config as config_io
from kp_motion import paths
from kp_motion.devices import resolve_device  # noqa: F401  (callers import it from here too)
from kp_motion.models.generator import OcclusionAwareGenerator
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.models.model_config import ModelConfig, config_from_dict
from kp_motion.models.reference_config import resolve_model_config
from kp_motion.names import DEFAULT_MODEL  # the embedded default model's folder name
from kp_motion.state_dicts import OPTIONAL_SUFFIX, compare_state_dict

CONFIG_FILE = "model.yaml"
WEIGHTS_FILE = "weights.safetensors"
DETECTOR_PREFIX = "kp_detector."
GENERATOR_PREFIX = "generator."
CHECKPOINT_FORMAT = "kp_motion-fomm-1"
MODEL_ID_LENGTH = 16
# BatchNorm's batch counter does not change any output (the momentum is fixed), and older
# checkpoints lack it: it may be missing, and it is left out of the model id.
MAX_LISTED_KEYS = 8


def build_models(
    config: ModelConfig, device: torch.device | str = "cpu"
) -> tuple[KeypointDetector, OcclusionAwareGenerator]:
    """Freshly initialised detector and generator for a profile."""
    return KeypointDetector(config).to(device), OcclusionAwareGenerator(config).to(device)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def strict_load(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Load `state_dict` into `module`, refusing any missing/unexpected key or shape mismatch."""
    expected = module.state_dict()
    diff = compare_state_dict(expected, state_dict)
    mismatched = [f"{key} {got} vs model {want}" for key, got, want in diff.mismatched]
    problems = []
    if diff.missing:
        problems.append(f"missing keys ({len(diff.missing)}): {_listed(diff.missing)}")
    if diff.unexpected:
        problems.append(f"unexpected keys ({len(diff.unexpected)}): {_listed(diff.unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_listed(mismatched)}")
    if problems:
        raise ValueError(f"{what} does not match the model: " + "; ".join(problems))
    complete = dict(state_dict)
    for key, value in expected.items():
        complete.setdefault(key, value)  # only optional batch counters can still be absent
    module.load_state_dict(complete, strict=True)


def _detector_config_dict(config: ModelConfig) -> dict[str, Any]:
    """The settings that change the detector's output (the generator's do not)."""
    full = config_io.to_dict(config)
    keys = ("image_size", "num_channels", "num_kp", "estimate_jacobian", "kp_detector")
    return {key: full[key] for key in keys}


def model_id(config: ModelConfig, kp_detector: nn.Module) -> str:
    """Short hex id of the detector's settings and weights (sent with every keypoint frame)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(_detector_config_dict(config), sort_keys=True).encode())
    state = kp_detector.state_dict()
    for key in sorted(state):
        if key.endswith(OPTIONAL_SUFFIX):
            continue
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:MODEL_ID_LENGTH]


def save_checkpoint(
    folder: str | Path,
    config: ModelConfig,
    kp_detector: nn.Module,
    generator: nn.Module,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write folder/model.yaml and folder/weights.safetensors; returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for prefix, module in ((DETECTOR_PREFIX, kp_detector), (GENERATOR_PREFIX, generator)):
        for key, value in module.state_dict().items():
            tensors[prefix + key] = value.detach().cpu().contiguous()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "profile": config.name,
        "model_id": model_id(config, kp_detector),
        "extra_meta": json.dumps(extra_meta or {}, sort_keys=True, default=str),
    }
    config_io.save(config, folder / CONFIG_FILE)
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata=metadata)
    return folder


def embedded_model_folder(name: str = DEFAULT_MODEL) -> Path:
    """Where the embedded model `name` lives (it may not exist)."""
    return paths.models_dir() / name


class CheckpointNotFoundError(FileNotFoundError):
    """No checkpoint where the user pointed (or the embedded default is missing); one line."""


def resolve_checkpoint(spec: str | Path | None = None) -> Path:
    """THE checkpoint rule of every entry point: a path, the name of an embedded model folder
    under models/, or empty/None for the embedded default model."""
    if not spec:
        folder = embedded_model_folder()
        if not folder.exists():
            raise CheckpointNotFoundError(
                f"the embedded default model {folder} is not there; give a checkpoint folder"
            )
        return folder
    path = Path(spec).expanduser()
    if path.exists():
        return path
    embedded = embedded_model_folder(str(spec))
    if embedded.exists():
        return embedded
    raise CheckpointNotFoundError(
        f"checkpoint not found: {spec} (neither a path nor an embedded model {embedded})"
    )


def checkpoint_folder(path: str | Path) -> Path:
    """The checkpoint folder for a folder, its model.yaml or its weights.safetensors."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"not a kp_motion checkpoint: {folder / name} is missing")
    return folder


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The metadata saved with a project checkpoint (format, profile, model_id, extra_meta)."""
    from safetensors import safe_open

    weights = checkpoint_folder(path) / WEIGHTS_FILE
    try:
        with safe_open(str(weights), framework="pt") as reader:
            metadata = dict(reader.metadata() or {})
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{weights}: not a readable safetensors file ({error})") from None
    if "extra_meta" in metadata:
        metadata["extra_meta"] = json.loads(metadata["extra_meta"])
    return metadata


def _split_weights(tensors: dict[str, torch.Tensor], source: Path) -> tuple[dict, dict]:
    detector, generator, stray = {}, {}, []
    for key, value in tensors.items():
        if key.startswith(DETECTOR_PREFIX):
            detector[key[len(DETECTOR_PREFIX) :]] = value
        elif key.startswith(GENERATOR_PREFIX):
            generator[key[len(GENERATOR_PREFIX) :]] = value
        else:
            stray.append(key)
    if stray:
        raise ValueError(f"{source}: tensors outside kp_detector./generator.: {_listed(stray)}")
    return detector, generator


def load_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[ModelConfig, KeypointDetector, OcclusionAwareGenerator]:
    """Load a project checkpoint (folder, model.yaml or weights.safetensors), in eval mode."""
    from safetensors.torch import load_file

    folder = checkpoint_folder(path)
    config = config_from_dict(
        config_io.load_yaml(folder / CONFIG_FILE), where=str(folder / CONFIG_FILE)
    )
    weights = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{weights}: not a readable safetensors file ({error})") from None
    detector_state, generator_state = _split_weights(tensors, weights)
    kp_detector, generator = build_models(config)
    strict_load(kp_detector, detector_state, f"{weights} (kp_detector, profile {config.name})")
    strict_load(generator, generator_state, f"{weights} (generator, profile {config.name})")
    return config, kp_detector.to(device).eval(), generator.to(device).eval()


def _unpickler_reason(error: Exception) -> str:
    """The specific reason in torch's long weights_only message (e.g. 'Unsupported global')."""
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip()
            first_sentence = reason.split(". ", 1)[0].rstrip(".")
            return f": {first_sentence}" if first_sentence else ""
    return ""


def read_reference_file(path: str | Path) -> dict[str, Any]:
    """torch.load(weights_only=True) of a reference .pth.tar, with readable errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference checkpoint not found: {path}")
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: refused by torch.load(weights_only=True): not a plain state-dict "
            f"checkpoint (damaged, or holding pickled objects, which are never unpickled "
            f"here){_unpickler_reason(error)}"
        ) from None
    except Exception as error:  # a damaged file fails anywhere in the unpickler, any type
        detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    if not isinstance(contents, dict):
        raise ValueError(f"{path}: expected a dict of state dicts, got {type(contents).__name__}")
    return contents


def load_reference_checkpoint(
    path: str | Path,
    profile: str | Path | ModelConfig,
    device: torch.device | str = "cpu",
    warp_align_corners: bool | None = None,
) -> tuple[ModelConfig, KeypointDetector, OcclusionAwareGenerator]:
    """Load the FOMM authors' checkpoint for a config: a shipped reference profile (vox-256,
    mgif-256, ...), a project profile YAML, or a YAML in the reference's own format (taichi-256,
    fashion-256, a user's training, ...). warp_align_corners=None keeps the config's setting.
    This is the loader of `kp-motion animate --reference-checkpoint`."""
    config = resolve_model_config(profile, warp_align_corners)
    contents = read_reference_file(path)
    states = {}
    for part in ("kp_detector", "generator"):
        state = contents.get(part)
        if not isinstance(state, dict):
            found = ", ".join(sorted(str(k) for k in contents)) or "nothing"
            raise ValueError(f"{path}: no '{part}' state dict (found {found})")
        states[part] = state
    kp_detector, generator = build_models(config)
    strict_load(kp_detector, states["kp_detector"], f"{path} kp_detector for {config.name}")
    strict_load(generator, states["generator"], f"{path} generator for {config.name}")
    return config, kp_detector.to(device).eval(), generator.to(device).eval()
