"""Augmentation: pairs stay aligned, each transform does what it says, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.data.augmentation import AugmentationConfig, Augmenter, colour_jitter

NO_JITTER = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}


def random_clip(seed: int = 0, frames: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.9, size=(frames, 12, 16, 3)).astype(np.float32)


def test_identical_frames_stay_identical_under_every_augmentation() -> None:
    frame = random_clip(1, frames=1)[0]
    pair = np.stack([frame, frame])
    strong = AugmentationConfig(1.0, 1.0, 0.5, 0.5, 0.5, 0.5)
    for seed in range(5):
        out = Augmenter(strong)(pair, np.random.default_rng(seed))
        np.testing.assert_array_equal(out[0], out[1])


def test_pixels_shared_by_both_frames_get_the_same_colour_change() -> None:
    pair = random_clip(2)
    pair[1, :, :8] = pair[0, :, :8]  # left half identical, right half different
    config = AugmentationConfig(
        horizontal_flip=0.0, time_flip=0.0, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.2
    )
    out = Augmenter(config)(pair, np.random.default_rng(3))
    np.testing.assert_allclose(out[0, :, :8], out[1, :, :8], atol=1e-6)
    assert not np.allclose(out[0, :, :8], pair[0, :, :8])  # something did change


def test_flip_and_time_flip_are_exact() -> None:
    clip = random_clip(4, frames=3)
    flip_only = AugmentationConfig(horizontal_flip=1.0, time_flip=0.0, **NO_JITTER)
    np.testing.assert_array_equal(
        Augmenter(flip_only)(clip, np.random.default_rng(0)), clip[:, :, ::-1]
    )
    reverse_only = AugmentationConfig(horizontal_flip=0.0, time_flip=1.0, **NO_JITTER)
    np.testing.assert_array_equal(
        Augmenter(reverse_only)(clip, np.random.default_rng(0)), clip[::-1]
    )
    nothing = AugmentationConfig(horizontal_flip=0.0, time_flip=0.0, **NO_JITTER)
    np.testing.assert_array_equal(Augmenter(nothing)(clip, np.random.default_rng(0)), clip)


def test_hue_rotation_keeps_luma_and_a_full_turn_is_identity() -> None:
    clip = random_clip(5) * 0.5 + 0.25  # away from the clipping limits
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    shifted = colour_jitter(clip, 1.0, 1.0, 1.0, 0.2)
    np.testing.assert_allclose(shifted @ luma, clip @ luma, atol=1e-4)
    assert np.abs(shifted - clip).max() > 0.02
    np.testing.assert_allclose(colour_jitter(clip, 1.0, 1.0, 1.0, 1.0), clip, atol=1e-4)


def test_seeded_generator_reproduces_and_output_is_valid() -> None:
    clip = random_clip(6)
    augment = Augmenter(AugmentationConfig(hue=0.3, saturation=0.4))
    first = augment(clip, np.random.default_rng(11))
    np.testing.assert_array_equal(first, augment(clip, np.random.default_rng(11)))
    others = [augment(clip, np.random.default_rng(seed)) for seed in range(12, 16)]
    assert any(not np.array_equal(first, other) for other in others)
    assert first.dtype == np.float32 and first.shape == clip.shape
    assert first.min() >= 0.0 and first.max() <= 1.0


@pytest.mark.parametrize(
    "bad", [{"horizontal_flip": 1.5}, {"brightness": -0.1}, {"hue": 0.7}, {"time_flip": -1}]
)
def test_invalid_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Augmenter(AugmentationConfig(**bad))
