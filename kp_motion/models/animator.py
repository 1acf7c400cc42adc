"""Animate a fixed source image with a stream of driving keypoints, paying for the source once.

In telepresence the source image is fixed for the whole session. `Animator.set_source` computes
everything that depends only on it (source keypoints, encoder features, the downscaled source
and its Gaussian heatmaps for dense motion); each `render` then runs only the driving part:
keypoint normalisation, dense motion, feature warping and decoding.

`variant` (kp_motion.models.fast_render) runs the models in a faster form: the Animator then
holds prepared copies of them, gives them frames in the variant's memory layout, runs them under
its autocast, and (compiled variants) compiles the cached render at the first frame. Outputs are
float32 in every variant.

Also here: conversions between keypoint dicts and Keypoint60's 60 values, and drawing keypoints
on frames (for overlays). Frames are fitted to a profile's size with video_io.resize_frame.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from kp_motion import keypoints as keypoint_layout
from kp_motion.jacobian import GuardCounter
from kp_motion.models import fast_render
from kp_motion.models.generator import OcclusionAwareGenerator, SourceCache
from kp_motion.models.keypoint_detector import KeypointDetector
from kp_motion.models.model_config import ModelConfig
from kp_motion.models.normalization import (
    Keypoints,
    MotionMode,
    movement_scale,
    relative_keypoints,
)

log = logging.getLogger(__name__)


class Animator:
    """Renders a fixed source with driving keypoints (relative or absolute motion)."""

    def __init__(
        self,
        kp_detector: KeypointDetector,
        generator: OcclusionAwareGenerator,
        config: ModelConfig,
        mode: MotionMode | str = MotionMode.RELATIVE,
        adapt_movement_scale: bool = False,
        relative_jacobian: bool = True,
        variant: fast_render.RenderVariant | str = fast_render.PLAIN,
    ) -> None:
        if isinstance(variant, str):
            variant = fast_render.variant_named(variant)
        self.variant = variant
        self.base_generator = generator  # the model given (animators of one may batch together)
        if variant == fast_render.PLAIN:
            self.kp_detector, self.generator = kp_detector.eval(), generator.eval()
        else:
            self.kp_detector = fast_render.prepare(kp_detector, variant)
            self.generator = fast_render.prepare(generator, variant)
        self._compiled_render = None  # compiled variants: made at the first cached render
        self.config = config
        self.mode = MotionMode(mode)
        self.adapt_movement_scale = adapt_movement_scale
        self.relative_jacobian = relative_jacobian
        self.device = next(generator.parameters()).device
        slowdown = fast_render.bf16_slowdown(variant, self.device)
        if slowdown is not None:
            log.warning(slowdown)
        # Corrections made while normalising keypoints; the generator counts its own.
        self.normalization_guard = GuardCounter()
        self.source: torch.Tensor | None = None
        self.kp_source: Keypoints | None = None
        self.cache: SourceCache | None = None
        self.kp_driving_initial: Keypoints | None = None
        self._scale: torch.Tensor | float = 1.0

    def _frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Check (B, C, H, W) float frames of the profile's size; move them to the device."""
        expected = (self.config.num_channels, *self.config.image_size)
        if frames.dim() == 3:
            frames = frames.unsqueeze(0)
        if frames.dim() != 4 or tuple(frames.shape[1:]) != expected:
            raise ValueError(
                f"expected frames of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) for "
                f"profile {self.config.name}, got {tuple(frames.shape)} "
                "(fit them with video_io.resize_frame)"
            )
        if not frames.is_floating_point():
            raise ValueError(f"expected float frames in [0, 1], got {frames.dtype}")
        return fast_render.as_layout(frames.to(self.device), self.variant)

    def _autocast(self):
        return fast_render.autocast(self.variant, self.device)

    @torch.no_grad()
    def detect(self, frames: torch.Tensor) -> Keypoints:
        """Keypoints {"value", "jacobian"} of (B, C, H, W) float frames in [0, 1]."""
        with self._autocast():
            detected = self.kp_detector(self._frames(frames))
        return {"value": detected["value"].float(), "jacobian": detected["jacobian"].float()}

    @torch.no_grad()
    def set_source(self, source: torch.Tensor) -> None:
        """Detect and encode the source once; the next driving frame becomes the initial one."""
        self.source = self._frames(source)
        self.kp_source = self.detect(self.source)
        with self._autocast():
            self.cache = self.generator.encode_source(self.source, self.kp_source)
        self.reset_driving()

    def reset_driving(self) -> None:
        """Forget the initial driving frame (e.g. a new driving stream starts)."""
        self.kp_driving_initial = None
        self._scale = 1.0

    def set_driving_reference(self, kp_driving_initial: Keypoints) -> None:
        """Use these keypoints as the initial driving frame of relative motion."""
        if self.kp_source is None:
            raise ValueError("set_source must be called before the driving reference is set")
        self.kp_driving_initial = _on_device(kp_driving_initial, self.device)
        self._scale = (
            movement_scale(self.kp_source["value"], self.kp_driving_initial["value"])
            if self.adapt_movement_scale
            else 1.0
        )

    @torch.no_grad()
    def normalized(self, kp_driving: Keypoints) -> Keypoints:
        """The keypoints the generator is driven with (absolute, or relative to the first)."""
        if self.kp_source is None:
            raise ValueError("set_source must be called before rendering")
        kp_driving = _on_device(kp_driving, self.device)
        if self.mode is MotionMode.ABSOLUTE:
            return kp_driving
        if self.kp_driving_initial is None:
            # The first driving frame seen (the first of a batch) is the reference.
            self.set_driving_reference({name: kp[:1] for name, kp in kp_driving.items()})
        return relative_keypoints(
            self.kp_source,
            kp_driving,
            self.kp_driving_initial,
            self._scale,
            self.relative_jacobian,
            self.normalization_guard,
        )

    @torch.no_grad()
    def render_normalized(
        self, kp_norm: Keypoints, full_outputs: bool = False
    ) -> dict[str, torch.Tensor]:
        """Generator outputs for already normalised keypoints, from the source cache."""
        if self.cache is None:
            raise ValueError("set_source must be called before rendering")
        kp_norm = _on_device(kp_norm, self.device)
        with self._autocast():
            if self.variant.compile and not full_outputs:
                if self._compiled_render is None:
                    self._compiled_render = self._compile(kp_norm)
                outputs = self._compiled_render(self.cache, kp_norm)
            else:
                outputs = self.generator.render(self.cache, kp_norm, full_outputs)
        return {name: _float32(value) for name, value in outputs.items()}

    def _compile(self, kp_norm: Keypoints):
        try:
            return fast_render.compile_render(self.generator, self.cache, kp_norm)
        except Exception as error:  # inductor fails in many ways (no C++ compiler, ...)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise ValueError(
                f"render variant {self.variant.name!r}: torch.compile failed ({reason}); "
                "choose a variant that is not compiled"
            ) from None

    def render(self, kp_driving: Keypoints, full_outputs: bool = False) -> dict[str, torch.Tensor]:
        """Normalise the driving keypoints and render the source with them (cached path)."""
        return self.render_normalized(self.normalized(kp_driving), full_outputs)

    @torch.no_grad()
    def render_values(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One streamed frame: Keypoint60 values (60,) -> (uint8 RGB frame, (K, 2) positions).

        The positions are the normalised driving keypoints the frame was rendered with (what
        an overlay should show). Everything a stream consumer needs, in one call.
        """
        from kp_motion.data.video_io import from_tensor

        kp_norm = self.normalized(keypoints_from_values(values, self.device))
        frame = from_tensor(self.render_normalized(kp_norm)["prediction"])[0]
        return frame, kp_norm["value"][0].detach().cpu().numpy()

    @torch.no_grad()
    def render_uncached(
        self, kp_driving: Keypoints, full_outputs: bool = False
    ) -> dict[str, torch.Tensor]:
        """Same result as render(), recomputing the source part (for checks and benchmarks)."""
        kp_norm = self.normalized(kp_driving)
        if self.source is None or self.kp_source is None:
            raise ValueError("set_source must be called before rendering")
        with self._autocast():
            outputs = self.generator(self.source, self.kp_source, kp_norm, full_outputs)
        return {name: _float32(value) for name, value in outputs.items()}

    def guard_counts(self) -> dict[str, int]:
        """How often the Jacobian/position guard corrected keypoints so far."""
        generator_counts = self.generator.guard.as_dict()
        normalization_counts = self.normalization_guard.as_dict()
        return {key: generator_counts[key] + normalization_counts[key] for key in generator_counts}


def _float32(value):
    """Float tensors as float32 (bf16 variants compute some outputs in bfloat16)."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    return value


def _on_device(kp: Keypoints, device: torch.device) -> Keypoints:
    return {"value": kp["value"].to(device), "jacobian": kp["jacobian"].to(device)}


def keypoints_from_values(
    values: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
) -> Keypoints:
    """(60,) or (B, 60) Keypoint60 values -> {"value": (B,K,2), "jacobian": (B,K,2,2)}."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    positions, jacobians = keypoint_layout.unpack(array)
    return {
        "value": torch.from_numpy(np.ascontiguousarray(positions)).to(device),
        "jacobian": torch.from_numpy(np.ascontiguousarray(jacobians)).to(device),
    }


def keypoints_to_values(kp: Keypoints) -> np.ndarray:
    """{"value", "jacobian"} -> (B, 6K) float32 values in the Keypoint60 layout."""
    positions = kp["value"].detach().cpu().float().numpy()
    jacobians = kp["jacobian"].detach().cpu().float().numpy()
    return keypoint_layout.pack(positions, jacobians)


def keypoint_colours(num_kp: int) -> list[tuple[int, int, int]]:
    """Distinct RGB colours around the hue circle, one per keypoint."""
    import cv2

    hues = np.array([[[int(180 * k / num_kp), 255, 255] for k in range(num_kp)]], np.uint8)
    return [tuple(int(c) for c in rgb) for rgb in cv2.cvtColor(hues, cv2.COLOR_HSV2RGB)[0]]


def draw_keypoints(
    image: np.ndarray, positions: np.ndarray, radius: int | None = None
) -> np.ndarray:
    """A copy of the uint8 RGB image with (K, 2) keypoints in [-1, 1] drawn as filled dots."""
    import cv2

    from kp_motion.data.video_io import as_rgb_frame

    canvas = as_rgb_frame(image, where="draw_keypoints").copy()
    height, width = canvas.shape[:2]
    radius = radius if radius is not None else max(1, min(height, width) // 64)
    colours = keypoint_colours(len(positions))
    for (x, y), colour in zip(np.asarray(positions, dtype=np.float64), colours, strict=True):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        # [-1, 1] spans the border pixels' centres (see blocks.make_coordinate_grid).
        centre = (int(round((x + 1) / 2 * (width - 1))), int(round((y + 1) / 2 * (height - 1))))
        cv2.circle(canvas, centre, radius, colour, thickness=-1, lineType=cv2.LINE_AA)
    return canvas


# Several streams in one renderer ------------------------------------------------------------
# One machine serves several sessions (each with its own source image and driving stream) by
# rendering their frames in one generator call: the convolutions then work on a batch, which
# uses the cores (or the GPU) better than one small call per stream.


def batched_cache(caches: list[SourceCache], counts: list[int]) -> SourceCache:
    """One SourceCache whose rows are caches[i] repeated counts[i] times, in order."""
    from kp_motion.models.dense_motion import DenseMotionSource

    def rows(tensors: list[torch.Tensor]) -> torch.Tensor:
        # A cache of batch 1 serves all of its stream's frames (expand copies nothing here;
        # cat makes the one copy).
        return torch.cat(
            [t.expand(n, *t.shape[1:]) for t, n in zip(tensors, counts, strict=True)]
        )

    motion = [cache.dense_motion for cache in caches]
    return SourceCache(
        image=rows([cache.image for cache in caches]),
        features=rows([cache.features for cache in caches]),
        skips=[rows(list(level)) for level in zip(*(c.skips for c in caches), strict=True)],
        dense_motion=DenseMotionSource(
            image=rows([m.image for m in motion]),
            positions=rows([m.positions for m in motion]),
            jacobians=rows([m.jacobians for m in motion]),
            gaussians=rows([m.gaussians for m in motion]),
            grid=motion[0].grid,  # the identity grid depends on the size only
        ),
    )


class StreamBatch:
    """Several streams rendered in one call of the generator their animators share (animators
    built on the same generator, in the same variant, each with one source; a compiled variant
    renders eagerly here). One machine serving several patients keeps one StreamBatch: the
    sources' batched cache depends only on the sources and on how many frames each stream
    sends, so it is made once and made again only when one of those changes (set_source on an
    animator gives it a new cache).

    render(kp_driving) equals animators[i].render(kp_driving[i]) for every i, up to float
    rounding of batched convolutions."""

    def __init__(self, animators: list[Animator]) -> None:
        if not animators:
            raise ValueError("a stream batch needs at least one animator")
        first = animators[0]
        if any(
            animator.base_generator is not first.base_generator
            or animator.variant != first.variant
            for animator in animators
        ):
            raise ValueError("stream batch: the animators must share one generator and variant")
        self.animators = list(animators)
        # (the animators' caches it was made from, frames per stream, the batched cache)
        self._batched: tuple[tuple[SourceCache, ...], tuple[int, ...], SourceCache] | None = None

    def _source_cache(self, counts: tuple[int, ...]) -> SourceCache:
        caches = tuple(animator.cache for animator in self.animators)
        if any(cache is None for cache in caches):
            raise ValueError("set_source must be called on every animator before rendering")
        if any(cache.image.shape[0] != 1 for cache in caches):
            raise ValueError("stream batch: each animator must hold one source image")
        kept = self._batched
        if (
            kept is None
            or kept[1] != counts
            or any(cache is not made_from for cache, made_from in zip(caches, kept[0], strict=True))
        ):
            # Holding the caches themselves (not their ids) keeps a new one from passing for
            # an old one whose memory it reuses.
            self._batched = kept = (caches, counts, batched_cache(list(caches), list(counts)))
        return kept[2]

    @torch.no_grad()
    def render(
        self, kp_driving: list[Keypoints], full_outputs: bool = False
    ) -> list[dict[str, torch.Tensor]]:
        """Each stream's outputs for its driving keypoints (any batch of frames per stream),
        with its own source and motion settings."""
        if len(self.animators) != len(kp_driving):
            raise ValueError(
                f"a stream batch needs one keypoint batch per animator, got "
                f"{len(self.animators)} animators and {len(kp_driving)} keypoint batches"
            )
        normalized = [
            animator.normalized(kp) for animator, kp in zip(self.animators, kp_driving, strict=True)
        ]
        counts = tuple(int(kp["value"].shape[0]) for kp in normalized)
        cache = self._source_cache(counts)
        keypoints = {n: torch.cat([kp[n] for kp in normalized]) for n in ("value", "jacobian")}
        # The first animator's prepared copy renders every stream: the copies of one generator
        # in one variant hold the same weights (its guard counts the corrections of the batch).
        first = self.animators[0]
        with first._autocast():
            outputs = first.generator.render(cache, keypoints, full_outputs)
        outputs = {name: _float32(value) for name, value in outputs.items()}
        per_stream = {name: value.split(counts) for name, value in outputs.items()}
        return [{name: parts[i] for name, parts in per_stream.items()} for i in range(len(counts))]


def render_streams(
    animators: list[Animator], kp_driving: list[Keypoints], full_outputs: bool = False
) -> list[dict[str, torch.Tensor]]:
    """One call of StreamBatch(animators).render(kp_driving): for a single batched render.
    A stream server keeps a StreamBatch, which keeps the sources' batched cache."""
    return StreamBatch(animators).render(kp_driving, full_outputs)
