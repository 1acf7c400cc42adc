"""VAE forecaster: an encoder q(z | x_t) and a decoder p(x_{t+tau} | z, x_t) that outputs the
frames at every lag tau = 1..horizon at once, trained with reconstruction + beta * KL(q || N(0, I)).

"x_t" is the last `context_frames` frames (1 = the current frame only; 2 also gives the current
velocity). Encoder and decoder both see the context as frames plus the changes between them in
motion units (see SequenceModel). The decoder returns offsets from the current frame, in motion
units. The reconstruction term is the squared error in motion units summed over lags and values
(a Gaussian likelihood with fixed variance); both terms are reported per predicted value.

Prediction: one decoder pass gives `horizon` frames (z = posterior mean, or one sample of z per
pass when sample=True); longer predictions chain passes, each starting from the frames already
predicted. Observing a true frame discards the rest of the current pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kp_motion.forecasting.base import SequenceModel
from kp_motion.forecasting.distributions import GaussianHead, gaussian_kl
from kp_motion.forecasting.settings import VaeSettings
from kp_motion.keypoints import NUM_VALUES


@dataclass
class VaeState:
    context: torch.Tensor  # (B, context_frames, 60), oldest first
    started: bool  # False until the first frame: that frame then fills the whole context
    plan: torch.Tensor | None = None  # (B, horizon, 60) frames of the current decoder pass
    plan_step: int = 0  # next frame of `plan` to hand out


class VaeForecastModel(SequenceModel):
    kind = "vae"

    def __init__(self, settings: VaeSettings) -> None:
        super().__init__()
        sizes = (
            settings.context_frames,
            settings.horizon,
            settings.hidden_size,
            settings.latent_size,
        )
        if min(sizes) < 1:
            raise ValueError(f"vae: all sizes must be >= 1, got {settings}")
        if settings.beta < 0:
            raise ValueError(f"vae: beta must be >= 0, got {settings.beta}")
        self.settings = settings
        hidden = settings.hidden_size
        context_features = (2 * settings.context_frames - 1) * NUM_VALUES
        self.encoder = nn.Sequential(
            nn.Linear(context_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.posterior_head = GaussianHead(hidden, settings.latent_size)
        self.decoder = nn.Sequential(
            nn.Linear(settings.latent_size + context_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.offsets = nn.Linear(hidden, settings.horizon * NUM_VALUES)
        nn.init.zeros_(self.offsets.weight)  # start as hold-last
        nn.init.zeros_(self.offsets.bias)

    def context_features(self, context: torch.Tensor) -> torch.Tensor:
        """(..., context_frames, 60) -> the frames and the changes between them, flattened."""
        changes = (context[..., 1:, :] - context[..., :-1, :]) / self.motion_scale
        return torch.cat([context.flatten(-2), changes.flatten(-2)], dim=-1)

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | context) from context_features."""
        return self.posterior_head(self.encoder(features))

    def decode(
        self, latent: torch.Tensor, features: torch.Tensor, current_frame: torch.Tensor
    ) -> torch.Tensor:
        """(..., horizon, 60) frames at lags 1..horizon after `current_frame` (..., 60)."""
        offsets = self.offsets(self.decoder(torch.cat([latent, features], dim=-1)))
        offsets = offsets.unflatten(-1, (self.settings.horizon, NUM_VALUES)) * self.motion_scale
        return current_frame.unsqueeze(-2) + offsets

    def training_loss(self, windows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        context_frames, horizon = self.settings.context_frames, self.settings.horizon
        span = context_frames + horizon
        if windows.shape[1] < span:
            raise ValueError(
                f"vae: training windows of {windows.shape[1]} frames are shorter than "
                f"context_frames + horizon = {span}"
            )
        # Every anchor t of the window: (B, anchors, span, 60).
        spans = windows.unfold(1, span, 1).permute(0, 1, 3, 2)
        context, targets = spans[:, :, :context_frames], spans[:, :, context_frames:]
        features = self.context_features(context)
        post_mean, post_std = self.encode(features)
        latent = post_mean + post_std * torch.randn_like(post_std)
        predictions = self.decode(latent, features, context[:, :, -1])
        errors = (predictions - targets) / self.motion_scale
        reconstruction = errors.pow(2).sum(dim=(-2, -1)).mean()
        kl = gaussian_kl(
            post_mean, post_std, torch.zeros_like(post_mean), torch.ones_like(post_std)
        ).mean()
        per_value = horizon * NUM_VALUES
        loss = (reconstruction + self.settings.beta * kl) / per_value
        return loss, {
            "reconstruction": float(reconstruction.detach()) / per_value,
            "kl": float(kl.detach()) / per_value,
        }

    def initial_state(self, batch_size: int) -> VaeState:
        device = self.offsets.weight.device
        context = torch.zeros(batch_size, self.settings.context_frames, NUM_VALUES, device=device)
        return VaeState(context, started=False)

    def _push(self, context: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        return torch.cat([context[:, 1:], frame.unsqueeze(1)], dim=1)

    def observe_step(self, state: VaeState, frame: torch.Tensor) -> VaeState:
        if not state.started:
            # A lone first frame stands for a still history (zero velocity), not a jump from 0.
            context = frame.unsqueeze(1).expand(-1, self.settings.context_frames, -1).clone()
        else:
            context = self._push(state.context, frame)
        return VaeState(context, started=True)

    def propose(self, state: VaeState, sample: bool) -> tuple[torch.Tensor, tuple]:
        plan, step = state.plan, state.plan_step
        if plan is None or step >= self.settings.horizon:
            features = self.context_features(state.context)
            post_mean, post_std = self.encode(features)
            latent = post_mean + post_std * torch.randn_like(post_std) if sample else post_mean
            plan, step = self.decode(latent, features, state.context[:, -1]), 0
        return plan[:, step], (plan, step + 1)

    def advance_predicted(self, state: VaeState, frame: torch.Tensor, pending: tuple) -> VaeState:
        plan, next_step = pending
        if not state.started:
            context = frame.unsqueeze(1).expand(-1, self.settings.context_frames, -1).clone()
        else:
            context = self._push(state.context, frame)
        return VaeState(context, started=True, plan=plan, plan_step=next_step)
