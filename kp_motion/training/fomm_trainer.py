"""The FOMM training loop: `train_fomm` reads top to bottom, as one function.

Runs as one process, or as one of N processes under torchrun (DistributedDataParallel, each
process on its own device and its own share of every epoch, see kp_motion.training.distributed).
Only rank 0 writes files and shows the progress bar. The learning rate is a pure function of
the step (`learning_rate_factor`), and a checkpoint is one dict (`checkpoint_dict`): resuming
loads it and goes on, nothing else is restored or patched.

Output folder:
    train_fomm.yaml        the training settings of the run
    train_log.csv          every `log_every` steps: losses (means over the interval), LRs, speed
    validation.csv         after every epoch and at the end: reconstruction L1 on the test split
    tensorboard/           the same scalars, only when the tensorboard package is installed
    checkpoints/step_N/    resumable checkpoints (kp_motion.training.state)
    model/                 the final weights as a project checkpoint (for animate, extract, ...)
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kp_motion import config as config_io
from kp_motion.models.checkpoint import build_models, load_model, save_checkpoint, strict_load
from kp_motion.models.model_config import ModelConfig, load_profile
from kp_motion.training import distributed
from kp_motion.training.adversarial import AdversarialTraining
from kp_motion.training.csv_log import CsvLog
from kp_motion.training.full_model import FommTrainingModel
from kp_motion.training.losses import keypoints_in_use, load_vgg19
from kp_motion.training.settings import OptimizerSettings, TrainFommConfig
from kp_motion.training.state import (
    CHECKPOINTS_DIR,
    TrainingPosition,
    capture_rng_state,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    publish_checkpoint,
    read_training_state,
    resolve_resume,
    restore_rng_state,
    write_training_state,
)

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
CONFIG_COPY = "train_fomm.yaml"
TRAIN_LOG = "train_log.csv"
VALIDATION_LOG = "validation.csv"
TENSORBOARD_DIR = "tensorboard"
# The generator side's terms, in log order (extra terms follow, by name).
LOSS_TERMS = (
    "reconstruction_l1",
    "ssim",
    "perceptual",
    "equivariance_value",
    "equivariance_jacobian",
    "mask_balance",
    "generator_gan",
    "feature_matching",
)
# The discriminator's own loss: logged, not part of the generator's "loss".
DISCRIMINATOR_TERM = "discriminator_gan"
# still_l1: the same frames compared with the unchanged source frame, i.e. what showing no
# motion at all scores. A model below it has learned motion; one above it only blurs.
# keypoints_in_use: mean over the videos of losses.keypoints_in_use (keypoint collapse shows).
VALIDATION_COLUMNS = (
    "step", "epochs_completed", "validation_l1", "still_l1", "keypoints_in_use", "videos",
    "frames",
)  # fmt: skip
# Per-process seed offsets: different warps, augmentations and loader workers on each process.
_RANK_SEED = 1_000_003
_EPOCH_SEED = 7919


def train_columns(settings: TrainFommConfig) -> tuple[str, ...]:
    """The columns of train_log.csv for a run with these settings."""
    return (
        "step", "epoch", "lr_kp_detector", "lr_generator", "lr_discriminator", "loss",
        *LOSS_TERMS, *sorted(settings.losses.extra), DISCRIMINATOR_TERM, "seconds_per_step",
    )  # fmt: skip


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainingData:
    """The datasets a run trains and validates on (validation may be absent)."""

    train: Dataset
    validation: Dataset | None


@dataclass
class TrainingResult:
    steps: int
    epochs_completed: int
    final_model: Path
    last_checkpoint: Path | None
    validation_l1: float | None
    seconds: float


# --------------------------------------------------------------------------- data


def profile_size(model_config: ModelConfig) -> int:
    """The datasets serve square frames: the profile's side."""
    height, width = model_config.image_size
    if height != width:
        raise ValueError(
            f"profile {model_config.name!r} takes {height}x{width} frames; the datasets serve "
            f"square frames only"
        )
    return height


def load_training_data(
    root: str | Path,
    settings: TrainFommConfig,
    model_config: ModelConfig,
    progress: bool = True,
    pair_targets: Callable | None = None,
) -> TrainingData:
    """FramesDataset on <root>/train and VideoDataset on <root>/test (None when absent).

    The pairs and augmentations depend only on (seed, epoch, index), so a resumed run sees
    exactly the data the interrupted one would have, with any number of loader workers.
    `pair_targets` adds tensors to every training pair (FramesDataset), for extra loss terms.
    """
    from kp_motion.data.datasets import FramesDataset, VideoDataset

    size = profile_size(model_config)
    data = settings.data
    train = FramesDataset(
        root,
        "train",
        size=size,
        fit=data.fit,
        is_train=True,
        repeats=data.repeats,
        augmentation=data.augmentation,
        cache=data.cache,
        seed=settings.seed,
        progress=progress,
        max_frame_gap=data.max_frame_gap or None,
        pair_targets=pair_targets,
    )
    validation = None
    if (Path(root) / "test").is_dir():
        validation = VideoDataset(
            root,
            "test",
            size=size,
            fit=data.fit,
            max_frames=settings.validation.max_frames or None,
            cache=data.cache,
            progress=progress,
        )
    else:
        logger.warning("%s has no test/ split: training without validation", root)
    return TrainingData(train, validation)


# --------------------------------------------------------------------------- learning rate


def learning_rate_factor(
    step: int, optimizer: OptimizerSettings, steps_per_epoch: int, epochs: int
) -> float:
    """Multiplier of the base learning rates for optimiser step `step` (0-based): a linear
    warm-up over optimizer.warmup_steps, times the schedule of the step's epoch
    (step // steps_per_epoch): multistep, cosine from 1 to 0 over `epochs`, or constant."""
    epoch = step // steps_per_epoch
    if optimizer.schedule == "multistep":
        passed = sum(1 for milestone in optimizer.milestones if epoch >= milestone)
        factor = optimizer.gamma**passed
    elif optimizer.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))
    else:
        factor = 1.0
    if step < optimizer.warmup_steps:
        factor *= (step + 1) / (optimizer.warmup_steps + 1)
    return factor


def set_learning_rates(optimizer: torch.optim.Optimizer, base_rates: list[float], factor: float):
    for group, base in zip(optimizer.param_groups, base_rates, strict=True):
        group["lr"] = base * factor


# --------------------------------------------------------------------------- the loop


def train_fomm(
    settings: TrainFommConfig,
    data: TrainingData,
    out_dir: str | Path,
    context: distributed.DistributedContext | None = None,
    model_config: ModelConfig | None = None,
    resume: str | Path | None = None,
    init_from: str | Path | None = None,
    vgg19_weights: str | Path | None = None,
    extra_meta: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> TrainingResult:
    """Train until all epochs (or max_steps) are done; writes the final model to out/model.

    `resume` continues a run from a checkpoint folder (or an output folder's latest one);
    `init_from` starts a new run from a model's weights."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    context = context or distributed.setup_distributed("cpu")
    device = context.device
    show_progress = show_progress and context.is_main
    extra_meta = dict(extra_meta or {})
    resume_folder = _start_folder(out_dir, resume, init_from)
    checkpoint = read_training_state(resume_folder) if resume_folder is not None else None

    # Models and optimisers: the same initial weights on every process (DDP broadcasts too).
    seed_everything(settings.seed)
    model_config, kp_detector, generator = build_training_models(
        settings, model_config, resume_folder or init_from, resuming=checkpoint is not None
    )
    if init_from is not None:
        extra_meta["initialised_from"] = str(init_from)
    vgg = load_vgg19(vgg19_weights, device) if vgg19_weights else None
    training_model = FommTrainingModel(
        kp_detector, generator, settings.losses, model_config.estimate_jacobian, vgg
    ).to(device)
    model = wrap_for_distributed(training_model, context)
    betas = tuple(settings.optimizer.betas)
    optimizer = torch.optim.Adam(
        [{"params": kp_detector.parameters()}, {"params": generator.parameters()}], betas=betas
    )
    base_rates = [settings.optimizer.lr_kp_detector, settings.optimizer.lr_generator]
    adversarial = None
    if settings.adversarial.enabled:
        adversarial = AdversarialTraining(
            settings.adversarial, model_config.num_channels, model_config.num_kp, betas, device,
            lambda module: wrap_for_distributed(module, context),
        )  # fmt: skip

    # Data: each process its share of every epoch, in batches that resume mid-epoch.
    sampler = distributed.ResumableDistributedSampler(
        data.train, num_replicas=context.world_size, rank=context.rank,
        batch_size=settings.batch_size, shuffle=True, seed=settings.seed,
    )  # fmt: skip
    steps_per_epoch = sampler.num_samples // settings.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"the training set gives {sampler.num_samples} pairs per process and epoch, "
            f"fewer than batch_size {settings.batch_size}: add videos, raise data.repeats "
            f"or lower batch_size"
        )
    planned_steps = settings.epochs * steps_per_epoch
    total_steps = min(planned_steps, settings.max_steps) if settings.max_steps else planned_steps
    # The loader's own generator (reseeded each epoch) gives the worker seeds; drawing them from
    # the global generator would make a resumed run diverge from an uninterrupted one.
    loader_generator = torch.Generator()
    loader = DataLoader(
        data.train, batch_size=settings.batch_size, sampler=sampler,
        num_workers=settings.data.num_workers,
        drop_last=True,  # a batch of 1 would make BatchNorm's statistics meaningless
        pin_memory=device.type == "cuda",
        persistent_workers=False,  # fresh workers copy the dataset with its current epoch
        generator=loader_generator,
    )  # fmt: skip

    # Where to start: step 0, or the checkpoint's position, optimisers and random streams.
    seed_everything(settings.seed + _RANK_SEED * context.rank)
    position = TrainingPosition()
    if checkpoint is not None:
        position = restore_checkpoint(checkpoint, optimizer, adversarial, context, settings.seed)
        if position.batch_in_epoch > steps_per_epoch:
            raise ValueError(
                f"{resume_folder}: saved mid-epoch at batch {position.batch_in_epoch}, but an "
                f"epoch now has only {steps_per_epoch} batches (other data or batch size?)"
            )
    logs = TrainingLogs(out_dir, settings, context)
    logs.start(resumed_at=position.step if checkpoint is not None else None)

    def save(validation_l1: float | None = None) -> Path | None:
        state = checkpoint_dict(settings, position, optimizer, adversarial, context)
        model_meta = {**extra_meta, "step": position.step, "epoch": position.epoch,
                      "train_config": state["settings"]}  # fmt: skip
        return write_checkpoint(out_dir, state, (model_config, kp_detector, generator),
                                model_meta, settings.keep_checkpoints, context)  # fmt: skip

    def validate_and_log() -> float | None:
        result = validate(training_model, data.validation, settings, context)
        logs.validation_row(position, result)
        return None if result is None else result["validation_l1"]

    progress = tqdm(
        total=total_steps, initial=min(position.step, total_steps), desc="train fomm",
        unit="step", disable=not show_progress, dynamic_ncols=True,
    )  # fmt: skip
    last_checkpoint = validation_l1 = None
    interval = LossInterval()
    while position.epoch < settings.epochs and position.step < total_steps:
        sampler.set_epoch(position.epoch, position.batch_in_epoch)
        loader_generator.manual_seed(
            settings.seed * _RANK_SEED + position.epoch * _EPOCH_SEED + context.rank
        )
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(position.epoch)
        for batch in loader:
            factor = learning_rate_factor(
                position.step, settings.optimizer, steps_per_epoch, settings.epochs
            )
            set_learning_rates(optimizer, base_rates, factor)
            if adversarial is not None:
                set_learning_rates(adversarial.optimizer, [settings.adversarial.lr_discriminator],
                                   factor)  # fmt: skip
            terms = train_step(model, optimizer, adversarial, batch, device, position.step + 1)
            position.step += 1
            position.batch_in_epoch += 1
            progress.update(1)
            interval.add(terms)
            if position.step % settings.log_every == 0:
                means = logs.train_row(position, interval, optimizer, adversarial)
                progress.set_postfix(loss=f"{means['loss']:.4f}")
            every = settings.checkpoint_every
            epoch_done = position.batch_in_epoch >= steps_per_epoch
            if every and position.step % every == 0 and not epoch_done:
                last_checkpoint = save()  # (the epoch's end saves one anyway)
            if position.step >= total_steps:
                break
        if position.batch_in_epoch < steps_per_epoch and position.step < total_steps:
            raise RuntimeError(
                f"the data loader ended after {position.batch_in_epoch} of {steps_per_epoch} "
                f"batches of epoch {position.epoch}"
            )
        if position.batch_in_epoch >= steps_per_epoch:
            position.epoch += 1
            position.batch_in_epoch = 0
            validation_l1 = validate_and_log()
            last_checkpoint = save()
    progress.close()
    if interval.steps:
        logs.train_row(position, interval, optimizer, adversarial)
    if position.batch_in_epoch:  # stopped mid-epoch by max_steps
        validation_l1 = validate_and_log()
        last_checkpoint = save()
    final_model = out_dir / MODEL_DIR
    if context.is_main:
        meta = {
            **extra_meta,
            "step": position.step,
            "epoch": position.epoch,
            "train_config": config_io.to_dict(settings),
            "validation_l1": validation_l1,
        }
        save_checkpoint(final_model, model_config, kp_detector, generator, meta)
    logs.close()
    distributed.barrier(context)
    return TrainingResult(
        steps=position.step,
        epochs_completed=position.epoch,
        final_model=final_model,
        last_checkpoint=last_checkpoint,
        validation_l1=validation_l1,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- one step


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    adversarial: AdversarialTraining | None,
    batch: dict[str, Any],
    device: torch.device,
    step: int,
) -> dict[str, torch.Tensor]:
    """One optimiser step on a batch (and one of the discriminator, with the GAN on); returns
    the detached loss terms and their sum, "loss" (the generator side's)."""
    source = batch["source"].to(device, non_blocking=True)
    driving = batch["driving"].to(device, non_blocking=True)
    # Whatever else the dataset serves (pair_targets) goes to the extra loss terms.
    targets = {key: value.to(device, non_blocking=True) for key, value in batch.items()
               if key not in ("source", "driving") and isinstance(value, torch.Tensor)}  # fmt: skip
    losses, generated = model(source, driving, targets)
    if adversarial is not None:
        losses.update(
            adversarial.generator_terms(driving, generated["prediction"], generated["kp_driving"])
        )
    total = torch.stack(list(losses.values())).sum()
    _check_finite(total, losses, step)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    terms = {"loss": total.detach(), **{name: value.detach() for name, value in losses.items()}}
    if adversarial is not None:
        discriminator_loss = adversarial.discriminator_loss(
            driving, generated["prediction"], generated["kp_driving"]
        )
        _check_finite(discriminator_loss, {DISCRIMINATOR_TERM: discriminator_loss}, step)
        adversarial.step(discriminator_loss)
        terms[DISCRIMINATOR_TERM] = discriminator_loss.detach()
    return terms


def _check_finite(total: torch.Tensor, losses: dict[str, torch.Tensor], step: int) -> None:
    if not torch.isfinite(total):
        terms = ", ".join(f"{name}={value.item():.4g}" for name, value in losses.items())
        raise TrainingDivergedError(
            f"non-finite loss at step {step} ({terms}); lower the learning rates or resume "
            f"from an earlier checkpoint"
        )


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(
    training_model: FommTrainingModel,
    dataset: Dataset | None,
    settings: TrainFommConfig,
    context: distributed.DistributedContext,
) -> dict[str, float] | None:
    """Reconstruction L1 on the test split (source = each video's first frame), beside the
    still source's L1 and the keypoints in use; the videos are shared among the processes."""
    if dataset is None:
        return None
    limits = settings.validation
    count = len(dataset) if limits.max_videos == 0 else min(len(dataset), limits.max_videos)
    training_model.eval()
    # |rendered - driving|, |source - driving|, values, frames, keypoints in use
    sums = torch.zeros(5, dtype=torch.float64, device=context.device)
    for index in range(context.rank, count, context.world_size):
        video = dataset[index]["video"]
        if limits.max_frames:
            video = video[: limits.max_frames]
        sums += _reconstruction_error(training_model, video.to(context.device), limits.batch_size)
    training_model.train()
    totals = distributed.all_reduce_sum(sums, context)
    if totals[2] == 0:
        return None
    return {
        "validation_l1": float(totals[0] / totals[2]),
        "still_l1": float(totals[1] / totals[2]),
        "keypoints_in_use": float(totals[4] / count),
        "videos": count,
        "frames": int(totals[3]),
    }


def _reconstruction_error(
    training_model: FommTrainingModel, video: torch.Tensor, batch_size: int
) -> torch.Tensor:
    kp_detector, generator = training_model.kp_detector, training_model.generator
    source = video[:1]
    kp_source = kp_detector(source)
    error = torch.zeros(5, dtype=torch.float64, device=video.device)
    masks = []
    for driving in video.split(batch_size):
        count = driving.shape[0]
        rendered = generator(
            source.expand(count, -1, -1, -1),
            {name: value.expand(count, *value.shape[1:]) for name, value in kp_source.items()},
            kp_detector(driving),
            full_outputs=False,
        )
        error[0] += (rendered["prediction"] - driving).abs().sum().double()
        error[1] += (source - driving).abs().sum().double()
        error[2] += driving.numel()
        error[3] += count
        masks.append(rendered["mask"])
    error[4] = keypoints_in_use(torch.cat(masks))
    return error


# --------------------------------------------------------------------------- set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _start_folder(
    out_dir: Path, resume: str | Path | None, init_from: str | Path | None
) -> Path | None:
    """The checkpoint folder to resume from (None: a new run), after the start's checks."""
    if resume is not None and init_from is not None:
        raise ValueError(
            "resume continues a run; init_from starts a new one from a model's weights: "
            "give one of them"
        )
    if resume is not None:
        return resolve_resume(resume)
    if list_checkpoints(out_dir / CHECKPOINTS_DIR):
        # A fresh run would interleave its checkpoints with the old run's.
        raise ValueError(
            f"{out_dir} already holds checkpoints of a training run: resume it "
            f"(--resume {out_dir}) or choose another output folder"
        )
    return None


def build_training_models(
    settings: TrainFommConfig,
    model_config: ModelConfig | None,
    weights_folder: str | Path | None,
    resuming: bool,
) -> tuple[ModelConfig, nn.Module, nn.Module]:
    """New models of the profile, or with the weights of a checkpoint/model folder.

    A resumed run must have the profile it was saved with. A run started from a model's
    weights (init_from) may change the profile where no weight changes shape, e.g. switch
    generator.output_blend on for a trained model: the weights must load strictly."""
    wanted = model_config or load_profile(settings.profile)
    if weights_folder is None:
        kp_detector, generator = build_models(wanted)
        return wanted, kp_detector.train(), generator.train()
    saved_config, kp_detector, generator = load_model(weights_folder)
    if saved_config == wanted:
        return saved_config, kp_detector.train(), generator.train()
    differences = "; ".join(config_io.differences(saved_config, wanted))
    if resuming:
        raise ValueError(
            f"{weights_folder} was trained with profile {saved_config.name!r}, which "
            f"differs from the requested profile {wanted.name!r} ({differences})"
        )
    new_detector, new_generator = build_models(wanted)
    where = f"{weights_folder} (profile {saved_config.name!r}) for profile {wanted.name!r}"
    strict_load(new_detector, kp_detector.state_dict(), f"{where}, kp_detector")
    strict_load(new_generator, generator.state_dict(), f"{where}, generator")
    logger.info("initialised from %s, whose profile differs: %s", weights_folder, differences)
    return wanted, new_detector.train(), new_generator.train()


def wrap_for_distributed(model: nn.Module, context: distributed.DistributedContext) -> nn.Module:
    if not context.is_distributed:
        return model
    if context.device.type == "cuda":
        # Batch statistics over the whole distributed batch, as with one big batch.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[context.device])
    return DistributedDataParallel(model)


# --------------------------------------------------------------------------- checkpoints


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
        seed_everything(seed + _RANK_SEED * context.rank + position.step)
    return position


def _gather_rng_states(context: distributed.DistributedContext) -> list[dict[str, Any]]:
    local = capture_rng_state(context.device)
    if not context.is_distributed:
        return [local]
    gathered: list[Any] = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, local)
    return gathered


# --------------------------------------------------------------------------- logs


class LossInterval:
    """Sums of the loss terms over the steps since the last row of train_log.csv."""

    def __init__(self) -> None:
        self._restart()

    def _restart(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def take(self) -> tuple[dict[str, torch.Tensor], int, float]:
        """(sums, steps, seconds) so far; the interval starts again."""
        taken = (self.sums, self.steps, time.perf_counter() - self.started)
        self._restart()
        return taken


class TrainingLogs:
    """train_log.csv, validation.csv, the settings copy and TensorBoard (rank 0 writes)."""

    def __init__(
        self, out_dir: Path, settings: TrainFommConfig, context: distributed.DistributedContext
    ) -> None:
        self.out_dir, self.settings, self.context = out_dir, settings, context
        self.train = CsvLog(out_dir / TRAIN_LOG, train_columns(settings))
        self.validation = CsvLog(out_dir / VALIDATION_LOG, VALIDATION_COLUMNS)
        self.tensorboard = None

    def start(self, resumed_at: int | None) -> None:
        """Write the settings copy; start the logs (cut back to `resumed_at` when resuming)."""
        if not self.context.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        config_io.save(self.settings, self.out_dir / CONFIG_COPY)
        self.train.start(resumed_at)
        self.validation.start(resumed_at)
        self.tensorboard = open_tensorboard(self.out_dir / TENSORBOARD_DIR)

    def train_row(
        self,
        position: TrainingPosition,
        interval: LossInterval,
        optimizer: torch.optim.Optimizer,
        adversarial: AdversarialTraining | None,
    ) -> dict[str, float]:
        """Log the interval's mean terms over all processes (every process must call it)."""
        sums, steps, seconds = interval.take()
        names = sorted(sums)
        stacked = torch.stack([sums[name] for name in names]).double()
        totals = distributed.all_reduce_sum(stacked, self.context)
        scale = steps * self.context.world_size
        means = {name: float(totals[i]) / scale for i, name in enumerate(names)}
        row = {
            "step": position.step,
            "epoch": position.epoch,
            "lr_kp_detector": optimizer.param_groups[0]["lr"],
            "lr_generator": optimizer.param_groups[1]["lr"],
            **means,
            "seconds_per_step": seconds / steps,
        }
        if adversarial is not None:
            row["lr_discriminator"] = adversarial.optimizer.param_groups[0]["lr"]
        if self.context.is_main:
            self.train.append(row)
            if self.tensorboard is not None:
                for name, value in row.items():
                    if name not in ("step", "epoch"):
                        self.tensorboard.add_scalar(f"train/{name}", value, position.step)
        return means

    def validation_row(self, position: TrainingPosition, result: dict[str, float] | None):
        if result is None or not self.context.is_main:
            return
        self.validation.append(
            {"step": position.step, "epochs_completed": position.epoch, **result}
        )
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("validation/l1", result["validation_l1"], position.step)
        tqdm.write(
            f"step {position.step} epoch {position.epoch}: validation L1 "
            f"{result['validation_l1']:.5f}, still source {result['still_l1']:.5f}, "
            f"keypoints in use {result['keypoints_in_use']:.1f} ({result['videos']} videos, "
            f"{result['frames']} frames)"
        )

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_tensorboard(log_dir: Path) -> Any | None:
    """A TensorBoard SummaryWriter when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the CSV logs are always written
        return None
    return SummaryWriter(log_dir=str(log_dir))
