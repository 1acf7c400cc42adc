"""Diagonal Gaussian helpers shared by the VAE and the VRNN (written out, not torch.distributions,
so that each term of the loss is visible)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Keeps standard deviations away from 0 so that log-densities and KLs stay finite.
MIN_STD = 1e-4


def gaussian_kl_per_dim(
    mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)) of each dimension (same shape as means)."""
    variance_q, variance_p = std_q.pow(2), std_p.pow(2)
    return (
        torch.log(std_p)
        - torch.log(std_q)
        + (variance_q + (mean_q - mean_p).pow(2)) / (2.0 * variance_p)
        - 0.5
    )


def gaussian_kl(
    mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)), summed over the last dimension."""
    return gaussian_kl_per_dim(mean_q, std_q, mean_p, std_p).sum(dim=-1)


def gaussian_nll(value: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """-log N(value; mean, std^2), summed over the last dimension."""
    per_dim = (
        0.5 * math.log(2.0 * math.pi) + torch.log(std) + (value - mean).pow(2) / (2.0 * std.pow(2))
    )
    return per_dim.sum(dim=-1)


class GaussianHead(nn.Module):
    """Linear map to a diagonal Gaussian: (mean, std) with std = softplus(.) + MIN_STD."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.mean = nn.Linear(in_features, out_features)
        self.raw_std = nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(features), F.softplus(self.raw_std(features)) + MIN_STD
