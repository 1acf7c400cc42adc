"""Training checkpoints and random streams.

A training checkpoint is the model plus one dict (`checkpoint_dict`): the step and the position
in the epoch, the settings, the optimiser (and discriminator) states and the random generators
of every process. On disk, <out>/checkpoints/step_<N>/ holds
    model.yaml, weights.safetensors   the model, as kp_motion.models.checkpoint writes it (so
                                      any command that takes a model takes a checkpoint)
    training_state.pt                 the dict, format TRAINING_STATE_FORMAT
training_state.pt holds only tensors, numbers, strings and containers, so it is read back with
torch.load(weights_only=True), which never runs code from the file. A folder is written under a
temporary name and renamed when complete, so an interrupted save never leaves a half checkpoint
that looks finished.

The learning rate is a pure function of the step (fomm_trainer.learning_rate_factor), so no
scheduler state is saved. States written before this format (format 1, with an LR scheduler's
state and no settings) are read through `migrate_training_state`.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kp_motion import config as config_io
from kp_motion.models.checkpoint import save_checkpoint
from kp_motion.models.model_config import ModelConfig
from kp_motion.training import distributed
from kp_motion.training.adversarial import AdversarialTraining
from kp_motion.training.settings import TrainFommConfig

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
TRAINING_STATE_FORMAT = 2
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
    torch.save({"format": TRAINING_STATE_FORMAT, **state}, folder / STATE_FILE)


_REQUIRED = ("step", "epoch", "batch_in_epoch", "optimizer", "rng", "world_size", "settings")


def read_training_state(folder: Path) -> dict[str, Any]:
    """The training state of a checkpoint folder, in the current format."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"not a training checkpoint (no {STATE_FILE}): {folder}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise ValueError(f"{path}: not a readable training state ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a training state (a {type(state).__name__})")
    state = migrate_training_state(state, str(path))
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise ValueError(f"{path}: training state lacks {', '.join(missing)}")
    return state


def migrate_training_state(state: dict[str, Any], where: str) -> dict[str, Any]:
    """A training state of any known format in the current one (a shallow copy).

    1 -> 2: the LR scheduler states (the trainer's and the discriminator's) are dropped, as the
    learning rate is now computed from the step; format 1 kept no settings (`settings` None:
    the run folder's train_fomm.yaml has them)."""
    state = dict(state)
    found = state.pop("format", 1)
    if found == TRAINING_STATE_FORMAT:
        return state
    if found != 1:
        raise ValueError(
            f"{where}: training state format {found!r} is unknown (this is format "
            f"{TRAINING_STATE_FORMAT})"
        )
    if "scheduler" not in state:
        raise ValueError(f"{where}: training state lacks scheduler (format 1)")
    del state["scheduler"]
    if "adversarial" in state:
        state["adversarial"] = {
            key: value for key, value in state["adversarial"].items() if key != "scheduler"
        }
    state.setdefault("settings", None)
    logger.warning("%s: written by the previous trainer (format 1), migrated", where)
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


# Per-process seed offset: different warps, augmentations and loader workers on each process.
RANK_SEED = 1_000_003


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def checkpoint_dict(
    settings: TrainFommConfig,
    position: TrainingPosition,
    optimizer: torch.optim.Optimizer,
    adversarial: AdversarialTraining | None,
    context: distributed.DistributedContext,
) -> dict[str, Any]:
    """Everything a run resumes from but the model (whose files sit beside it): every process
    must call it, as it gathers their random generators."""
    state = {
        "step": position.step,
        "epoch": position.epoch,
        "batch_in_epoch": position.batch_in_epoch,
        "settings": config_io.to_dict(settings),
        "optimizer": optimizer.state_dict(),
        "rng": _gather_rng_states(context),
        "world_size": context.world_size,
    }
    if adversarial is not None:
        state["adversarial"] = adversarial.state_dict()
    return state


def write_checkpoint(
    out_dir: Path,
    state: dict[str, Any],
    model: tuple[ModelConfig, nn.Module, nn.Module],
    model_meta: dict[str, Any],
    keep: int,
    context: distributed.DistributedContext,
) -> Path | None:
    """Write checkpoints/step_N (rank 0: model files + training state) and prune old ones."""
    folder = None
    if context.is_main:
        checkpoints_dir = out_dir / CHECKPOINTS_DIR
        name = checkpoint_name(state["step"])
        staging = checkpoints_dir / f".{name}.partial"
        save_checkpoint(staging, *model, model_meta)
        write_training_state(staging, state)
        folder = publish_checkpoint(staging, checkpoints_dir / name)
        prune_checkpoints(checkpoints_dir, keep)
    distributed.barrier(context)
    return folder


def restore_checkpoint(
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    adversarial: AdversarialTraining | None,
    context: distributed.DistributedContext,
    seed: int,
) -> TrainingPosition:
    """Load a checkpoint's optimiser states and random streams; its position in the run."""
    optimizer.load_state_dict(state["optimizer"])
    saved_gan = state.get("adversarial")
    if adversarial is not None and saved_gan is not None:
        adversarial.load_state_dict(saved_gan)
    elif adversarial is not None:  # e.g. a reconstruction-only run continued with the GAN on
        logger.warning("the checkpoint has no discriminator: it starts from new weights")
    elif saved_gan is not None:
        logger.info("the checkpoint has a discriminator; the GAN is off in this run")
    position = TrainingPosition(
        int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
    )
    if int(state["world_size"]) == context.world_size:
        restore_rng_state(state["rng"][context.rank], context.device)
    else:
        # Another process count: the old per-process streams do not map onto the new ones.
        logger.warning(
            "resuming with %d processes from a %d-process run: random streams reseeded",
            context.world_size, int(state["world_size"]),
        )  # fmt: skip
        seed_everything(seed + RANK_SEED * context.rank + position.step)
    return position


def _gather_rng_states(context: distributed.DistributedContext) -> list[dict[str, Any]]:
    local = capture_rng_state(context.device)
    if not context.is_distributed:
        return [local]
    gathered: list[Any] = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, local)
    return gathered


