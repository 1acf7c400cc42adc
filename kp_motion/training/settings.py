"""Settings of `kp-motion train fomm`: the dataclasses; the values live in config/train_fomm.yaml.

No field has a default: the YAML file is the one source of truth and spells out every setting.
`settings_from_dict` refuses unknown keys and names every missing one, nested sections (the
augmentation and discriminator settings) included. Paths given per run (dataset root, output
folder, checkpoint to resume, VGG19 weights) are command-line options instead.

Settings files carry a `version`. Files written before it existed (version 1: every run folder's
train_fomm.yaml and every model's `train_config` metadata until 2026-12-07) are brought up to
date by `migrate`, the one place that knows what changed.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass
from typing import Any

from kp_motion import config as config_io
from kp_motion import paths
from kp_motion.data.augmentation import AugmentationConfig
from kp_motion.models.discriminator import DiscriminatorSettings

logger = logging.getLogger(__name__)

CONFIG_NAME = "train_fomm.yaml"
SETTINGS_VERSION = 2
SCHEDULES = ("multistep", "cosine", "constant")


@dataclass(frozen=True)
class DataSettings:
    fit: str  # how frames of another size reach the profile's size: "resize" or "crop"
    repeats: int  # times each training video is visited per epoch (short epochs are wasteful)
    cache: bool  # keep decoded videos in memory (cheap at 64 px, see kp_motion.data.datasets)
    num_workers: int  # DataLoader worker processes (0 = load in the training process)
    # Most frames between the two frames of a training pair (0 = any two frames of a video).
    max_frame_gap: int
    augmentation: AugmentationConfig

    def __post_init__(self) -> None:
        if self.fit not in ("resize", "crop"):
            raise ValueError(f"data.fit must be 'resize' or 'crop', got {self.fit!r}")
        if self.repeats < 1 or self.num_workers < 0 or self.max_frame_gap < 0:
            raise ValueError(
                "data.repeats must be >= 1, data.num_workers and data.max_frame_gap >= 0"
            )


@dataclass(frozen=True)
class OptimizerSettings:
    lr_kp_detector: float  # Adam learning rates (FOMM: 2e-4 for both)
    lr_generator: float
    betas: tuple[float, float]
    # Steps over which the learning rates rise linearly to the schedule's (0 = none, as FOMM).
    warmup_steps: int
    schedule: str  # "multistep" (x gamma at each milestone epoch), "cosine" or "constant"
    milestones: tuple[int, ...]  # epochs where the multistep schedule multiplies the lr by gamma
    gamma: float

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"optimizer.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.lr_kp_detector <= 0 or self.lr_generator <= 0:
            raise ValueError("optimizer learning rates must be positive")
        if len(self.betas) != 2:
            raise ValueError(f"optimizer.betas must be two numbers, got {self.betas}")
        if self.warmup_steps < 0:
            raise ValueError(f"optimizer.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclass(frozen=True)
class LossSettings:
    pyramid_scales: tuple[float, ...]  # image pyramid of the reconstruction/perceptual terms
    reconstruction_l1: float  # weight of the L1 term (summed over the pyramid scales)
    ssim: float  # weight of 1 - SSIM at full resolution
    # Weights of the VGG19 relu1_1 .. relu5_1 perceptual terms; non-zero needs --vgg19-weights.
    perceptual_weights: tuple[float, float, float, float, float]
    equivariance_value: float  # weight of the keypoint equivariance term
    equivariance_jacobian: float  # weight of the Jacobian equivariance term
    warp_sigma_affine: float  # std of the random affine warp's parameters (FOMM: 0.05)
    warp_sigma_tps: float  # std of the thin-plate-spline weights (FOMM: 0.005)
    warp_tps_points: int  # control points per side of the TPS grid (FOMM: 5)
    # Weight of the mask-balance term (not in FOMM; 0 = off): a penalty on every keypoint whose
    # dense-motion mask holds less than mask_balance_floor of the batch's pixels, so that no
    # keypoint dies (as in mixture-of-experts load balancing). The embedded model used 1.
    mask_balance: float
    mask_balance_floor: float
    # {name: weight} of terms registered by name (kp_motion.training.losses.register_loss),
    # e.g. the research terms of research/part_supervision; {} = FOMM's objective only.
    extra: dict[str, float]

    def __post_init__(self) -> None:
        reconstruction_weights = (self.reconstruction_l1, self.ssim, *self.perceptual_weights)
        weights = (
            *reconstruction_weights,
            self.equivariance_value,
            self.equivariance_jacobian,
            self.mask_balance,
        )
        if any(weight < 0 for weight in weights):
            raise ValueError("loss weights must be >= 0")
        if not any(reconstruction_weights):
            raise ValueError("losses: at least one image reconstruction weight must be non-zero")
        if not 0 < self.mask_balance_floor < 1:
            raise ValueError(
                f"losses.mask_balance_floor must be in (0, 1), got {self.mask_balance_floor}"
            )
        if len(self.perceptual_weights) != 5:
            raise ValueError("losses.perceptual_weights needs 5 values (relu1_1 .. relu5_1)")
        if not self.pyramid_scales or any(not 0 < s <= 1 for s in self.pyramid_scales):
            raise ValueError(f"losses.pyramid_scales must be in (0, 1], got {self.pyramid_scales}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"losses.extra must be a mapping name: weight, got {self.extra!r}")
        for name, weight in self.extra.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                raise ValueError(
                    f"losses.extra.{name}: weight must be a number >= 0, got {weight!r}"
                )


@dataclass(frozen=True)
class AdversarialSettings:
    """FOMM's optional GAN loss: LSGAN with a keypoint-conditioned patch discriminator."""

    generator_gan: float  # weight of the generator's LSGAN term; 0 = no GAN, no discriminator
    discriminator_gan: float  # weight of the discriminator's LSGAN loss
    # Weights of the L1 distance between the discriminator's features of the real and the
    # generated frame, one per discriminator block (FOMM: 10 each); used only with the GAN on.
    feature_matching: tuple[float, ...]
    lr_discriminator: float  # Adam learning rate (same betas and schedule as the others)
    discriminator: DiscriminatorSettings

    @property
    def enabled(self) -> bool:
        return self.generator_gan > 0

    def __post_init__(self) -> None:
        if self.generator_gan < 0 or any(weight < 0 for weight in self.feature_matching):
            raise ValueError("adversarial loss weights must be >= 0")
        if self.discriminator_gan <= 0 or self.lr_discriminator <= 0:
            raise ValueError("adversarial.discriminator_gan and lr_discriminator must be > 0")
        if len(self.feature_matching) != self.discriminator.num_blocks:
            raise ValueError(
                f"adversarial.feature_matching needs one weight per discriminator block "
                f"({self.discriminator.num_blocks}), got {len(self.feature_matching)}"
            )


@dataclass(frozen=True)
class ValidationSettings:
    max_videos: int  # test-split videos reconstructed after each epoch (0 = all)
    max_frames: int  # frames per video (from the first, which is the source; 0 = all)
    batch_size: int  # driving frames rendered at once


@dataclass(frozen=True)
class TrainFommConfig:
    version: int  # of the settings' layout (SETTINGS_VERSION; older files go through migrate)
    profile: str  # model profile name (config/profiles/<name>.yaml) or a profile YAML path
    seed: int
    epochs: int
    batch_size: int  # per process: with N processes the effective batch is N x batch_size
    max_steps: int  # stop after this many optimiser steps in total (0 = run all epochs)
    log_every: int  # steps between rows of train_log.csv
    checkpoint_every: int  # steps between checkpoints (0 = only at the end of each epoch)
    keep_checkpoints: int  # most recent checkpoints kept (older ones are deleted)
    data: DataSettings
    optimizer: OptimizerSettings
    losses: LossSettings
    adversarial: AdversarialSettings
    validation: ValidationSettings

    def __post_init__(self) -> None:
        if self.version != SETTINGS_VERSION:
            raise ValueError(
                f"settings version {self.version}: this is version {SETTINGS_VERSION} "
                f"(older files are read through kp_motion.training.settings.migrate)"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.max_steps < 0 or self.checkpoint_every < 0:
            raise ValueError("max_steps and checkpoint_every must be >= 0")
        if self.log_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("log_every and keep_checkpoints must be >= 1")


# --------------------------------------------------------------------------- version 1 -> 2


def migrate(raw: dict[str, Any], where: str = "train settings") -> dict[str, Any]:
    """Settings of any known version as a plain dict of the current version (a copy).

    1 -> 2: `version` added; `optimizer.warmup_steps: 0` (no warm-up, as before); `losses`
    keeps the current objective's keys and `extra: {}`, and every other key is dropped with a
    warning: version 1 also carried research terms (off by default), whose code now lives
    outside the package and plugs in by name through `losses.extra`.
    """
    settings = _deep_copy(raw)
    version = settings.get("version", 1)
    if version == SETTINGS_VERSION:
        return settings
    if version != 1:
        raise ValueError(
            f"{where}: settings version {version!r} is unknown (this is version "
            f"{SETTINGS_VERSION})"
        )
    optimizer = settings.get("optimizer")
    if isinstance(optimizer, dict):
        optimizer.setdefault("warmup_steps", 0)
    losses = settings.get("losses")
    if isinstance(losses, dict):
        kept = {field.name for field in dataclasses.fields(LossSettings)}
        dropped = {key: losses.pop(key) for key in sorted(set(losses) - kept)}
        losses.setdefault("extra", {})
        if dropped:
            listed = ", ".join(f"losses.{key}={value}" for key, value in dropped.items())
            logger.warning(
                "%s: version-1 settings dropped (not part of the objective any more; extra "
                "terms go in losses.extra): %s", where, listed,
            )  # fmt: skip
    settings["version"] = SETTINGS_VERSION
    return settings


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


# --------------------------------------------------------------------------- loading


def missing_keys(cls: type, raw: Any, where: str) -> list[str]:
    """Dotted names of the fields of dataclass `cls` (nested ones too) absent from `raw`,
    including fields that have a default in code: here the YAML gives every value."""
    if not isinstance(raw, dict):
        return []
    hints = typing.get_type_hints(cls)
    missing = []
    for field in dataclasses.fields(cls):
        name = f"{where}.{field.name}" if where else field.name
        if field.name not in raw:
            missing.append(name)
        elif dataclasses.is_dataclass(hints[field.name]):
            missing.extend(missing_keys(hints[field.name], raw[field.name], name))
    return missing


def settings_from_dict(raw: dict[str, Any], where: str = "train settings") -> TrainFommConfig:
    """TrainFommConfig from a settings mapping of any known version (see migrate)."""
    current = migrate(raw, where)
    missing = missing_keys(TrainFommConfig, current, "")
    if missing:
        raise ValueError(f"{where}: missing setting(s) {', '.join(missing)}")
    return config_io.from_dict(TrainFommConfig, current, where=where)


def load_train_config(path: str | None = None) -> TrainFommConfig:
    """The shipped config/train_fomm.yaml, or the YAML file at `path`."""
    source = path or paths.config_path(CONFIG_NAME)
    return settings_from_dict(config_io.load_yaml(source), where=str(source))
