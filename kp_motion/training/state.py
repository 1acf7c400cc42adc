"""Training checkpoints: the project checkpoint (weights) plus what resuming needs.

A checkpoint folder <out>/checkpoints/step_<N>/ holds
    model.yaml, weights.safetensors   kp_motion.models.checkpoint.save_checkpoint's files
    training_state.pt                 step, epoch, position in the epoch, optimiser, LR schedule
                                      and the random generators of every process
training_state.pt holds only tensors, numbers, strings and containers, so it is read back with
torch.load(weights_only=True), which never runs code from the file. A folder is written under a
temporary name and renamed when complete, so an interrupted save never leaves a half checkpoint
that looks finished.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "training_state.pt"
CHECKPOINTS_DIR = "checkpoints"
_FOLDER_PATTERN = re.compile(r"^step_(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


@dataclass
class TrainingPosition:
    """Where training stands: optimiser steps done, current epoch, batches done in it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random generators (torch CPU/CUDA, numpy, Python), weights_only-safe."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_position": int(numpy_state[2]),
        "numpy_has_gauss": int(numpy_state[3]),
        "numpy_cached_gauss": float(numpy_state[4]),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_position"],
            state["numpy_has_gauss"],
            state["numpy_cached_gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def write_training_state(folder: Path, state: dict[str, Any]) -> None:
    torch.save(state, folder / STATE_FILE)


def read_training_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"not a training checkpoint (no {STATE_FILE}): {folder}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise ValueError(f"{path}: not a readable training state ({error})") from None
    required = ("step", "epoch", "batch_in_epoch", "optimizer", "scheduler", "rng", "world_size")
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: training state lacks {', '.join(missing)}")
    return state


def list_checkpoints(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `checkpoints_dir` as (step, folder), oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for folder in checkpoints_dir.iterdir():
        match = _FOLDER_PATTERN.match(folder.name)
        if match and (folder / STATE_FILE).is_file():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint folder, or a training output folder (its latest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    if (path / STATE_FILE).is_file():
        return path
    checkpoints = list_checkpoints(path / CHECKPOINTS_DIR)
    if not checkpoints:
        raise FileNotFoundError(
            f"{path}: neither a training checkpoint ({STATE_FILE}) nor an output folder with "
            f"{CHECKPOINTS_DIR}/step_*"
        )
    return checkpoints[-1][1]


def publish_checkpoint(staging: Path, final: Path) -> Path:
    """Move a fully written staging folder to its final name (replacing an older copy)."""
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return final


def prune_checkpoints(checkpoints_dir: Path, keep: int) -> None:
    """Delete all but the `keep` most recent checkpoints."""
    for _, folder in list_checkpoints(checkpoints_dir)[:-keep]:
        shutil.rmtree(folder)
