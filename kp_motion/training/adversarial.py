"""FOMM's optional GAN: the discriminator, its optimiser, and the two sides of each step.

Per training step, after the generator's forward pass:
1. `generator_terms`: the LSGAN and feature-matching terms of the generated frame, added to the
   generator's loss. The discriminator is called with detached copies of its parameters
   (torch.func.functional_call), so the generator's backward pass computes no discriminator
   gradients and never touches the discriminator's DistributedDataParallel hooks.
2. `discriminator_loss` then `step`: one Adam step of the discriminator on the real frames and
   the generated ones (detached), both in a single forward pass, which DDP wants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from kp_motion.models.discriminator import DiscriminatorOutput, MultiScaleDiscriminator
from kp_motion.training.losses import (
    discriminator_lsgan_loss,
    feature_matching_loss,
    generator_lsgan_loss,
    image_pyramid,
)
from kp_motion.training.settings import AdversarialSettings


def _split(output: DiscriminatorOutput, count: int) -> tuple[DiscriminatorOutput, ...]:
    """The outputs of a forward over cat([a, b]) as the outputs of a (first `count`) and b."""
    parts = []
    for half in (slice(0, count), slice(count, None)):
        parts.append(
            DiscriminatorOutput(
                features={s: [f[half] for f in fs] for s, fs in output.features.items()},
                scores={s: scores[half] for s, scores in output.scores.items()},
            )
        )
    return tuple(parts)


class AdversarialTraining:
    """The discriminator side of a FOMM training run (built only when the GAN is enabled)."""

    def __init__(
        self,
        settings: AdversarialSettings,
        num_channels: int,
        num_kp: int,
        betas: tuple[float, float],
        device: torch.device,
        wrap: Callable[[nn.Module], nn.Module],
    ) -> None:
        self.settings = settings
        self.scales = settings.discriminator.scales
        self.discriminator = MultiScaleDiscriminator(
            num_channels, num_kp, settings.discriminator
        ).to(device)
        self.model = wrap(self.discriminator)  # DDP-wrapped in a distributed run
        self.optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=settings.lr_discriminator, betas=betas
        )

    def generator_terms(
        self, real: torch.Tensor, generated: torch.Tensor, kp_driving: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{"generator_gan", "feature_matching"}: weighted terms of the generator's loss."""
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        with torch.no_grad():
            real_out = functional_call(
                self.discriminator, frozen, (image_pyramid(real, self.scales), kp_driving)
            )
        generated_out = functional_call(
            self.discriminator, frozen, (image_pyramid(generated, self.scales), kp_driving)
        )
        return {
            "generator_gan": self.settings.generator_gan * generator_lsgan_loss(generated_out),
            "feature_matching": feature_matching_loss(
                real_out, generated_out, self.settings.feature_matching
            ),
        }

    def discriminator_loss(
        self, real: torch.Tensor, generated: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        """The discriminator's weighted LSGAN loss on real and (detached) generated frames."""
        frames = torch.cat([real, generated.detach()])
        output = self.model(image_pyramid(frames, self.scales), torch.cat([kp_driving] * 2))
        real_out, generated_out = _split(output, real.shape[0])
        return self.settings.discriminator_gan * discriminator_lsgan_loss(real_out, generated_out)

    def step(self, discriminator_loss: torch.Tensor) -> None:
        """One optimiser step of the discriminator on its loss (the trainer sets its lr)."""
        self.optimizer.zero_grad(set_to_none=True)
        discriminator_loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
