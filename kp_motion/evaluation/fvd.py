"""Fréchet Video Distance: the Fréchet distance between Gaussians fitted to I3D clip features.

    FVD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

(Unterthiner et al. 2018, after the FID of Heusel et al. 2017). Numerical care: statistics in
float64; scipy.linalg.sqrtm for the matrix square root; when the product is singular (few clips,
many feature dimensions) and the root is not finite, `eps` is added to both diagonals and the
root recomputed; tiny imaginary parts produced by round-off are dropped.

A video is cut into clips of `clip_length` frames every `clip_stride` frames; the clips of the
reference and the generated video are the two samples. With fewer clips than feature dimensions
the covariances are rank-deficient and a per-video FVD is noisy: the pipeline therefore also
reports the FVD of all clips of all videos pooled together.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch

from kp_motion.evaluation.i3d import I3DFeatureExtractor

FVD_UNAVAILABLE = "unavailable (no I3D weights given)"
# Imaginary parts larger than this (relative to the trace) are reported, not silently dropped.
IMAGINARY_WARN_TOLERANCE = 1e-3


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> (mean (D,), covariance (D, D)); one sample gives a zero covariance."""
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"expected (N, D) features with N >= 1, got shape {values.shape}")
    mean = values.mean(axis=0)
    if values.shape[0] < 2:
        return mean, np.zeros((values.shape[1], values.shape[1]))
    return mean, np.atleast_2d(np.cov(values, rowvar=False))


def _matrix_sqrt(matrix: np.ndarray) -> np.ndarray:
    # Rank-deficient covariances (fewer clips than feature dimensions) are expected here; scipy
    # warns about them on every call, and non-finite results are handled by the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def frechet_distance(
    mean_a: np.ndarray,
    cov_a: np.ndarray,
    mean_b: np.ndarray,
    cov_b: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mean_a, cov_a) and N(mean_b, cov_b)."""
    mean_a, mean_b = (
        np.atleast_1d(mean_a).astype(np.float64),
        np.atleast_1d(mean_b).astype(np.float64),
    )
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape:
        raise ValueError(
            f"statistics differ in shape: means {mean_a.shape} vs {mean_b.shape}, "
            f"covariances {cov_a.shape} vs {cov_b.shape}"
        )
    if cov_a.shape != (mean_a.size, mean_a.size):
        raise ValueError(f"covariance {cov_a.shape} does not match mean of size {mean_a.size}")
    mean_term = float(np.sum((mean_a - mean_b) ** 2))
    root = _matrix_sqrt(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # Singular product: regularise both covariances slightly and try again.
        offset = np.eye(cov_a.shape[0]) * eps
        root = _matrix_sqrt((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(root):
        scale = max(abs(np.trace(cov_a)) + abs(np.trace(cov_b)), 1e-12)
        largest_imaginary = float(np.max(np.abs(root.imag)))
        if largest_imaginary > IMAGINARY_WARN_TOLERANCE * scale:
            warnings.warn(
                f"Fréchet distance: dropped an imaginary part of {largest_imaginary:.3g} "
                "in the covariance square root",
                RuntimeWarning,
                stacklevel=2,
            )
        root = root.real
    trace_term = float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))
    # Round-off can push a zero distance slightly negative.
    return max(mean_term + trace_term, 0.0)


def _as_samples(features: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"{name}: expected (N, D) features with N >= 1, got shape {values.shape}")
    return values


def frechet_distance_of_features(
    features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor
) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets.

    With fewer samples than dimensions (the usual case per video: a few clips, 400 features)
    the trace of the covariance root has an exact low-rank form. With centred samples A (n_a, D)
    and B (n_b, D), S_a = A^T A / (n_a - 1) and S_b = B^T B / (n_b - 1); the non-zero
    eigenvalues of S_a S_b are those of (A B^T)(A B^T)^T / ((n_a - 1)(n_b - 1)), so
        Tr (S_a S_b)^(1/2) = ||A B^T||_* / sqrt((n_a - 1)(n_b - 1))
    (nuclear norm: the sum of singular values). This needs an n_a x n_b SVD instead of a D x D
    matrix square root, and has no imaginary round-off to drop.
    """
    samples_a = _as_samples(features_a, "first feature set")
    samples_b = _as_samples(features_b, "second feature set")
    if samples_a.shape[1] != samples_b.shape[1]:
        raise ValueError(
            f"feature sets differ in dimension: {samples_a.shape[1]} vs {samples_b.shape[1]}"
        )
    dimensions = samples_a.shape[1]
    if min(len(samples_a), len(samples_b)) > dimensions:
        return frechet_distance(*feature_statistics(samples_a), *feature_statistics(samples_b))
    mean_a, mean_b = samples_a.mean(axis=0), samples_b.mean(axis=0)
    centred_a, centred_b = samples_a - mean_a, samples_b - mean_b
    trace_a = float((centred_a**2).sum()) / (len(samples_a) - 1) if len(samples_a) > 1 else 0.0
    trace_b = float((centred_b**2).sum()) / (len(samples_b) - 1) if len(samples_b) > 1 else 0.0
    cross = 0.0
    if len(samples_a) > 1 and len(samples_b) > 1:
        singular_values = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False)
        cross = float(singular_values.sum()) / np.sqrt((len(samples_a) - 1) * (len(samples_b) - 1))
    distance = float(np.sum((mean_a - mean_b) ** 2)) + trace_a + trace_b - 2.0 * cross
    return max(distance, 0.0)


def split_clips(video: torch.Tensor, clip_length: int, clip_stride: int) -> torch.Tensor:
    """(T, 3, H, W) -> (N, clip_length, 3, H, W) clips starting every `clip_stride` frames.

    A video shorter than one clip becomes a single clip of all its frames (I3D accepts any
    length); frames after the last full clip are not used.
    """
    if video.dim() != 4:
        raise ValueError(f"expected a (T, 3, H, W) video, got {tuple(video.shape)}")
    if clip_length < 1 or clip_stride < 1:
        raise ValueError(f"clip length and stride must be >= 1, got {clip_length}, {clip_stride}")
    frames = video.shape[0]
    if frames == 0:
        raise ValueError("cannot cut clips from an empty video")
    if frames <= clip_length:
        return video.unsqueeze(0)
    starts = range(0, frames - clip_length + 1, clip_stride)
    return torch.stack([video[start : start + clip_length] for start in starts])


class FVDScorer:
    """Per-video and pooled FVD against a reference, with I3D features cached per video."""

    def __init__(
        self, extractor: I3DFeatureExtractor, clip_length: int = 16, clip_stride: int = 8
    ) -> None:
        self.extractor = extractor
        self.clip_length = clip_length
        self.clip_stride = clip_stride

    def features(self, video: torch.Tensor) -> np.ndarray:
        """I3D features (N clips, D) of a (T, 3, H, W) video in [0, 1]."""
        clips = split_clips(video, self.clip_length, self.clip_stride)
        return self.extractor(clips).numpy()

    @staticmethod
    def distance(reference_features: np.ndarray, generated_features: np.ndarray) -> float:
        return frechet_distance_of_features(reference_features, generated_features)
