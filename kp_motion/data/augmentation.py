"""Training augmentation for frame pairs (or clips), applied identically to every frame.

The keypoint detector must find the same points in the source and the driving frame, so a
pair is always transformed together: one horizontal flip decision, one set of colour jitter
factors, one time-flip decision (swapping source and driving). All randomness comes from the
numpy Generator the caller passes, so a seeded generator gives the same augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Luma weights (ITU-R BT.601), as used for the grayscale in saturation/contrast jitter.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# RGB <-> YIQ: hue is an angle in the IQ (chroma) plane, so a hue shift is a 2D rotation there.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


@dataclass
class AugmentationConfig:
    """first-order-model's defaults: flips on, jitter of 0.1 for each colour property."""

    horizontal_flip: float = 0.5  # probability
    time_flip: float = 0.5  # probability of swapping source and driving (reversing the clip)
    brightness: float = 0.1  # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.1  # factor drawn from [1 - c, 1 + c]
    saturation: float = 0.1  # factor drawn from [1 - s, 1 + s]
    hue: float = 0.1  # shift drawn from [-h, h] turns of the colour wheel (h <= 0.5)

    def validate(self) -> AugmentationConfig:
        for name in ("horizontal_flip", "time_flip"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation.{name} is a probability in [0, 1], got {value}")
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augmentation.{name} must be in [0, 1), got {value}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"augmentation.hue must be in [0, 0.5], got {self.hue}")
        return self


def _factor(rng: np.random.Generator, spread: float) -> float:
    return float(rng.uniform(1.0 - spread, 1.0 + spread))  # exactly 1.0 when spread is 0


def _hue_rotation(turns: float) -> np.ndarray:
    """3x3 RGB matrix rotating hue by `turns` of a full circle (luma kept)."""
    angle = 2 * np.pi * turns
    rotation = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]],
        dtype=np.float32,
    )
    return _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ


def colour_jitter(
    frames: np.ndarray, brightness: float, contrast: float, saturation: float, hue_turns: float
) -> np.ndarray:
    """Same colour change for every frame of float (T, H, W, 3) in [0, 1].

    Contrast pivots on the mean luma of the whole clip (not of each frame), so the operation is
    literally the same function on every frame.
    """
    result = frames * brightness
    mean_luma = float((result @ _LUMA).mean())
    result = (result - mean_luma) * contrast + mean_luma
    gray = (result @ _LUMA)[..., None]
    result = (result - gray) * saturation + gray
    if hue_turns:
        result = result @ _hue_rotation(hue_turns).T
    return np.clip(result, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Augmentation:
    """One clip's augmentation: flip left-right, reverse time, colour jitter factors."""

    flip: bool
    reverse: bool
    brightness: float
    contrast: float
    saturation: float
    hue: float


class Augmenter:
    """Callable applying an AugmentationConfig to a clip (T, H, W, 3) float32 in [0, 1]."""

    def __init__(self, config: AugmentationConfig | None = None) -> None:
        self.config = (config or AugmentationConfig()).validate()

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(frames, self.draw(rng))

    def draw(self, rng: np.random.Generator) -> Augmentation:
        """The random decisions for one clip (what a caller with point data must mirror too)."""
        config = self.config
        # Draw every random number up front, in a fixed order, whatever is enabled: the same
        # seed then gives the same decisions for each property.
        return Augmentation(
            flip=bool(rng.random() < config.horizontal_flip),
            reverse=bool(rng.random() < config.time_flip),
            brightness=_factor(rng, config.brightness),
            contrast=_factor(rng, config.contrast),
            saturation=_factor(rng, config.saturation),
            hue=float(rng.uniform(-config.hue, config.hue)),
        )

    @staticmethod
    def apply(frames: np.ndarray, drawn: Augmentation) -> np.ndarray:
        if drawn.flip:
            frames = frames[:, :, ::-1]
        if drawn.reverse:
            frames = frames[::-1]
        jitter = (drawn.brightness, drawn.contrast, drawn.saturation, drawn.hue)
        if jitter != (1.0, 1.0, 1.0, 0.0):
            frames = colour_jitter(frames, *jitter)
        return np.ascontiguousarray(frames, dtype=np.float32)
