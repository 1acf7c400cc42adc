"""The FOMM training loop: Adam + LR schedule, checkpoints with resume, CSV logs, validation.

Runs as one process, or as one of N processes under torchrun (DistributedDataParallel, each
process on its own device and its own share of every epoch, see kp_motion.training.distributed).
Only rank 0 writes files and shows the progress bar.

Output folder:
    train_fomm.yaml        the training settings of the run
    train_log.csv          every `log_every` steps: losses (means over the interval), LRs, speed
    validation.csv         after every epoch and at the end: reconstruction L1 on the test split
    tensorboard/           the same scalars, only when the tensorboard package is installed
    checkpoints/step_N/    resumable checkpoints (kp_motion.training.state; with the GAN on,
                           also the discriminator and its optimiser)
    model/                 the final weights as a project checkpoint (for animate, extract, ...)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
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
from kp_motion.training.settings import TrainFommConfig
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
LOSS_TERMS = (
    "reconstruction_l1",
    "ssim",
    "perceptual",
    "equivariance_value",
    "equivariance_jacobian",
    "keypoint_concentration",
    "keypoint_separation",
    "mask_balance",
    "part_following",
    "part_following_jacobian",
    "background_mask",
    "generator_gan",
    "feature_matching",
)
# The discriminator's own loss: logged, not part of the generator's "loss".
DISCRIMINATOR_TERM = "discriminator_gan"
TRAIN_COLUMNS = (
    "step",
    "epoch",
    "lr_kp_detector",
    "lr_generator",
    "lr_discriminator",
    "loss",
    *LOSS_TERMS,
    DISCRIMINATOR_TERM,
    "seconds_per_step",
)
# still_l1: the same frames compared with the unchanged source frame, i.e. what showing no
# motion at all scores. A model below it has learned motion; one above it only blurs.
# keypoints_in_use: mean over the videos of losses.keypoints_in_use (keypoint collapse shows).
VALIDATION_COLUMNS = (
    "step", "epochs_completed", "validation_l1", "still_l1", "keypoints_in_use", "videos",
    "frames",
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
    root: str | Path, settings: TrainFommConfig, model_config: ModelConfig, progress: bool = True
) -> TrainingData:
    """FramesDataset on <root>/train and VideoDataset on <root>/test (None when absent).

    The pairs and augmentations depend only on (seed, epoch, index), so a resumed run sees
    exactly the data the interrupted one would have, with any number of loader workers.
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
        part_poses=_training_part_poses(root) if settings.losses.needs_part_poses else None,
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


def _training_part_poses(root: str | Path) -> dict:
    """The part poses losses.part_following and losses.background_mask need, which only a
    synthetic dataset has."""
    from kp_motion.data.synthetic import MANIFEST_NAME, video_part_poses

    poses = video_part_poses(root, "train")
    if not poses:
        raise ValueError(
            f"losses.part_following and losses.background_mask need part poses: {root} has "
            f"no {MANIFEST_NAME} with training videos (a dataset made by kp-motion synth); "
            f"set losses.part_following=0 and losses.background_mask=0"
        )
    return poses


def open_tensorboard(log_dir: Path) -> Any | None:
    """A TensorBoard SummaryWriter when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the CSV logs are always written
        return None
    return SummaryWriter(log_dir=str(log_dir))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(epoch: int, settings: TrainFommConfig) -> float:
    """Multiplier of the base learning rates during `epoch` (0-based)."""
    optimizer = settings.optimizer
    if optimizer.schedule == "multistep":
        passed = sum(1 for milestone in optimizer.milestones if epoch >= milestone)
        return optimizer.gamma**passed
    if optimizer.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, settings.epochs) / settings.epochs))
    return 1.0


def _expand_keypoints(kp: dict[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    return {name: value.expand(count, *value.shape[1:]) for name, value in kp.items()}


class FommTrainer:
    """Trains a FOMM detector + generator; `run()` goes until the epochs or max_steps are done."""

    def __init__(
        self,
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
    ) -> None:
        self.settings = settings
        self.data = data
        self.out_dir = Path(out_dir)
        self.context = context or distributed.setup_distributed("cpu")
        self.device = self.context.device
        self.extra_meta = dict(extra_meta or {})
        self.show_progress = show_progress and self.context.is_main
        self.position = TrainingPosition()

        if resume is not None and init_from is not None:
            raise ValueError(
                "resume continues a run; init_from starts a new one from a model's weights: "
                "give one of them"
            )
        resume_folder = resolve_resume(resume) if resume is not None else None
        if resume_folder is None and list_checkpoints(self.out_dir / CHECKPOINTS_DIR):
            # A fresh run would interleave its checkpoints with the old run's.
            raise ValueError(
                f"{self.out_dir} already holds checkpoints of a training run: resume it "
                f"(--resume {self.out_dir}) or choose another output folder"
            )
        # Same initial weights on every process (DDP also broadcasts rank 0's at wrap time).
        seed_everything(settings.seed)
        self.model_config, self.kp_detector, self.generator = self._build_models(
            model_config, resume_folder or init_from, resuming=resume_folder is not None
        )
        if init_from is not None:
            self.extra_meta["initialised_from"] = str(init_from)
        vgg = load_vgg19(vgg19_weights, self.device) if vgg19_weights else None
        self.training_model = FommTrainingModel(
            self.kp_detector,
            self.generator,
            settings.losses,
            self.model_config.estimate_jacobian,
            vgg,
        ).to(self.device)
        self.model = self._wrap_for_distributed(self.training_model)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.kp_detector.parameters(), "lr": settings.optimizer.lr_kp_detector},
                {"params": self.generator.parameters(), "lr": settings.optimizer.lr_generator},
            ],
            betas=tuple(settings.optimizer.betas),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda epoch: lr_factor(epoch, settings)
        )
        self.adversarial = None
        if settings.adversarial.enabled:
            self.adversarial = AdversarialTraining(
                settings.adversarial,
                self.model_config.num_channels,
                self.model_config.num_kp,
                tuple(settings.optimizer.betas),
                lambda epoch: lr_factor(epoch, settings),
                self.device,
                self._wrap_for_distributed,
            )
        self.sampler = distributed.ResumableDistributedSampler(
            data.train,
            num_replicas=self.context.world_size,
            rank=self.context.rank,
            batch_size=settings.batch_size,
            shuffle=True,
            seed=settings.seed,
        )
        self.steps_per_epoch = self.sampler.num_samples // settings.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training set gives {self.sampler.num_samples} pairs per process and epoch, "
                f"fewer than batch_size {settings.batch_size}: add videos, raise data.repeats "
                f"or lower batch_size"
            )
        self.loader = self._make_loader()
        # Different warps and augmentations on each process from here on.
        seed_everything(settings.seed + 1_000_003 * self.context.rank)
        if resume_folder is not None:
            self._load_training_state(resume_folder)
        self.train_log = CsvLog(self.out_dir / TRAIN_LOG, TRAIN_COLUMNS)
        self.validation_log = CsvLog(self.out_dir / VALIDATION_LOG, VALIDATION_COLUMNS)
        self.resumed_from = resume_folder
        self.tensorboard = None  # opened by run() on rank 0 when tensorboard is installed

    # ------------------------------------------------------------------ setup

    def _build_models(
        self, model_config: ModelConfig | None, weights_folder: str | Path | None, resuming: bool
    ) -> tuple[ModelConfig, nn.Module, nn.Module]:
        """New models of the profile, or with the weights of a checkpoint/model folder.

        A resumed run must have the profile it was saved with. A run started from a model's
        weights (init_from) may change the profile where no weight changes shape, e.g. switch
        generator.output_blend on for a trained model: the weights must load strictly."""
        wanted = model_config or load_profile(self.settings.profile)
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

    def _wrap_for_distributed(self, model: nn.Module) -> nn.Module:
        if not self.context.is_distributed:
            return model
        if self.device.type == "cuda":
            # Batch statistics over the whole distributed batch, as with one big batch.
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return DistributedDataParallel(model, device_ids=[self.device])
        return DistributedDataParallel(model)

    def _make_loader(self) -> DataLoader:
        workers = self.settings.data.num_workers
        # The loader's own generator (reseeded each epoch) gives the worker seeds; without it
        # each new epoch iterator would draw from the global generator, and a resumed run
        # (which starts its iterator at another point) would diverge from an uninterrupted one.
        self.loader_generator = torch.Generator()
        return DataLoader(
            self.data.train,
            batch_size=self.settings.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            drop_last=True,  # a batch of 1 would make BatchNorm's statistics meaningless
            pin_memory=self.device.type == "cuda",
            # Fresh workers each epoch: they copy the dataset, and with it its current epoch.
            persistent_workers=False,
            generator=self.loader_generator,
        )

    @property
    def total_steps(self) -> int:
        planned = self.settings.epochs * self.steps_per_epoch
        return min(planned, self.settings.max_steps) if self.settings.max_steps else planned

    # ------------------------------------------------------------------ checkpoints

    def _load_training_state(self, folder: Path) -> None:
        state = read_training_state(folder)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._load_adversarial_state(state.get("adversarial"), folder)
        self._apply_learning_rate_settings()
        self.position = TrainingPosition(
            int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        )
        rank = self.context.rank
        if int(state["world_size"]) == self.context.world_size:
            restore_rng_state(state["rng"][rank], self.device)
        else:
            # Another process count: the old per-process streams do not map onto the new ones.
            logger.warning(
                "resuming with %d processes from a %d-process run: random streams reseeded",
                self.context.world_size,
                int(state["world_size"]),
            )
            seed_everything(self.settings.seed + 1_000_003 * rank + self.position.step)
        if self.position.batch_in_epoch > self.steps_per_epoch:
            raise ValueError(
                f"{folder}: saved mid-epoch at batch {self.position.batch_in_epoch}, but an epoch "
                f"now has only {self.steps_per_epoch} batches (other data or batch size?)"
            )

    def _load_adversarial_state(self, state: dict[str, Any] | None, folder: Path) -> None:
        if self.adversarial is None:
            if state is not None:
                logger.info("%s has a discriminator; the GAN is off in this run", folder)
            return
        if state is None:
            # E.g. a reconstruction-only run continued with the GAN switched on.
            logger.warning("%s has no discriminator: it starts from new weights", folder)
            self.adversarial.scheduler.last_epoch = self.scheduler.last_epoch
            return
        self.adversarial.load_state_dict(state)

    def _apply_learning_rate_settings(self) -> None:
        """The settings' learning rates and schedule, not the checkpoint's, from now on.

        Loading the optimiser and scheduler states brings back the rates they were built with;
        a resumed run that changes `optimizer.lr_*` or the milestones must get the new ones at
        once (an unchanged run gets exactly the rates it had)."""
        optimizer = self.settings.optimizer
        schedules = [
            (self.optimizer, self.scheduler, [optimizer.lr_kp_detector, optimizer.lr_generator])
        ]
        if self.adversarial is not None:
            schedules.append(
                (
                    self.adversarial.optimizer,
                    self.adversarial.scheduler,
                    [self.settings.adversarial.lr_discriminator],
                )
            )
        for torch_optimizer, scheduler, base_rates in schedules:
            factor = lr_factor(scheduler.last_epoch, self.settings)
            scheduler.base_lrs = list(base_rates)
            for group, base in zip(torch_optimizer.param_groups, base_rates, strict=True):
                group["initial_lr"] = base
                group["lr"] = base * factor

    def _gather_rng_states(self) -> list[dict[str, Any]]:
        local = capture_rng_state(self.device)
        if not self.context.is_distributed:
            return [local]
        gathered: list[Any] = [None] * self.context.world_size
        torch.distributed.all_gather_object(gathered, local)
        return gathered

    def _meta(self) -> dict[str, Any]:
        return {
            **self.extra_meta,
            "step": self.position.step,
            "epoch": self.position.epoch,
            "train_config": config_io.to_dict(self.settings),
        }

    def save_checkpoint(self) -> Path | None:
        """Write checkpoints/step_N (rank 0); every process must call it (RNG states gathered)."""
        rng_states = self._gather_rng_states()
        folder = None
        if self.context.is_main:
            checkpoints_dir = self.out_dir / CHECKPOINTS_DIR
            name = checkpoint_name(self.position.step)
            staging = checkpoints_dir / f".{name}.partial"
            save_checkpoint(
                staging, self.model_config, self.kp_detector, self.generator, self._meta()
            )
            write_training_state(
                staging,
                {
                    **dataclasses.asdict(self.position),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rng_states,
                    "world_size": self.context.world_size,
                    **(
                        {"adversarial": self.adversarial.state_dict()}
                        if self.adversarial is not None
                        else {}
                    ),
                },
            )
            folder = publish_checkpoint(staging, checkpoints_dir / name)
            prune_checkpoints(checkpoints_dir, self.settings.keep_checkpoints)
        distributed.barrier(self.context)
        return folder

    # ------------------------------------------------------------------ steps

    def _check_finite(self, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        if not torch.isfinite(total):
            terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise TrainingDivergedError(
                f"non-finite loss at step {self.position.step + 1} ({terms}); lower the learning "
                f"rates or resume from an earlier checkpoint"
            )

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One optimiser step on a batch (and one of the discriminator, with the GAN on);
        returns the detached loss terms and the generator side's sum."""
        source = batch["source"].to(self.device, non_blocking=True)
        driving = batch["driving"].to(self.device, non_blocking=True)
        parts = None
        if "parts_valid" in batch:
            parts = {key: batch[key].to(self.device, non_blocking=True)
                     for key in ("parts_source", "parts_driving", "parts_valid")}  # fmt: skip
        losses, generated = self.model(source, driving, parts)
        if self.adversarial is not None:
            losses.update(
                self.adversarial.generator_terms(
                    driving, generated["prediction"], generated["kp_driving"]
                )
            )
        total = torch.stack(list(losses.values())).sum()
        self._check_finite(total, losses)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        terms = {"loss": total.detach(), **{k: v.detach() for k, v in losses.items()}}
        if self.adversarial is not None:
            discriminator_loss = self.adversarial.discriminator_loss(
                driving, generated["prediction"], generated["kp_driving"]
            )
            self._check_finite(discriminator_loss, {DISCRIMINATOR_TERM: discriminator_loss})
            self.adversarial.step(discriminator_loss)
            terms[DISCRIMINATOR_TERM] = discriminator_loss.detach()
        return terms

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Reconstruction L1 on the test split: source = each video's first frame."""
        dataset = self.data.validation
        if dataset is None:
            return None
        limits = self.settings.validation
        count = len(dataset) if limits.max_videos == 0 else min(len(dataset), limits.max_videos)
        self.training_model.eval()
        # |rendered - driving|, |source - driving|, values, frames, keypoints in use
        sums = torch.zeros(5, dtype=torch.float64, device=self.device)
        for index in range(self.context.rank, count, self.context.world_size):
            video = dataset[index]["video"]
            if limits.max_frames:
                video = video[: limits.max_frames]
            sums += self._reconstruction_error(video.to(self.device), limits.batch_size)
        self.training_model.train()
        totals = distributed.all_reduce_sum(sums, self.context)
        if totals[2] == 0:
            return None
        return {
            "validation_l1": float(totals[0] / totals[2]),
            "still_l1": float(totals[1] / totals[2]),
            "keypoints_in_use": float(totals[4] / count),
            "videos": count,
            "frames": int(totals[3]),
        }

    def _reconstruction_error(self, video: torch.Tensor, batch_size: int) -> torch.Tensor:
        source = video[:1]
        kp_source = self.kp_detector(source)
        error = torch.zeros(5, dtype=torch.float64, device=self.device)
        masks = []
        for driving in video.split(batch_size):
            count = driving.shape[0]
            rendered = self.generator(
                source.expand(count, -1, -1, -1),
                _expand_keypoints(kp_source, count),
                self.kp_detector(driving),
                full_outputs=False,
            )
            error[0] += (rendered["prediction"] - driving).abs().sum().double()
            error[1] += (source - driving).abs().sum().double()
            error[2] += driving.numel()
            error[3] += count
            masks.append(rendered["mask"])
        error[4] = keypoints_in_use(torch.cat(masks))
        return error

    # ------------------------------------------------------------------ loop

    def _log_interval(
        self, sums: dict[str, torch.Tensor], steps: int, seconds: float
    ) -> dict[str, float]:
        names = sorted(sums)
        stacked = torch.stack([sums[name] for name in names]).double()
        totals = distributed.all_reduce_sum(stacked, self.context)
        scale = steps * self.context.world_size
        means = {name: float(totals[i]) / scale for i, name in enumerate(names)}
        row = {
            "step": self.position.step,
            "epoch": self.position.epoch,
            "lr_kp_detector": self.optimizer.param_groups[0]["lr"],
            "lr_generator": self.optimizer.param_groups[1]["lr"],
            **(
                {"lr_discriminator": self.adversarial.optimizer.param_groups[0]["lr"]}
                if self.adversarial is not None
                else {}
            ),
            **means,
            "seconds_per_step": seconds / steps,
        }
        if self.context.is_main:
            self.train_log.append(row)
            if self.tensorboard is not None:
                for name, value in row.items():
                    if name not in ("step", "epoch"):
                        self.tensorboard.add_scalar(f"train/{name}", value, self.position.step)
        return means

    def _record_validation(self) -> float | None:
        result = self.validate()
        if result is None:
            return None
        if self.context.is_main:
            self.validation_log.append(
                {"step": self.position.step, "epochs_completed": self.position.epoch, **result}
            )
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(
                    "validation/l1", result["validation_l1"], self.position.step
                )
            tqdm.write(
                f"step {self.position.step} epoch {self.position.epoch}: validation L1 "
                f"{result['validation_l1']:.5f}, still source {result['still_l1']:.5f}, "
                f"keypoints in use {result['keypoints_in_use']:.1f} ({result['videos']} videos, "
                f"{result['frames']} frames)"
            )
        return result["validation_l1"]

    def _start_files(self) -> None:
        if not self.context.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        config_io.save(self.settings, self.out_dir / CONFIG_COPY)
        resume_step = self.position.step if self.resumed_from is not None else None
        self.train_log.start(resume_step)
        self.validation_log.start(resume_step)
        self.tensorboard = open_tensorboard(self.out_dir / TENSORBOARD_DIR)

    def run(self) -> TrainingResult:
        """Train until all epochs (or max_steps) are done; writes the final model to out/model."""
        started = time.perf_counter()
        self._start_files()
        settings = self.settings
        progress = tqdm(
            total=self.total_steps,
            initial=min(self.position.step, self.total_steps),
            desc="train fomm",
            unit="step",
            disable=not self.show_progress,
            dynamic_ncols=True,
        )
        last_checkpoint = None
        validation_l1 = None
        interval_sums: dict[str, torch.Tensor] = {}
        interval_steps, interval_start = 0, time.perf_counter()
        while self.position.epoch < settings.epochs and self.position.step < self.total_steps:
            self.sampler.set_epoch(self.position.epoch, self.position.batch_in_epoch)
            self.loader_generator.manual_seed(
                self.settings.seed * 1_000_003 + self.position.epoch * 7919 + self.context.rank
            )
            if hasattr(self.data.train, "set_epoch"):
                self.data.train.set_epoch(self.position.epoch)
            for batch in self.loader:
                terms = self.train_step(batch)
                self.position.step += 1
                self.position.batch_in_epoch += 1
                progress.update(1)
                for name, value in terms.items():
                    interval_sums[name] = interval_sums.get(name, 0.0) + value
                interval_steps += 1
                if self.position.step % settings.log_every == 0:
                    means = self._log_interval(
                        interval_sums, interval_steps, time.perf_counter() - interval_start
                    )
                    progress.set_postfix(loss=f"{means['loss']:.4f}")
                    interval_sums, interval_steps = {}, 0
                    interval_start = time.perf_counter()
                every = settings.checkpoint_every
                epoch_done = self.position.batch_in_epoch >= self.steps_per_epoch
                if every and self.position.step % every == 0 and not epoch_done:
                    last_checkpoint = self.save_checkpoint()  # (epoch ends save anyway)
                if self.position.step >= self.total_steps:
                    break
            stopped_early = self.position.batch_in_epoch < self.steps_per_epoch
            if stopped_early and self.position.step < self.total_steps:
                raise RuntimeError(
                    f"the data loader ended after {self.position.batch_in_epoch} of "
                    f"{self.steps_per_epoch} batches of epoch {self.position.epoch}"
                )
            if self.position.batch_in_epoch >= self.steps_per_epoch:
                self.position.epoch += 1
                self.position.batch_in_epoch = 0
                self.scheduler.step()
                if self.adversarial is not None:
                    self.adversarial.scheduler.step()
                validation_l1 = self._record_validation()
                last_checkpoint = self.save_checkpoint()
        progress.close()
        if interval_steps:
            self._log_interval(interval_sums, interval_steps, time.perf_counter() - interval_start)
        if self.position.batch_in_epoch:  # stopped mid-epoch by max_steps
            validation_l1 = self._record_validation()
            last_checkpoint = self.save_checkpoint()
        final_model = self.out_dir / MODEL_DIR
        if self.context.is_main:
            save_checkpoint(
                final_model,
                self.model_config,
                self.kp_detector,
                self.generator,
                {**self._meta(), "validation_l1": validation_l1},
            )
        if self.tensorboard is not None:
            self.tensorboard.close()
        distributed.barrier(self.context)
        return TrainingResult(
            steps=self.position.step,
            epochs_completed=self.position.epoch,
            final_model=final_model,
            last_checkpoint=last_checkpoint,
            validation_l1=validation_l1,
            seconds=time.perf_counter() - started,
        )
