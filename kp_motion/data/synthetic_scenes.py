"""Procedural scenes for the synthetic motion dataset: textures, jointed figures, arms, blobs.

A scene is a static textured background plus layers drawn in depth order. Jointed objects
(quadrupeds, bipeds, robot arms) are trees of bones; each bone is a textured ellipse or rounded
rectangle whose texture is defined in the bone's own frame, so the texture moves with the part
(a keypoint detector can track it). Blobs deform non-rigidly: their texture is mapped through
the same radial deformation as their outline.

Geometry is in normalised image units (x right, y down, the frame spans [0, 1]), so one scene
description renders at any resolution. Frames are drawn on a supersampled canvas and shrunk
with area averaging, which anti-aliases every edge for the price of one resize.

Design notes (kinds, motion models, why) are in docs/synthetic-data.md.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.interpolate import PchipInterpolator

TEXTURE_SIZE = 64
TEXTURE_KINDS = ("solid", "stripes", "checker", "noise", "dots", "gradient")
KINDS = ("quadruped", "biped", "arm", "blob")
# Cross-sections of parts: exponent of the superellipse |u|^p + |v|^p = 1 (2 = ellipse,
# larger = boxier, for robot links).
ELLIPSE = 2.0
ROUNDED_BOX = 5.0


# --------------------------------------------------------------------------------------------
# Colours and textures
# --------------------------------------------------------------------------------------------


def hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """HSV in [0, 1] (hue wraps) -> float RGB in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def random_colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    hue = rng.random() if hue is None else hue + rng.normal(0.0, 0.05)
    return hsv_colour(hue, rng.uniform(0.3, 0.95), rng.uniform(0.35, 0.95))


def contrasting_colour(rng: np.random.Generator, colour: np.ndarray, strength: float) -> np.ndarray:
    """A second colour for a pattern: shifted hue and brightness, `strength` in [0, 1]."""
    hue, saturation, value = colorsys.rgb_to_hsv(*colour)
    hue += rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.5) * strength
    value = np.clip(value + rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.5) * strength, 0.1, 1)
    return hsv_colour(hue, np.clip(saturation + rng.normal(0, 0.15), 0.05, 1), value)


def _pattern_weight(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """Per-pixel mix weight in [0, 1] between a texture's two colours."""
    ys, xs = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    if kind == "solid":
        return np.zeros((size, size), np.float32)
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / rng.uniform(0.12, 0.35)
        # Clipped sine: crisp stripes whose edges are still a few pixels soft.
        return np.clip(np.sin(2 * np.pi * phase + rng.uniform(0, 2 * np.pi)) * 3, -1, 1) * 0.5 + 0.5
    if kind == "checker":
        cells = rng.integers(2, 6)
        return ((np.floor(xs * cells) + np.floor(ys * cells)) % 2).astype(np.float32)
    if kind == "noise":
        grid = rng.random((rng.integers(3, 8),) * 2).astype(np.float32)
        smooth = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        return np.clip((smooth - smooth.min()) / max(np.ptp(smooth), 1e-6), 0, 1)
    if kind == "dots":
        weight = np.zeros((size, size), np.float32)
        for _ in range(rng.integers(3, 9)):
            centre_x, centre_y = rng.uniform(0, size, 2).astype(int)
            radius = int(rng.uniform(0.06, 0.16) * size)
            cv2.circle(weight, (int(centre_x), int(centre_y)), radius, 1.0, -1, cv2.LINE_AA)
        return weight
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xs * np.cos(angle) + ys * np.sin(angle)
        return (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    raise ValueError(f"unknown texture kind {kind!r} (expected one of {', '.join(TEXTURE_KINDS)})")


def make_texture(
    rng: np.random.Generator,
    kind: str,
    colour_a: np.ndarray,
    colour_b: np.ndarray,
    size: int = TEXTURE_SIZE,
    shade: float = 0.0,
    grain: float = 0.03,
) -> np.ndarray:
    """uint8 (size, size, 3) texture mixing two colours by a pattern.

    `shade` darkens towards the top and bottom rows (the sides of a limb, whose local v axis
    runs along rows) for a rounded look; `grain` adds fine noise so flat areas still carry
    trackable detail.
    """
    weight = _pattern_weight(rng, kind, size)[..., None]
    image = colour_a[None, None] * (1 - weight) + colour_b[None, None] * weight
    if shade:
        rows = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        image = image * (1 - shade * rows**2)[:, None, None]
    if grain:
        image = image + rng.normal(0, grain, image.shape).astype(np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def random_texture(
    rng: np.random.Generator,
    colour: np.ndarray,
    size: int = TEXTURE_SIZE,
    shade: float = 0.0,
    kinds: tuple[str, ...] = TEXTURE_KINDS,
) -> tuple[np.ndarray, str]:
    kind = str(rng.choice(kinds))
    second = contrasting_colour(rng, colour, strength=rng.uniform(0.4, 1.0))
    return make_texture(rng, kind, colour, second, size, shade), kind


# --------------------------------------------------------------------------------------------
# Drawing primitives
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def unit_superellipse(exponent: float, points: int = 40) -> np.ndarray:
    """Outline of |u|^p + |v|^p = 1 as (points, 2) in the part's local [-1, 1]^2 frame."""
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    power = 2.0 / exponent
    outline = np.stack(
        [np.sign(cos) * np.abs(cos) ** power, np.sign(sin) * np.abs(sin) ** power], axis=1
    )
    outline.flags.writeable = False  # shared by every caller through the cache
    return outline


def to_pixels(affine: np.ndarray, canvas_size: int) -> np.ndarray:
    """Normalised local->image affine (..., 2, 3) -> local->canvas pixels (pixel centres at i)."""
    scaled = affine * canvas_size
    scaled[..., 2] -= 0.5
    return scaled


def draw_textured_part(
    canvas: np.ndarray,
    texture: np.ndarray,
    affine: np.ndarray,
    outline: np.ndarray,
    outline_colour: tuple[int, int, int],
    outline_px: int,
) -> None:
    """Draw the shape `outline` (local coords) filled with `texture`, mapped by pixel `affine`.

    The texture square spans the local frame [-1, 1]^2; only the part's bounding box is warped.
    """
    points = outline @ affine[:, :2].T + affine[:, 2]
    height, width = canvas.shape[:2]
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + 2, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    tex_size = texture.shape[0]
    # texture pixel centre (i + 0.5) / size * 2 - 1 = local coordinate, then local -> ROI pixels.
    linear = affine[:, :2] * (2.0 / tex_size)
    offset = affine[:, :2] @ np.full(2, 1.0 / tex_size - 1.0) + affine[:, 2] - (x0, y0)
    warp = np.hstack([linear, offset[:, None]]).astype(np.float64)
    roi = canvas[y0:y1, x0:x1]
    warped = cv2.warpAffine(
        texture, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    polygon = np.round((points - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [polygon], 1, cv2.LINE_8, shift=4)
    np.copyto(roi, warped, where=mask[..., None].astype(bool))
    if outline_px > 0:
        cv2.polylines(roi, [polygon], True, outline_colour, outline_px, cv2.LINE_8, shift=4)


@dataclass
class PartLayer:
    """A rigid textured part: one local->canvas affine per frame."""

    z: float
    texture: np.ndarray
    affines: np.ndarray  # (T, 2, 3) normalised units
    exponent: float = ELLIPSE
    outline_colour: tuple[int, int, int] = (0, 0, 0)

    @property
    def poses(self) -> np.ndarray:
        """(T, 2, 3) local->image affine per frame (normalised units): its last column is the
        part's centre, its 2x2 part how the part is turned and sized."""
        return self.affines

    def draw(self, canvas: np.ndarray, frame: int, outline_px: int) -> None:
        affine = to_pixels(self.affines[frame], canvas.shape[0])
        draw_textured_part(
            canvas,
            self.texture,
            affine,
            unit_superellipse(self.exponent),
            self.outline_colour,
            outline_px,
        )


@dataclass
class BlobLayer:
    """A deformable blob: a star-shaped outline r(a, t) = 1 + sum_k c_k(t) cos(k a + phi_k).

    Each canvas pixel is mapped to polar coordinates in the blob's rotating, squashed frame and
    its radius divided by the outline radius at that angle: the texture stretches with the
    outline instead of sliding under it.
    """

    z: float
    texture: np.ndarray
    centres: np.ndarray  # (T, 2)
    radius: float
    rotations: np.ndarray  # (T,)
    stretch: np.ndarray  # (T,) x scale; y is divided by it, keeping the area
    coefficients: np.ndarray  # (T, K) for harmonics 2..K+1
    phases: np.ndarray  # (K,)
    outline_colour: tuple[int, int, int] = (0, 0, 0)

    @property
    def poses(self) -> np.ndarray:
        """(T, 2, 3) local->image affine per frame (normalised units) of the blob's rotating,
        squashed frame, as draw() maps it (the outline's wobble left out)."""
        cos, sin = np.cos(self.rotations), np.sin(self.rotations)
        along, across = self.stretch * self.radius, self.radius / self.stretch
        linear = np.stack([np.stack([cos * along, -sin * across], -1),
                           np.stack([sin * along, cos * across], -1)], -2)  # fmt: skip
        return np.concatenate([linear, self.centres[:, :, None]], axis=-1)

    def extent(self, frame: int) -> float:
        """Radius of a circle that holds the blob at `frame` (normalised units)."""
        spread = 1.0 + np.abs(self.coefficients[frame]).sum()
        stretch = self.stretch[frame]
        return self.radius * spread * max(stretch, 1.0 / stretch)

    def draw(self, canvas: np.ndarray, frame: int, outline_px: int) -> None:
        size = canvas.shape[0]
        centre = self.centres[frame] * size - 0.5
        reach = self.extent(frame) * size + 2
        x0, y0 = np.maximum(np.floor(centre - reach).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(centre + reach).astype(int) + 1, size)
        if x1 <= x0 or y1 <= y0:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        cos, sin = np.cos(self.rotations[frame]), np.sin(self.rotations[frame])
        dx, dy = xs - centre[0], ys - centre[1]
        along = (cos * dx + sin * dy) / (self.stretch[frame] * self.radius * size)
        across = (-sin * dx + cos * dy) * self.stretch[frame] / (self.radius * size)
        rho = np.maximum(np.hypot(along, across), 1e-6)
        # cos(k a + phi) = Re(e^{ika} e^{i phi}): powers of one unit complex number are much
        # cheaper than an arctan2 and a cosine per harmonic.
        direction = (along + 1j * across) / rho
        power = direction
        boundary = np.ones_like(rho)
        for coefficient, phase in zip(self.coefficients[frame], self.phases, strict=True):
            power = power * direction  # harmonics start at 2
            boundary += coefficient * (power * np.exp(1j * phase)).real
        normalised = rho / boundary
        inside = normalised < 1.0
        if not inside.any():
            return
        tex_size = self.texture.shape[0]
        scale = normalised / rho  # radial squeeze onto the unit disc
        map_x = ((along * scale + 1) * 0.5 * tex_size - 0.5).astype(np.float32)
        map_y = ((across * scale + 1) * 0.5 * tex_size - 0.5).astype(np.float32)
        warped = cv2.remap(self.texture, map_x, map_y, cv2.INTER_LINEAR, cv2.BORDER_REFLECT)
        roi = canvas[y0:y1, x0:x1]
        np.copyto(roi, warped, where=inside[..., None])
        if outline_px > 0:
            rim = inside & (normalised > 1.0 - outline_px / (self.radius * size))
            roi[rim] = self.outline_colour


@dataclass
class Scene:
    background: np.ndarray  # (S, S, 3) uint8 on the supersampled canvas
    layers: list = field(default_factory=list)
    outline_px: int = 1

    def part_poses(self) -> np.ndarray:
        """(T, P, 2, 3) local->image affine of every part (rigid or blob) per frame, normalised
        units [0, 1]: the ground truth a keypoint that follows a part should move with (the
        centre, [..., 2]) and its Jacobian turn with (the 2x2 part)."""
        return np.stack([layer.poses for layer in self.layers], axis=1)

    def render(self, frame: int, size: int) -> np.ndarray:
        canvas = self.background.copy()
        for layer in sorted(self.layers, key=lambda item: item.z):
            layer.draw(canvas, frame, self.outline_px)
        if canvas.shape[0] == size:
            return canvas
        return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------
# Motion models
# --------------------------------------------------------------------------------------------


def periodic(
    rng: np.random.Generator,
    seconds: np.ndarray,
    base: float,
    amplitude: float,
    frequency: float,
    phase: float,
) -> np.ndarray:
    """base + amplitude * (fundamental + a random second harmonic): smooth and periodic."""
    harmonic = rng.uniform(0.0, 0.35)
    harmonic_phase = rng.uniform(0, 2 * np.pi)
    angle = 2 * np.pi * frequency * seconds + phase
    return base + amplitude * (np.sin(angle) + harmonic * np.sin(2 * angle + harmonic_phase))


def _reflect_into(value: float, low: float, high: float) -> float:
    """Fold a value back into [low, high] like a ball bouncing between two walls."""
    span = high - low
    folded = (value - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


def smooth_random_walk(
    rng: np.random.Generator,
    frames: int,
    low: float,
    high: float,
    step: float,
    spacing: tuple[int, int] = (6, 20),
) -> np.ndarray:
    """Irregular but smooth trajectory in [low, high].

    Waypoints follow a random walk (reflected at the limits) at random intervals and are
    joined by a monotone cubic, which never overshoots a waypoint and so stays in the limits.
    """
    times, values = [0], [rng.uniform(low, high)]
    while times[-1] < frames:
        times.append(times[-1] + int(rng.integers(spacing[0], spacing[1] + 1)))
        values.append(_reflect_into(values[-1] + rng.normal(0.0, step), low, high))
    return PchipInterpolator(times, values)(np.arange(frames))


# --------------------------------------------------------------------------------------------
# Jointed figures
# --------------------------------------------------------------------------------------------


@dataclass
class Bone:
    """One segment of a kinematic tree (lengths in normalised image units).

    The joint sits on the parent at `attach` (0 = parent's joint, 1 = its tip) and `offset`
    (across the parent, in half-widths); `angle` (T,) is relative to the parent's direction
    (absolute for the root).
    """

    parent: int
    attach: float
    offset: float
    length: float
    width: float
    angle: np.ndarray
    z: float
    texture: np.ndarray
    exponent: float = ELLIPSE
    outline_colour: tuple[int, int, int] = (0, 0, 0)


def bone_affines(bones: list[Bone], root_joint: np.ndarray) -> list[np.ndarray]:
    """Forward kinematics for all frames at once -> per bone (T, 2, 3) local->image affines."""
    absolute: list[np.ndarray] = []
    joints: list[np.ndarray] = []
    affines = []
    for bone in bones:
        if bone.parent < 0:
            direction, joint = bone.angle, root_joint
        else:
            parent = bones[bone.parent]
            parent_dir = absolute[bone.parent]
            along, across = bone.attach * parent.length, bone.offset * parent.width / 2
            cos, sin = np.cos(parent_dir), np.sin(parent_dir)
            joint = joints[bone.parent] + np.stack(
                [cos * along - sin * across, sin * along + cos * across], -1
            )
            direction = parent_dir + bone.angle
        absolute.append(direction)
        joints.append(joint)
        cos, sin = np.cos(direction), np.sin(direction)
        # The shape reaches a little past both joints so neighbouring parts overlap smoothly.
        half_along = bone.length / 2 + bone.width / 4
        half_across = bone.width / 2
        centre = joint + np.stack([cos, sin], -1) * (bone.length / 2)
        affine = np.empty((len(direction), 2, 3))
        affine[:, 0] = np.stack([cos * half_along, -sin * half_across, centre[:, 0]], -1)
        affine[:, 1] = np.stack([sin * half_along, cos * half_across, centre[:, 1]], -1)
        affines.append(affine)
    return affines


def mirror_affines(affines: np.ndarray) -> np.ndarray:
    """Reflect x -> 1 - x (the figure faces the other way)."""
    mirrored = affines.copy()
    mirrored[:, 0, :2] *= -1
    mirrored[:, 0, 2] = 1.0 - mirrored[:, 0, 2]
    return mirrored


def bones_to_layers(bones: list[Bone], root_joint: np.ndarray, mirror: bool) -> list[PartLayer]:
    layers = []
    for bone, affines in zip(bones, bone_affines(bones, root_joint), strict=True):
        if mirror:
            affines = mirror_affines(affines)
        layers.append(PartLayer(bone.z, bone.texture, affines, bone.exponent, bone.outline_colour))
    return layers


def _darker(colour: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(colour * factor, 0, 1)


def _outline_of(colour: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.clip(colour * 0.45 * 255, 0, 255))


def _constant(value: float, frames: int) -> np.ndarray:
    return np.full(frames, value)


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------


def make_background(
    rng: np.random.Generator, canvas: int, floor: float | None
) -> tuple[np.ndarray, dict]:
    """Static textured background with a low-contrast pattern, optionally a floor band."""
    colour = hsv_colour(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.45, 0.98))
    kind = str(rng.choice(("noise", "stripes", "checker", "gradient", "dots", "solid")))
    second = contrasting_colour(rng, colour, strength=rng.uniform(0.15, 0.45))
    image = make_texture(rng, kind, colour, second, size=canvas, grain=0.02)
    info: dict = {"background": kind}
    if floor is not None:
        floor_colour = hsv_colour(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.8))
        floor_kind = str(rng.choice(("noise", "stripes", "checker", "solid")))
        floor_texture = make_texture(
            rng, floor_kind, floor_colour, contrasting_colour(rng, floor_colour, 0.3), canvas
        )
        top = int(round(floor * canvas))
        image[top:] = floor_texture[top:]
        info["floor"] = floor_kind
    return image, info


def add_clutter(rng: np.random.Generator, background: np.ndarray, count: int) -> None:
    """Static objects on the background (BAIR's table has toys; scenes are rarely empty)."""
    size = background.shape[0]
    for _ in range(count):
        centre = rng.uniform(0.1, 0.9, 2)
        half = rng.uniform(0.03, 0.09, 2)
        angle = rng.uniform(0, np.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        affine = np.array(
            [[cos * half[0], -sin * half[1], centre[0]], [sin * half[0], cos * half[1], centre[1]]]
        )
        colour = random_colour(rng)
        texture, _ = random_texture(rng, colour, shade=0.3)
        exponent = float(rng.choice([ELLIPSE, ROUNDED_BOX]))
        draw_textured_part(
            background,
            texture,
            to_pixels(affine, size),
            unit_superellipse(exponent),
            _outline_of(colour),
            max(1, size // 128),
        )


# --------------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------------


# The builders below list bones as aligned positional tables, which the formatter would spread
# over ten lines each. Columns: Bone(parent, attach, offset, length, width, angle, z, texture,
# exponent, outline colour); a negative parent -k means "the bone k entries before me".
# fmt: off


def _phase(rng: np.random.Generator) -> float:
    return float(rng.uniform(0, 2 * np.pi))


def _plain_or_patterned(
    rng: np.random.Generator, colour: np.ndarray, patterned: float, shade: float
) -> np.ndarray:
    """Limbs are mostly plain (like fur or sleeves); sometimes they carry the body's pattern."""
    if rng.random() < patterned:
        return random_texture(rng, colour, shade=shade)[0]
    return make_texture(rng, "solid", colour, colour, shade=shade)


def _quadruped_legs(rng, seconds, scale, gait_hz, swing, limb_colour) -> list[Bone]:
    """Four two-segment legs under the torso (bone 0), a quarter gait cycle apart."""
    bones: list[Bone] = []
    thigh = rng.uniform(0.13, 0.16) * scale
    shin = rng.uniform(0.12, 0.15) * scale
    # Walk order: hind-near, fore-near, hind-far, fore-far. Far legs are darker and drawn behind.
    legs = (("hind", 0.15, 0.0, True), ("fore", 0.85, 0.25, True),
            ("hind", 0.15, 0.5, False), ("fore", 0.85, 0.75, False))
    for end, attach, cycle, near in legs:
        colour = _darker(limb_colour, 1.0 if near else 0.72)
        texture = _plain_or_patterned(rng, colour, patterned=0.3, shade=0.4)
        phase = 2 * np.pi * cycle
        knee = -1.0 if end == "hind" else 1.0  # hind and fore knees bend opposite ways
        upper = periodic(rng, seconds, np.pi / 2, swing, gait_hz, phase)
        lower = periodic(rng, seconds, knee * 0.35, 0.35, gait_hz, phase + knee * 1.2)
        depth = 1.0 if near else -1.0
        outline = _outline_of(colour)
        bones.append(Bone(0, attach, 0.55, thigh, 0.065 * scale, upper, depth, texture,
                          ELLIPSE, outline))
        bones.append(Bone(-1, 1.0, 0.0, shin, 0.048 * scale, lower, depth + 0.1, texture,
                          ELLIPSE, outline))
    return bones


def _quadruped_head_and_tail(rng, seconds, scale, gait_hz, body_texture, head_texture,
                             outline) -> list[Bone]:
    """Neck, head and ear at the torso's front (bone 0's tip), a two-piece tail at its back."""
    nod = periodic(rng, seconds, -0.8, rng.uniform(0.05, 0.2), gait_hz, _phase(rng))
    head_angle = periodic(rng, seconds, 0.9, rng.uniform(0.05, 0.2), gait_hz, _phase(rng))
    ear = periodic(rng, seconds, -1.3, 0.15, gait_hz, 0.0)
    wag_hz = gait_hz * float(rng.choice([1.0, 2.0]))
    tail_base = np.pi + rng.uniform(-0.6, 0.8)  # from drooping to raised
    tail = periodic(rng, seconds, tail_base, rng.uniform(0.2, 0.5), wag_hz, _phase(rng))
    curl = periodic(rng, seconds, 0.3, rng.uniform(0.2, 0.5), wag_hz, _phase(rng))
    return [
        Bone(0, 0.95, -0.35, 0.13 * scale, 0.08 * scale, nod, 0.5, body_texture, ELLIPSE,
             outline),
        Bone(-1, 1.0, 0.0, 0.14 * scale, 0.095 * scale, head_angle, 0.6, head_texture, ELLIPSE,
             outline),
        Bone(-1, 0.25, -0.7, 0.05 * scale, 0.03 * scale, ear, 0.7, head_texture, ELLIPSE,
             outline),
        Bone(0, 0.02, -0.3, 0.12 * scale, 0.035 * scale, tail, -0.5, body_texture, ELLIPSE,
             outline),
        Bone(-1, 1.0, 0.0, 0.09 * scale, 0.028 * scale, curl, -0.4, body_texture, ELLIPSE,
             outline),
    ]


def _resolve_parents(bones: list[Bone]) -> list[Bone]:
    """Builders write parent=-k for 'the bone k places before me'; make them absolute indices.

    Index 0 (the root) is written as 0 and stays; the root itself keeps parent -1.
    """
    for index, bone in enumerate(bones):
        if index > 0 and bone.parent < 0:
            bone.parent = index + bone.parent
    return bones


def build_quadruped(rng: np.random.Generator, frames: int, fps: float, canvas: int):
    """A four-legged animal walking (side view), Mgif-like: a periodic gait with leg phases."""
    seconds = np.arange(frames) / fps
    scale = rng.uniform(0.8, 1.05)
    gait_hz = rng.uniform(0.6, 1.6)
    swing = rng.uniform(0.35, 0.7)
    main = random_colour(rng)
    body_texture, body_kind = random_texture(rng, main, shade=0.45)
    head_colour = random_colour(rng, hue=colorsys.rgb_to_hsv(*main)[0])
    head_texture = _plain_or_patterned(rng, head_colour, patterned=0.5, shade=0.3)
    limb_colour = _darker(main, rng.uniform(0.7, 1.0)) if rng.random() < 0.6 else random_colour(rng)
    outline = _outline_of(main)
    torso_length, torso_width = 0.36 * scale, rng.uniform(0.14, 0.2) * scale
    pitch = periodic(rng, seconds, 0.0, 0.04, 2 * gait_hz, _phase(rng))
    bones = [Bone(-1, 0, 0, torso_length, torso_width, pitch, 0.0, body_texture, ELLIPSE,
                  outline)]
    bones += _quadruped_legs(rng, seconds, scale, gait_hz, swing, limb_colour)
    bones += _quadruped_head_and_tail(rng, seconds, scale, gait_hz, body_texture, head_texture,
                                      outline)
    _resolve_parents(bones)
    ground = 0.88
    leg_length = bones[1].length + bones[2].length
    drift = periodic(rng, seconds, 0.46, rng.uniform(0.0, 0.06), rng.uniform(0.05, 0.2),
                     _phase(rng))
    bob = periodic(rng, seconds, 0.0, 0.008 * scale, 2 * gait_hz, _phase(rng))
    # Feet reach the floor: the hips sit half a torso width below the torso's axis.
    axis_y = ground - leg_length * 0.93 - torso_width * 0.275 + bob
    root = np.stack([drift - torso_length / 2, axis_y], -1)
    mirror = bool(rng.random() < 0.5)
    background, info = make_background(rng, canvas, floor=ground - 0.03)
    scene = Scene(background, bones_to_layers(bones, root, mirror), max(1, canvas // 128))
    params = {"variant": "walk", "facing": "left" if mirror else "right", "gait_hz": gait_hz,
              "leg_swing_rad": swing, "scale": scale, "texture": body_kind, **info}
    return scene, params


BIPED_STYLES = {
    # style: (lead arm amplitude, other arm amplitude, leg step amplitude, body bounce)
    "wave": (0.9, 0.15, 0.05, 0.004),
    "dance": (0.7, 0.7, 0.3, 0.015),
    "march": (0.35, 0.35, 0.4, 0.015),
}


def _biped_arms(rng, seconds, scale, beat_hz, style, sleeve, hand, outlines) -> list[Bone]:
    """Upper arm + forearm on each shoulder of the torso (bone 0); angles are lifts from
    hanging down, mirrored by `side` so positive always means 'raised outwards'."""
    lead_amplitude, other_amplitude = BIPED_STYLES[style][:2]
    bones: list[Bone] = []
    for index, side in enumerate((1.0, -1.0)):
        lead = index == 0 or style == "dance"
        lift_base = 1.6 if (style == "wave" and lead) else rng.uniform(0.2, 0.6)
        phase = np.pi * index if style == "march" else _phase(rng)
        amplitude = lead_amplitude if lead else other_amplitude
        lift = periodic(rng, seconds, lift_base, amplitude, beat_hz, phase)
        elbow = periodic(rng, seconds, 0.6, rng.uniform(0.2, 0.6), beat_hz, phase + 1.0)
        bones.append(Bone(0, 0.9, 0.85 * side, 0.13 * scale, 0.055 * scale,
                          np.pi - side * lift, 1.0, sleeve, ELLIPSE, outlines[0]))
        bones.append(Bone(-1, 1.0, 0.0, 0.12 * scale, 0.045 * scale, -side * elbow, 1.1, hand,
                          ELLIPSE, outlines[1]))
    return bones


def _biped_legs(rng, seconds, scale, beat_hz, style, trousers, shoe, outline) -> list[Bone]:
    """Thigh, shin and foot on each hip (bone 0's joint); legs alternate half a beat apart."""
    step = BIPED_STYLES[style][2]
    frames = len(seconds)
    bones: list[Bone] = []
    for index, side in enumerate((1.0, -1.0)):
        phase = np.pi * index
        hip = periodic(rng, seconds, 0.12, step, beat_hz, phase)
        knee = np.abs(periodic(rng, seconds, 0.15, step * 1.2, beat_hz, phase + 0.8))
        bones.append(Bone(0, 0.0, 0.5 * side, 0.16 * scale, 0.07 * scale, np.pi - side * hip,
                          -1.0, trousers, ROUNDED_BOX, outline))
        bones.append(Bone(-1, 1.0, 0.0, 0.15 * scale, 0.055 * scale, side * knee, -0.9,
                          trousers, ELLIPSE, outline))
        bones.append(Bone(-1, 1.0, 0.0, 0.05 * scale, 0.04 * scale,
                          _constant(-side * np.pi / 2, frames), -0.8, shoe, ELLIPSE, outline))
    return bones


def build_biped(rng: np.random.Generator, frames: int, fps: float, canvas: int):
    """A front-facing figure that waves, dances or marches: sums of sinusoids per joint."""
    seconds = np.arange(frames) / fps
    style = str(rng.choice(tuple(BIPED_STYLES)))
    scale = rng.uniform(0.85, 1.1)
    beat_hz = rng.uniform(0.5, 1.4)
    shirt = random_colour(rng)
    shirt_texture, shirt_kind = random_texture(rng, shirt, shade=0.35)
    trousers = random_colour(rng)
    trousers_texture, _ = random_texture(rng, trousers, shade=0.4)
    skin = hsv_colour(rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.6), rng.uniform(0.45, 0.95))
    skin_texture = make_texture(rng, "noise", skin, _darker(skin, 0.85), shade=0.35)
    sleeve_texture = shirt_texture if rng.random() < 0.6 else skin_texture
    shoe_texture = skin_texture if rng.random() < 0.3 else trousers_texture
    sway_amplitude = 0.12 if style == "dance" else 0.04
    sway = periodic(rng, seconds, -np.pi / 2, sway_amplitude, beat_hz, 0.0)
    nod = periodic(rng, seconds, 0.0, rng.uniform(0.05, 0.25), beat_hz, _phase(rng))
    bones = [
        Bone(-1, 0, 0, 0.27 * scale, rng.uniform(0.15, 0.2) * scale, sway, 0.0, shirt_texture,
             ELLIPSE, _outline_of(shirt)),
        Bone(0, 1.0, 0.0, 0.12 * scale, 0.11 * scale, nod, 0.5, skin_texture, ELLIPSE,
             _outline_of(skin)),
    ]
    outlines = (_outline_of(shirt), _outline_of(skin))
    bones += _biped_arms(rng, seconds, scale, beat_hz, style, sleeve_texture, skin_texture,
                         outlines)
    bones += _biped_legs(rng, seconds, scale, beat_hz, style, trousers_texture, shoe_texture,
                         _outline_of(trousers))
    _resolve_parents(bones)
    bob = periodic(rng, seconds, 0.0, BIPED_STYLES[style][3] * scale, 2 * beat_hz, 0.0)
    drift = periodic(rng, seconds, 0.5, rng.uniform(0, 0.06), rng.uniform(0.05, 0.2), 0.0)
    root = np.stack([drift, 0.56 + bob], -1)  # the hips
    background, info = make_background(rng, canvas, floor=0.88 if rng.random() < 0.5 else None)
    scene = Scene(background, bones_to_layers(bones, root, mirror=False), max(1, canvas // 128))
    params = {"variant": style, "beat_hz": beat_hz, "scale": scale, "texture": shirt_kind, **info}
    return scene, params


ARM_SIDES = {
    # where the arm enters the frame: (base position as a function of `along`, inward angle)
    "bottom": (lambda along: (along, 1.03), -np.pi / 2),
    "top": (lambda along: (along, -0.03), np.pi / 2),
    "left": (lambda along: (-0.03, along), 0.0),
    "right": (lambda along: (1.03, along), np.pi),
}


def build_arm(rng: np.random.Generator, frames: int, fps: float, canvas: int):
    """A robot arm entering from one border, BAIR-like: joints track smoothed random walks."""
    side = str(rng.choice(tuple(ARM_SIDES)))
    base_of, inward = ARM_SIDES[side]
    base = base_of(rng.uniform(0.3, 0.7))
    scale = rng.uniform(0.85, 1.1)
    metal = hsv_colour(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.45, 0.9))
    link_kind = str(rng.choice(("gradient", "stripes", "solid", "noise")))
    link = make_texture(rng, link_kind, metal, _darker(metal, 0.7), shade=0.5)
    joint, _ = random_texture(rng, random_colour(rng), shade=0.4)
    outline = _outline_of(metal)
    # Irregular motion: each joint wanders to a new random target every 0.25-0.8 s.
    speed = rng.uniform(0.6, 1.4)
    spacing = (max(2, round(0.25 * fps)), max(3, round(0.8 * fps)))
    shoulder = inward + smooth_random_walk(rng, frames, -0.9, 0.9, 0.5 * speed, spacing)
    elbow = smooth_random_walk(rng, frames, -2.0, 2.0, 0.8 * speed, spacing)
    wrist = smooth_random_walk(rng, frames, -1.4, 1.4, 0.7 * speed, spacing)
    grip = smooth_random_walk(rng, frames, 0.15, 0.7, 0.3, (spacing[0] + 2, 2 * spacing[1]))
    fixed = _constant(0.0, frames)
    s = scale
    bones = [
        Bone(-1, 0, 0, 0.4 * s, 0.14 * s, shoulder, 1.0, link, ROUNDED_BOX, outline),
        Bone(0, 1.0, 0.0, 0.33 * s, 0.11 * s, elbow, 1.2, link, ROUNDED_BOX, outline),
        Bone(1, 0.0, 0.0, 0.13 * s, 0.15 * s, fixed, 1.3, joint, ELLIPSE, outline),  # elbow cap
        Bone(1, 1.0, 0.0, 0.12 * s, 0.1 * s, wrist, 1.4, joint, ROUNDED_BOX, outline),
        Bone(3, 1.0, 0.6, 0.09 * s, 0.035 * s, -grip, 1.5, link, ROUNDED_BOX, outline),
        Bone(3, 1.0, -0.6, 0.09 * s, 0.035 * s, grip, 1.5, link, ROUNDED_BOX, outline),
    ]
    root = np.tile(np.asarray(base, dtype=np.float64), (frames, 1))
    background, info = make_background(rng, canvas, floor=None)
    add_clutter(rng, background, int(rng.integers(2, 7)))
    layers = bones_to_layers(bones, root, mirror=False)
    # A fixed pedestal hides where the arm leaves the frame.
    pedestal = np.array([[0.12 * s, 0.0, base[0]], [0.0, 0.12 * s, base[1]]])
    layers.append(PartLayer(2.0, joint, np.tile(pedestal, (frames, 1, 1)), ELLIPSE, outline))
    scene = Scene(background, layers, max(1, canvas // 128))
    params = {"variant": f"from_{side}", "speed": speed, "scale": scale, "texture": link_kind,
              **info}
    return scene, params


def _blob_layer(rng: np.random.Generator, seconds: np.ndarray, depth: float, radius: float):
    colour = random_colour(rng)
    # A plain blob would give a keypoint detector nothing to follow inside it.
    patterned = tuple(kind for kind in TEXTURE_KINDS if kind != "solid")
    texture, kind = random_texture(rng, colour, kinds=patterned)
    harmonics = int(rng.integers(2, 5))
    # Higher harmonics get smaller amplitudes so the outline stays star-shaped and smooth.
    coefficients = np.stack([
        periodic(rng, seconds, 0.0, rng.uniform(0.04, 0.22) / np.sqrt(k),
                 rng.uniform(0.2, 0.9), _phase(rng))
        for k in range(1, harmonics + 1)
    ], -1)
    path = np.stack([
        periodic(rng, seconds, rng.uniform(0.35, 0.65), rng.uniform(0.03, 0.15),
                 rng.uniform(0.1, 0.5), _phase(rng))
        for _ in range(2)
    ], -1)
    spin = rng.uniform(-1.2, 1.2)
    wobble = periodic(rng, seconds, 0.0, 0.3, rng.uniform(0.2, 0.8), 0.0)
    rotations = _phase(rng) + spin * seconds + wobble
    stretch = np.exp(periodic(rng, seconds, 0.0, rng.uniform(0.0, 0.25), rng.uniform(0.3, 1.0),
                              0.0))
    layer = BlobLayer(depth, texture, path, radius, rotations, stretch, coefficients,
                      rng.uniform(0, 2 * np.pi, harmonics), _outline_of(colour))
    return layer, {"texture": kind, "harmonics": harmonics, "spin_rad_s": spin}


def build_blob(rng: np.random.Generator, frames: int, fps: float, canvas: int):
    """One or two deformable blobs drifting, spinning and squashing (non-rigid motion)."""
    seconds = np.arange(frames) / fps
    count = 1 if rng.random() < 0.6 else 2
    background, info = make_background(rng, canvas, floor=None)
    layers, blobs = [], []
    for index in range(count):
        radius = rng.uniform(0.17, 0.26) if index == 0 else rng.uniform(0.08, 0.14)
        layer, blob_info = _blob_layer(rng, seconds, float(index), radius)
        layers.append(layer)
        blobs.append(blob_info)
    scene = Scene(background, layers, max(1, canvas // 128))
    return scene, {"variant": f"{count}_blob", "blobs": blobs, **info}


# fmt: on


BUILDERS = {
    "quadruped": build_quadruped,
    "biped": build_biped,
    "arm": build_arm,
    "blob": build_blob,
}


def build_scene(kind: str, rng: np.random.Generator, frames: int, fps: float, canvas: int):
    """-> (Scene, parameters for the manifest)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown synthetic kind {kind!r} (expected one of {', '.join(KINDS)})")
    return BUILDERS[kind](rng, frames, fps, canvas)
