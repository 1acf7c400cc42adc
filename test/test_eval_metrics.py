"""MSE / PSNR / SSIM on tiny inputs with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from kp_motion.evaluation.metrics import (
    gaussian_window,
    mse,
    per_frame_metrics,
    psnr,
    ssim,
    video_metrics,
    video_psnr,
)

torch.set_num_threads(1)


def test_mse_hand_computed() -> None:
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[0.0, 0.5, 0.5, 1.0], [0.1, 0.1, 0.1, 0.1]]).view(2, 1, 2, 2)
    # image 0: (0 + 0.25 + 0.25 + 1) / 4 = 0.375; image 1: 0.01
    assert torch.allclose(mse(a, b), torch.tensor([0.375, 0.01]))


def test_psnr_of_known_noise() -> None:
    # +-0.1 noise everywhere: MSE = 0.01 exactly, PSNR = 10 log10(1 / 0.01) = 20 dB.
    clean = torch.full((1, 3, 8, 8), 0.5)
    signs = torch.where(
        torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0
    )
    noisy = clean + 0.1 * signs
    assert psnr(clean, noisy).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(clean, noisy, max_val=2.0).item() == pytest.approx(
        20.0 + 20 * math.log10(2), abs=1e-4
    )


def test_ssim_identical_is_one_and_lower_for_different() -> None:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 16, 16, generator=generator)
    assert torch.allclose(ssim(image, image), torch.ones(2), atol=1e-6)
    slightly = (image + 0.05 * torch.randn(2, 3, 16, 16, generator=generator)).clamp(0, 1)
    unrelated = torch.rand(2, 3, 16, 16, generator=generator)
    near, far = ssim(image, slightly), ssim(image, unrelated)
    assert (near < 1).all() and (far < near).all()


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    # Constant images have zero (co)variance, so SSIM reduces to
    # (2 m_a m_b + C1) / (m_a^2 + m_b^2 + C1) with C1 = 0.01^2.
    a = torch.full((1, 1, 11, 11), 0.2)
    b = torch.full((1, 1, 11, 11), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim(a, b).item() == pytest.approx(expected, rel=1e-5)


def test_ssim_matches_direct_weighted_statistics() -> None:
    # An 11x11 image has one valid window position: SSIM is the formula on the
    # Gaussian-weighted statistics of the whole image, computed here directly.
    generator = torch.Generator().manual_seed(2)
    a = torch.rand(1, 1, 11, 11, generator=generator, dtype=torch.float64)
    b = torch.rand(1, 1, 11, 11, generator=generator, dtype=torch.float64)
    taps = gaussian_window(11, 1.5, torch.float64)
    weights = taps[:, None] * taps[None, :]
    mean_a, mean_b = (weights * a).sum(), (weights * b).sum()
    var_a = (weights * (a - mean_a) ** 2).sum()
    var_b = (weights * (b - mean_b) ** 2).sum()
    cov = (weights * (a - mean_a) * (b - mean_b)).sum()
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    assert ssim(a, b).item() == pytest.approx(expected.item(), rel=1e-9)


def test_ssim_is_differentiable() -> None:
    a = torch.rand(1, 3, 16, 16, requires_grad=True)
    b = torch.rand(1, 3, 16, 16)
    (1 - ssim(a, b)).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        mse(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="window"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        gaussian_window(4, 1.5)


def test_video_wrappers() -> None:
    reference = torch.zeros(3, 3, 12, 12)
    generated = reference.clone()
    generated[1] += 0.2  # one frame off by 0.2: its MSE 0.04, the clip's mean MSE 0.04 / 3
    frames = per_frame_metrics(reference, generated, batch_size=2)
    assert torch.allclose(frames["mse"], torch.tensor([0.0, 0.04, 0.0]))
    assert math.isinf(frames["psnr"][0].item())
    clip = video_metrics(reference, generated)
    assert clip["mse"] == pytest.approx(0.04 / 3)
    assert clip["psnr"] == pytest.approx(10 * math.log10(3 / 0.04), rel=1e-5)
    assert video_psnr(torch.zeros(4)) == math.inf
