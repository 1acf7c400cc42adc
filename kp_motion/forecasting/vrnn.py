"""Variational RNN forecaster (Chung et al. 2015, "A Recurrent Latent Variable Model for
Sequential Data"), with a GRU cell as the recurrence.

Per step t, with h the state after frames < t:
    prior     p(z_t | h)            = N(prior(h))
    encoder   q(z_t | x_t, h)       = N(encoder(phi_x(x_t), h))
    decoder   p(x_t | z_t, h)       = N(x_{t-1} + s * decoder(phi_z(z_t), h), (s * sigma)^2)
    recurrence h <- GRUCell([phi_x(x_t), phi_z(z_t)], h)
phi_x sees x_t and its change x_t - x_{t-1} (only the change with level_inputs off); s is the
motion scale (RMS frame-to-frame change, SequenceModel.motion_scale), so sigma (fixed
`decoder_std`, or learned) is in motion units.
Loss per window: sum_t kl_weight * KL(q || p) - log p(x_t | z_t, h), backpropagated through the
whole window (the state is never detached), reported per value (divided by 60 and the steps).
The trainer may anneal the KL weight from 0 and give each latent dimension free bits
(schedule_loss); the reported `kl` is the plain KL either way.

The decoder mean is an offset from the previous frame (an untrained model is hold-last). The
first frame of a window has no previous frame (its change counts as 0), so it only conditions
the state: its KL counts, its likelihood does not.

Prediction: z from the prior (its mean, or a sample when sample=True), x = decoder mean; the
predicted x is fed back through phi_x exactly like an observed frame. Sampling x itself would
only add per-frame jitter to the keypoints, so the sampled mode draws z only. An observed frame
updates the state with the posterior mean of z.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kp_motion.forecasting.base import SequenceModel
from kp_motion.forecasting.distributions import GaussianHead, gaussian_kl_per_dim, gaussian_nll
from kp_motion.forecasting.settings import VrnnSettings
from kp_motion.keypoints import NUM_VALUES


@dataclass
class VrnnState:
    hidden: torch.Tensor  # (B, hidden_size)
    last_frame: torch.Tensor | None  # (B, 60); None before the first frame


class VrnnForecastModel(SequenceModel):
    kind = "vrnn"

    def __init__(self, settings: VrnnSettings) -> None:
        super().__init__()
        sizes = (settings.feature_size, settings.hidden_size, settings.latent_size)
        if min(sizes) < 1:
            raise ValueError(f"vrnn: feature, hidden and latent sizes must be >= 1, got {settings}")
        if settings.decoder_std is not None and settings.decoder_std <= 0:
            raise ValueError(
                f"vrnn: decoder_std must be positive or null, got {settings.decoder_std}"
            )
        self.settings = settings
        features, hidden, latent = sizes
        # phi_x and the decoder's mean are linear maps: deeper ReLU versions of them learned
        # motion about 3x slower on smooth trajectories (one-step error after 300 steps), and
        # the GRU cell, prior and encoder give the model its non-linearity.
        inputs = (2 if settings.level_inputs else 1) * NUM_VALUES
        self.phi_x = nn.Linear(inputs, features)
        self.phi_z = nn.Sequential(nn.Linear(latent, features), nn.ReLU())
        self.prior_net = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.prior_head = GaussianHead(hidden, latent)
        self.encoder_net = nn.Sequential(nn.Linear(features + hidden, hidden), nn.ReLU())
        self.encoder_head = GaussianHead(hidden, latent)
        self.decoder_mean = nn.Linear(features + hidden, NUM_VALUES)
        nn.init.zeros_(self.decoder_mean.weight)  # start as hold-last
        nn.init.zeros_(self.decoder_mean.bias)
        self.decoder_std_head = (
            nn.Linear(features + hidden, NUM_VALUES) if settings.decoder_std is None else None
        )
        self.cell = nn.GRUCell(2 * features, hidden)
        # Training-time KL schedule (set by the trainer through schedule_loss; not saved).
        self.kl_scale = 1.0
        self.free_bits = 0.0

    def inputs(self, frame: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.step_inputs(frame, previous, self.settings.level_inputs)

    def schedule_loss(self, step: int, kl_warmup_steps: int, free_bits: float) -> None:
        """KL annealing (weight 0 -> kl_weight over kl_warmup_steps) and free bits."""
        self.kl_scale = min(1.0, step / kl_warmup_steps) if kl_warmup_steps > 0 else 1.0
        self.free_bits = free_bits

    # --- the pieces of one step -------------------------------------------------------------

    def prior(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prior_head(self.prior_net(hidden))

    def posterior(
        self, frame_features: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder_head(self.encoder_net(torch.cat([frame_features, hidden], -1)))

    def decode(
        self, latent_features: torch.Tensor, hidden: torch.Tensor, previous_frame: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of p(x_t | z_t, h)."""
        decoded = torch.cat([latent_features, hidden], -1)
        mean = previous_frame + self.decoder_mean(decoded) * self.motion_scale
        if self.decoder_std_head is not None:
            std = nn.functional.softplus(self.decoder_std_head(decoded)) + 1e-3
        else:
            std = torch.full_like(mean, float(self.settings.decoder_std))
        return mean, std * self.motion_scale

    def recur(
        self, frame_features: torch.Tensor, latent_features: torch.Tensor, hidden: torch.Tensor
    ) -> torch.Tensor:
        return self.cell(torch.cat([frame_features, latent_features], -1), hidden)

    # --- training ---------------------------------------------------------------------------

    def training_loss(self, windows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        batch, length, _ = windows.shape
        if length < 2:
            raise ValueError("vrnn: training windows need at least 2 frames")
        previous = torch.cat([windows[:, :1], windows[:, :-1]], dim=1)
        # phi_x of all steps at once; only the recurrence has to run step by step.
        frame_features = self.phi_x(self.inputs(windows, previous))
        hidden = windows.new_zeros(batch, self.settings.hidden_size)
        kl_per_dim = windows.new_zeros(self.settings.latent_size)
        nll_total = windows.new_zeros(batch)
        for t in range(length):
            prior_mean, prior_std = self.prior(hidden)
            post_mean, post_std = self.posterior(frame_features[:, t], hidden)
            latent = post_mean + post_std * torch.randn_like(post_std)
            latent_features = self.phi_z(latent)
            kl_per_dim = kl_per_dim + gaussian_kl_per_dim(
                post_mean, post_std, prior_mean, prior_std
            ).mean(dim=0)
            if t > 0:
                mean, std = self.decode(latent_features, hidden, windows[:, t - 1])
                nll_total = nll_total + gaussian_nll(windows[:, t], mean, std)
            hidden = self.recur(frame_features[:, t], latent_features, hidden)
        kl = kl_per_dim.sum() / (length * NUM_VALUES)
        nll = nll_total.mean() / ((length - 1) * NUM_VALUES)
        # Free bits (Kingma et al. 2016): a latent dimension whose KL (per step, batch mean)
        # is below free_bits nats costs nothing, so the posterior is not pushed onto the prior
        # before the decoder has learned to use z.
        floored = torch.clamp(kl_per_dim / length, min=self.free_bits).sum() / NUM_VALUES
        kl_weight = self.settings.kl_weight * self.kl_scale
        loss = kl_weight * floored + nll
        return loss, {"kl": float(kl.detach()), "nll": float(nll.detach())}

    # --- streaming --------------------------------------------------------------------------

    def initial_state(self, batch_size: int) -> VrnnState:
        device = self.decoder_mean.weight.device
        return VrnnState(torch.zeros(batch_size, self.settings.hidden_size, device=device), None)

    def repeat_state(self, state: VrnnState, copies: int) -> VrnnState:
        last = None if state.last_frame is None else state.last_frame.repeat(copies, 1)
        return VrnnState(state.hidden.repeat(copies, 1), last)

    def _frame_features(self, state: VrnnState, frame: torch.Tensor) -> torch.Tensor:
        previous = frame if state.last_frame is None else state.last_frame
        return self.phi_x(self.inputs(frame, previous))

    def observe_step(self, state: VrnnState, frame: torch.Tensor) -> VrnnState:
        frame_features = self._frame_features(state, frame)
        post_mean, _ = self.posterior(frame_features, state.hidden)
        hidden = self.recur(frame_features, self.phi_z(post_mean), state.hidden)
        return VrnnState(hidden, frame)

    def propose(self, state: VrnnState, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        prior_mean, prior_std = self.prior(state.hidden)
        latent = prior_mean + prior_std * torch.randn_like(prior_std) if sample else prior_mean
        latent_features = self.phi_z(latent)
        last = state.last_frame
        if last is None:  # nothing observed yet: decode around the training mean
            last = torch.zeros(state.hidden.shape[0], NUM_VALUES, device=state.hidden.device)
        mean, _ = self.decode(latent_features, state.hidden, last)
        return mean, latent_features

    def advance_predicted(
        self, state: VrnnState, frame: torch.Tensor, pending: torch.Tensor
    ) -> VrnnState:
        hidden = self.recur(self._frame_features(state, frame), pending, state.hidden)
        return VrnnState(hidden, frame)
