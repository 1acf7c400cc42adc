"""Image and video quality metrics on torch tensors in [0, 1]: MSE, PSNR, SSIM.

Every image metric takes two (B, C, H, W) tensors with values in [0, 1] and returns one value
per image, shape (B,). All are differentiable (SSIM included), so the training code can use
1 - ssim as a loss term.

SSIM follows Wang et al. 2004 ("Image quality assessment: from error visibility to structural
similarity"): local means, variances and covariance under an 11x11 Gaussian window (sigma 1.5),
constants C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with L the data range (1 here), computed per
channel over the "valid" region (no padding, so borders do not mix in zeros) and averaged over
channels and positions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got shape {tuple(a.shape)}")


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (B, C, H, W) x2 -> (B,)."""
    _check_pair(a, b)
    return (a - b).pow(2).flatten(1).mean(dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(max_val^2 / MSE).

    Identical images give +inf (the MSE is zero), which is the correct limit; callers that
    average PSNR over frames should decide how to treat it (see video_metrics).
    """
    error = mse(a, b)
    return 10.0 * torch.log10(max_val**2 / error)


def gaussian_window(
    window_size: int, sigma: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Normalised 1-D Gaussian of `window_size` taps centred on the middle tap."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"the SSIM window size must be a positive odd number, got {window_size}")
    if sigma <= 0:
        raise ValueError(f"the SSIM Gaussian sigma must be positive, got {sigma}")
    offsets = torch.arange(window_size, dtype=dtype) - (window_size - 1) / 2
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def _local_mean(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filtering of every channel independently, valid region only."""
    channels = images.shape[1]
    size = taps.numel()
    horizontal = taps.view(1, 1, 1, size).repeat(channels, 1, 1, 1)
    vertical = taps.view(1, 1, size, 1).repeat(channels, 1, 1, 1)
    filtered = F.conv2d(images, horizontal, groups=channels)
    return F.conv2d(filtered, vertical, groups=channels)


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    max_val: float = 1.0,
) -> torch.Tensor:
    """Structural similarity per image: (B, C, H, W) x2 -> (B,), 1 for identical images."""
    _check_pair(a, b)
    height, width = a.shape[-2:]
    if height < window_size or width < window_size:
        raise ValueError(
            f"SSIM needs images at least {window_size}x{window_size} (the window size), "
            f"got {height}x{width}"
        )
    taps = gaussian_window(window_size, sigma, a.dtype).to(a.device)
    c1 = (SSIM_K1 * max_val) ** 2
    c2 = (SSIM_K2 * max_val) ** 2
    # (Co)variances are E[xy] - E[x]E[y] under the window. Subtracting each image's mean
    # first (they are shift-invariant) keeps that difference from cancelling catastrophically
    # in float32 on flat regions; the means are added back for the luminance term.
    offset_a = a.mean(dim=(2, 3), keepdim=True).detach()
    offset_b = b.mean(dim=(2, 3), keepdim=True).detach()
    centred_a, centred_b = a - offset_a, b - offset_b
    centred_mean_a = _local_mean(centred_a, taps)
    centred_mean_b = _local_mean(centred_b, taps)
    var_a = _local_mean(centred_a * centred_a, taps) - centred_mean_a**2
    var_b = _local_mean(centred_b * centred_b, taps) - centred_mean_b**2
    covariance = _local_mean(centred_a * centred_b, taps) - centred_mean_a * centred_mean_b
    mean_a = centred_mean_a + offset_a
    mean_b = centred_mean_b + offset_b
    luminance = (2 * mean_a * mean_b + c1) / (mean_a**2 + mean_b**2 + c1)
    structure = (2 * covariance + c2) / (var_a + var_b + c2)
    return (luminance * structure).flatten(1).mean(dim=1)


def _as_frames(video: torch.Tensor, name: str) -> torch.Tensor:
    if video.dim() != 4:
        raise ValueError(f"{name}: expected a (T, C, H, W) video tensor, got {tuple(video.shape)}")
    return video


@torch.no_grad()
def per_frame_metrics(
    reference: torch.Tensor,
    generated: torch.Tensor,
    batch_size: int = 32,
    with_ssim: bool = True,
) -> dict[str, torch.Tensor]:
    """MSE, PSNR and SSIM of every frame of two (T, C, H, W) videos in [0, 1] -> {name: (T,)}.

    Frames are processed `batch_size` at a time so that long videos do not need the SSIM
    intermediates for all frames in memory at once.
    """
    reference = _as_frames(reference, "reference")
    generated = _as_frames(generated, "generated")
    _check_pair(reference, generated)
    results: dict[str, list[torch.Tensor]] = {"mse": [], "psnr": []}
    if with_ssim:
        results["ssim"] = []
    for start in range(0, reference.shape[0], batch_size):
        ref = reference[start : start + batch_size].float()
        gen = generated[start : start + batch_size].float()
        results["mse"].append(mse(ref, gen))
        results["psnr"].append(psnr(ref, gen))
        if with_ssim:
            results["ssim"].append(ssim(ref, gen))
    return {name: torch.cat(parts) for name, parts in results.items()}


def video_psnr(frame_mse: torch.Tensor | np.ndarray, max_val: float = 1.0) -> float:
    """PSNR of a whole clip from its per-frame MSE: 10 log10(max^2 / mean MSE).

    Taking the PSNR of the mean error (rather than the mean of per-frame PSNRs) keeps the
    value finite when some frames are reproduced exactly, and is what codec comparisons use.
    """
    mean_error = float(frame_mse.mean())
    if mean_error == 0.0:
        return math.inf
    return 10.0 * math.log10(max_val**2 / mean_error)


def video_metrics(
    reference: torch.Tensor, generated: torch.Tensor, batch_size: int = 32
) -> dict[str, float]:
    """Clip-level MSE, PSNR (of the mean MSE) and mean SSIM of two (T, C, H, W) videos."""
    frames = per_frame_metrics(reference, generated, batch_size=batch_size)
    return {
        "mse": float(frames["mse"].mean()),
        "psnr": video_psnr(frames["mse"]),
        "ssim": float(frames["ssim"].mean()),
    }
