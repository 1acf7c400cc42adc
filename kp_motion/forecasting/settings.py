"""Settings of the keypoint forecasters: the fields live here, the shipped values in
config/forecaster.yaml (one source of truth per setting; the dataclasses carry no defaults).

A trained checkpoint stores its own model settings in its forecaster.yaml, so a checkpoint keeps
working when the shipped defaults change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kp_motion import config as config_io
from kp_motion.names import LEARNED_FORECASTERS as LEARNED_KINDS
from kp_motion.names import LINEAR_FORECASTERS as LINEAR_KINDS
from kp_motion.paths import config_path

NUM_CHANNELS = 6  # channels of a keypoint's values: x, y and the 4 Jacobian entries


@dataclass
class RnnSettings:
    """GRU forecaster: one-step-ahead MSE with teacher forcing, autoregressive at prediction."""

    hidden_size: int
    num_layers: int
    # The only default in these settings: checkpoints (and callers) from before the option
    # existed read the frame's levels, so a missing value must mean True.
    level_inputs: bool = True  # read the frame itself, not only its change (see base.py)


@dataclass
class VaeSettings:
    """VAE forecaster: q(z | last frames) -> decoder gives the offsets of lags 1..horizon."""

    context_frames: int  # frames the encoder sees (1 = x_t only; 2 also gives it the velocity)
    horizon: int  # lags predicted per decoder pass; longer predictions chain passes
    hidden_size: int
    latent_size: int
    beta: float  # weight of the KL term


@dataclass
class VrnnSettings:
    """VRNN (Chung et al. 2015) with a GRU-cell recurrence."""

    feature_size: int  # width of phi_x(x) and phi_z(z)
    hidden_size: int  # recurrent state h
    latent_size: int  # z
    decoder_std: float | None  # fixed std of p(x|z,h) in standardised units; null = learned
    kl_weight: float  # 1.0 is the ELBO of the paper
    level_inputs: bool = True  # as RnnSettings.level_inputs (a default for older checkpoints)


@dataclass
class LinearSettings:
    """Linear forecasters fit by least squares (forecasting/linear.py)."""

    lags: int  # L: changes of each value used as features
    horizon: int  # lags h predicted per pass (1 = one-step autoregression)
    running_mean: bool  # the pull towards the mean of the observed frames
    group_motion: bool  # the change of the channel averaged over keypoints
    ridge: float  # ridge penalty, relative to the number of samples (features scaled to RMS 1)
    # Defaults only so that checkpoints written before these options existed (which had
    # neither feature) still load:
    signed_squares: bool = False  # c|c| of the last change (and of the pull to the mean)
    common_motion: bool = False  # the last change of all 6 channels averaged over keypoints

    def validate(self) -> None:
        if self.lags < 1 or self.horizon < 1:
            raise ValueError(f"linear forecaster: lags and horizon must be >= 1, got {self}")
        if self.group_motion and self.lags < 2:
            raise ValueError("linear forecaster: group_motion needs lags >= 2")
        if self.ridge < 0:
            raise ValueError(f"linear forecaster: ridge must be >= 0, got {self.ridge}")

    @property
    def num_features(self) -> int:
        squares = (1 + int(self.running_mean)) * int(self.signed_squares)
        common = NUM_CHANNELS * int(self.common_motion)
        return self.lags + int(self.running_mean) + 2 * int(self.group_motion) + squares + common


@dataclass
class TrainSettings:
    steps: int
    batch_size: int
    window_length: int  # frames per random training window
    time_flip: float  # probability that a training window is played backwards (augmentation)
    learning_rate: float
    weight_decay: float
    grad_clip: float  # max global gradient norm, applied before every optimiser step
    eval_interval: int  # steps between validation passes
    eval_windows: int  # fixed validation windows (drawn once, with the seed)
    patience: int  # stop after this many validations without improvement; 0 = never
    select_by: str  # checkpoint kept: "protocol" (block-protocol MSE) or "loss" (validation loss)
    val_fraction: float  # share of sequences held out when no validation folder is given
    std_floor: float  # smallest per-dimension std used for standardisation (raw units)
    seed: int
    device: str
    # Closed-loop training (0 / 0 / 0 turn each off; the synthetic set shipped without them):
    kl_warmup_steps: int  # VRNN: the KL weight rises linearly from 0 over these steps
    free_bits: float  # VRNN: KL below this many nats per latent dimension costs nothing
    closed_loop_weight: float  # weight of the free-running loss added to the model's own
    closed_loop_k: list[int]  # its blocks: observe k true frames, predict k, repeated along
    # the window (state carried, as in the evaluation); each step draws one k of the list


@dataclass
class EvaluationSettings:
    block_sizes: list[int]  # k values of the block protocol (observe k, predict k, advance 2k)
    reset_per_block: bool  # the method resets the forecaster before each block


@dataclass
class ForecasterSettings:
    rnn: RnnSettings
    vae: VaeSettings
    vrnn: VrnnSettings
    linear_ar: LinearSettings
    direct_linear: LinearSettings
    train: TrainSettings
    evaluation: EvaluationSettings

    def model_settings(self, kind: str) -> RnnSettings | VaeSettings | VrnnSettings:
        if kind not in LEARNED_KINDS:
            raise ValueError(f"unknown forecaster kind {kind!r} (expected one of {LEARNED_KINDS})")
        return getattr(self, kind)

    def linear_settings(self, kind: str) -> LinearSettings:
        """Settings of a linear kind ("linear-ar", "direct-linear")."""
        if kind not in LINEAR_KINDS:
            raise ValueError(f"unknown linear kind {kind!r} (expected one of {LINEAR_KINDS})")
        return getattr(self, kind.replace("-", "_"))


def load_settings(path: str | Path | None = None) -> ForecasterSettings:
    """Read config/forecaster.yaml (or `path`) into ForecasterSettings."""
    return config_io.load(ForecasterSettings, path or config_path("forecaster.yaml"))
