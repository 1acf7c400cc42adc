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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kp_motion import config as config_io
from kp_motion.models.blocks import AntiAliasDownsample
from kp_motion.models.checkpoint import build_models, load_model, save_checkpoint, strict_load
from kp_motion.models.model_config import ModelConfig, load_profile
from kp_motion.training import distributed
from kp_motion.training.adversarial import AdversarialTraining
from kp_motion.training.csv_log import LossInterval, TrainingLogs
from kp_motion.training.full_model import FommTrainingModel
from kp_motion.training.losses import DISCRIMINATOR_TERM, keypoints_in_use, load_vgg19
from kp_motion.training.settings import OptimizerSettings, TrainFommConfig
from kp_motion.training.state import (
    CHECKPOINTS_DIR,
    RANK_SEED,
    TrainingPosition,
    checkpoint_dict,
    list_checkpoints,
    read_training_state,
    resolve_resume,
    restore_checkpoint,
    seed_everything,
    write_checkpoint,
)

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
# Per-epoch seed offset of the data loader's workers.
_EPOCH_SEED = 7919


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
    adversarial = gan_optimizer = None
    if settings.adversarial.enabled:
        adversarial = AdversarialTraining(
            settings.adversarial, model_config.num_channels, model_config.num_kp, betas, device,
            lambda module: wrap_for_distributed(module, context),
        )  # fmt: skip
        gan_optimizer = adversarial.optimizer

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
    seed_everything(settings.seed + RANK_SEED * context.rank)
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

    def save() -> Path | None:
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
            settings.seed * RANK_SEED + position.epoch * _EPOCH_SEED + context.rank
        )
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(position.epoch)
        for batch in loader:
            factor = learning_rate_factor(
                position.step, settings.optimizer, steps_per_epoch, settings.epochs
            )
            set_learning_rates(optimizer, base_rates, factor)
            if gan_optimizer is not None:
                set_learning_rates(gan_optimizer, [settings.adversarial.lr_discriminator], factor)
            terms = train_step(model, optimizer, adversarial, batch, device, position.step + 1)
            position.step += 1
            position.batch_in_epoch += 1
            progress.update(1)
            interval.add(terms)
            if position.step % settings.log_every == 0:
                means = logs.train_row(position, interval, optimizer, gan_optimizer)
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
        logs.train_row(position, interval, optimizer, gan_optimizer)
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
    strict_load(new_detector, _learned_state(kp_detector, new_detector), f"{where}, kp_detector")
    strict_load(new_generator, _learned_state(generator, new_generator), f"{where}, generator")
    logger.info("initialised from %s, whose profile differs: %s", weights_folder, differences)
    return wanted, new_detector.train(), new_generator.train()


def _learned_state(trained: nn.Module, fresh: nn.Module) -> dict[str, torch.Tensor]:
    """`trained`'s state with the anti-aliasing kernels taken from `fresh`: those kernels are
    not learned but follow the profile's scale factors, which init_from may change (a model
    whose detector sees the same 32 x 32 view of a larger frame)."""
    state = dict(trained.state_dict())
    for name, module in fresh.named_modules():
        if isinstance(module, AntiAliasDownsample):
            key = f"{name}.weight" if name else "weight"
            state[key] = module.weight
    return state


def wrap_for_distributed(model: nn.Module, context: distributed.DistributedContext) -> nn.Module:
    if not context.is_distributed:
        return model
    if context.device.type == "cuda":
        # Batch statistics over the whole distributed batch, as with one big batch.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[context.device])
    return DistributedDataParallel(model)


