"""Settings of `kp-motion train fomm`: the dataclasses; the values live in config/train_fomm.yaml.

No field has a default: the YAML file is the one source of truth and spells out every setting
(kp_motion.config refuses unknown keys and reports missing ones). Paths given per run (dataset
root, output folder, checkpoint to resume, VGG19 weights) are command-line options instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from kp_motion import config as config_io
from kp_motion import paths
from kp_motion.data.augmentation import AugmentationConfig
from kp_motion.models.discriminator import DiscriminatorSettings
from kp_motion.training.losses import PART_MARGIN, PART_MATCHES

CONFIG_NAME = "train_fomm.yaml"
SCHEDULES = ("multistep", "cosine", "constant")


@dataclass(frozen=True)
class DataSettings:
    fit: str  # how frames of another size reach the profile's size: "resize" or "crop"
    repeats: int  # times each training video is visited per epoch (short epochs are wasteful)
    cache: bool  # keep decoded videos in memory (cheap at 64 px, see kp_motion.data.datasets)
    num_workers: int  # DataLoader worker processes (0 = load in the training process)
    # Most frames between the two frames of a training pair (0 = any two frames of a video).
    # Small gaps keep motions within the reach of the photometric gradient; see
    # models/fomm-compact-64/MODEL_CARD.md.
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
    # Weight of the mean spread of the keypoint heatmaps (not in FOMM; 0 = off). Pulls broad
    # heatmaps, whose keypoints sit on object centroids, towards distinct parts.
    keypoint_concentration: float
    # Weight of a penalty on keypoints closer than about keypoint_separation_sigma to each
    # other (not in FOMM; 0 = off): pulls apart redundant keypoints that share a centroid.
    keypoint_separation: float
    keypoint_separation_sigma: float
    # Weight of the mask-balance term (not in FOMM; 0 = off): a penalty on every keypoint whose
    # dense-motion mask holds less than mask_balance_floor of the batch's pixels, so that no
    # keypoint dies (as in mixture-of-experts load balancing).
    mask_balance: float
    mask_balance_floor: float
    # Weights of losses.part_following (not in FOMM; 0 = off): keypoints should move with the
    # parts of a synthetic dataset, whose part poses its manifest can rebuild, and their
    # Jacobians turn with them.
    part_following: float
    part_following_jacobian: float
    # How part_following picks each part's keypoint (one of losses.PART_MATCHES; its docstring
    # says what each scores).
    part_following_match: str = "motion"
    # Weight of losses.background_mask (not in FOMM; 0 = off): on a synthetic dataset, the
    # dense motion's background share should be 1 wherever no part is, in either frame; parts
    # cover their pose's local square grown by background_mask_margin (local units). Defaults
    # here too, like part_following_match, so that runs saved before they existed resume.
    background_mask: float = 0.0
    background_mask_margin: float = PART_MARGIN

    @property
    def needs_part_poses(self) -> bool:
        """Whether a term is on that needs the batches' part poses (a synthetic dataset)."""
        return self.part_following > 0 or self.background_mask > 0

    def __post_init__(self) -> None:
        reconstruction_weights = (self.reconstruction_l1, self.ssim, *self.perceptual_weights)
        weights = (
            *reconstruction_weights,
            self.equivariance_value,
            self.equivariance_jacobian,
            self.keypoint_concentration,
            self.keypoint_separation,
            self.mask_balance,
            self.part_following,
            self.part_following_jacobian,
            self.background_mask,
        )
        if any(weight < 0 for weight in weights):
            raise ValueError("loss weights must be >= 0")
        if not any(reconstruction_weights):
            raise ValueError("losses: at least one image reconstruction weight must be non-zero")
        if self.part_following_jacobian > 0 and self.part_following <= 0:
            raise ValueError(
                "losses.part_following_jacobian needs losses.part_following on (it scores the "
                "keypoints that term picks as the parts' followers)"
            )
        if self.part_following_match not in PART_MATCHES:
            raise ValueError(
                f"losses.part_following_match must be one of {', '.join(PART_MATCHES)}, got "
                f"{self.part_following_match!r}"
            )
        if self.keypoint_separation_sigma <= 0:
            raise ValueError(
                "losses.keypoint_separation_sigma must be positive, got "
                f"{self.keypoint_separation_sigma}"
            )
        if self.background_mask_margin < 0:
            raise ValueError(
                f"losses.background_mask_margin must be >= 0, got {self.background_mask_margin}"
            )
        if not 0 < self.mask_balance_floor < 1:
            raise ValueError(
                f"losses.mask_balance_floor must be in (0, 1), got {self.mask_balance_floor}"
            )
        if len(self.perceptual_weights) != 5:
            raise ValueError("losses.perceptual_weights needs 5 values (relu1_1 .. relu5_1)")
        if not self.pyramid_scales or any(not 0 < s <= 1 for s in self.pyramid_scales):
            raise ValueError(f"losses.pyramid_scales must be in (0, 1], got {self.pyramid_scales}")


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
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.max_steps < 0 or self.checkpoint_every < 0:
            raise ValueError("max_steps and checkpoint_every must be >= 0")
        if self.log_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("log_every and keep_checkpoints must be >= 1")


def load_train_config(path: str | None = None) -> TrainFommConfig:
    """The shipped config/train_fomm.yaml, or the YAML file at `path`."""
    return config_io.load(TrainFommConfig, path or paths.config_path(CONFIG_NAME))
