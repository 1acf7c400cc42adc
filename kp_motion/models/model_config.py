"""A model profile: every size and setting of a FOMM keypoint detector + generator pair.

The values live in config/profiles/<name>.yaml (one source of truth); these dataclasses give
the fields and their types and check that the sizes fit together. No field has a default, so
a profile file always spells out every setting it uses.

Field names follow the FOMM paper's reference configuration (model_params of its YAML files),
so that a reference profile reads the same here as there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from kp_motion import config as config_io
from kp_motion import paths

PROFILE_FOLDER = "profiles"


@dataclass(frozen=True)
class KeypointDetectorParams:
    temperature: float  # softmax temperature of the keypoint heatmaps
    block_expansion: int  # channels of the first hourglass level
    max_features: int  # cap on the hourglass channels
    num_blocks: int  # hourglass depth (number of down/up blocks)
    scale_factor: float  # the detector sees the frame downscaled by this factor
    single_jacobian_map: bool  # one Jacobian map shared by all keypoints (reference mgif)
    pad: int  # padding of the 7x7 keypoint/Jacobian heads (0 in the reference profiles)


@dataclass(frozen=True)
class DenseMotionParams:
    block_expansion: int
    max_features: int
    num_blocks: int
    scale_factor: float  # dense motion is estimated at this fraction of the frame size
    kp_variance: float  # variance of the Gaussian keypoint heatmaps, in [-1, 1] units


@dataclass(frozen=True)
class GeneratorParams:
    block_expansion: int
    max_features: int
    num_down_blocks: int
    num_bottleneck_blocks: int
    estimate_occlusion_map: bool
    # Add the source's encoder features of every level, warped by the flow and masked by the
    # occlusion map, to the decoder's features of the same size (multi-scale warped skips, as
    # in later FOMM successors such as TPSMM). No new weights; false is the reference FOMM.
    warped_skips: bool
    # Not in FOMM: the output is the source image warped by the flow at full resolution where
    # the occlusion map says it is visible, and the decoder's image only where it is not:
    # occlusion * warped source + (1 - occlusion) * decoded. No new weights. The decoder then
    # only inpaints, instead of redrawing (and blurring) every pixel it could have copied.
    # Default false, so configs saved before the field existed load unchanged.
    output_blend: bool = False


@dataclass(frozen=True)
class ModelConfig:
    name: str
    image_size: tuple[int, int]  # (height, width) of the frames the models take
    num_channels: int
    num_kp: int
    estimate_jacobian: bool  # False: every keypoint's Jacobian is the identity
    # grid_sample's align_corners for every warp. The coordinate grid puts -1/+1 on the centres
    # of the border pixels, which is align_corners=True (also how PyTorch < 1.3, which trained
    # the reference checkpoints, sampled). With it, the identity motion returns the source.
    # The shipped profiles use True. The reference code passes no align_corners, which since
    # PyTorch 1.3 means False: set False (`kp-motion animate --warp-align-corners false`) to
    # reproduce the reference run on current PyTorch (reference_config.py).
    warp_align_corners: bool
    # align_corners of the bilinear resizing of the flow and occlusion map to another resolution.
    # The reference resizes with False (PyTorch's default since 0.4), which does not map the
    # identity grid onto itself: keep False to match its checkpoints, True for exact resizing.
    resize_align_corners: bool
    kp_detector: KeypointDetectorParams
    dense_motion: DenseMotionParams
    generator: GeneratorParams

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        check_config(self)

    @property
    def height(self) -> int:
        return self.image_size[0]

    @property
    def width(self) -> int:
        return self.image_size[1]


def _check_divisible(what: str, size: tuple[int, int], scale: float, levels: int) -> None:
    """An hourglass of `levels` halvings over a frame downscaled by `scale` needs even sizes."""
    factor = 2**levels
    for side in size:
        scaled = side * scale
        if abs(scaled - round(scaled)) > 1e-6 or round(scaled) % factor != 0:
            raise ValueError(
                f"{what}: image size {size[0]}x{size[1]} scaled by {scale} must be a multiple "
                f"of {factor} ({levels} halvings)"
            )


def check_config(config: ModelConfig) -> None:
    """Raise ValueError when the profile's sizes cannot work together."""
    where = f"profile {config.name!r}"
    if len(config.image_size) != 2 or min(config.image_size) <= 0:
        raise ValueError(f"{where}: image_size must be [height, width] > 0")
    if config.num_kp <= 0 or config.num_channels <= 0:
        raise ValueError(f"{where}: num_kp and num_channels must be positive")
    for name, scale in (
        ("kp_detector", config.kp_detector.scale_factor),
        ("dense_motion", config.dense_motion.scale_factor),
    ):
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"{where}: {name}.scale_factor must be in (0, 1], got {scale}")
    if config.kp_detector.temperature <= 0 or config.dense_motion.kp_variance <= 0:
        raise ValueError(f"{where}: temperature and kp_variance must be positive")
    detector = config.kp_detector
    _check_divisible(
        f"{where} kp_detector", config.image_size, detector.scale_factor, detector.num_blocks
    )
    dense = config.dense_motion
    _check_divisible(
        f"{where} dense_motion", config.image_size, dense.scale_factor, dense.num_blocks
    )
    if config.generator.output_blend and not config.generator.estimate_occlusion_map:
        raise ValueError(
            f"{where}: generator.output_blend needs generator.estimate_occlusion_map "
            f"(the occlusion map is the blend's weight)"
        )
    _check_divisible(f"{where} generator", config.image_size, 1.0, config.generator.num_down_blocks)
    heatmap_side = min(config.image_size) * detector.scale_factor + 2 * detector.pad - 6
    if heatmap_side < 2:
        raise ValueError(f"{where}: the detector's 7x7 heads leave no heatmap at this size")


def profile_path(name_or_path: str | Path) -> Path:
    """A shipped profile's name ('vox-256') or a path to a profile YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"profile file not found: {path}")
        return path
    try:
        return paths.config_path(f"{PROFILE_FOLDER}/{text}.yaml")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"unknown profile {text!r}; shipped profiles: {', '.join(shipped_profiles())}"
        ) from None


def shipped_profiles() -> list[str]:
    folder = paths.share_dir() / "config" / PROFILE_FOLDER
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_profile(name_or_path: str | Path | ModelConfig) -> ModelConfig:
    """Load a profile by name or path (a ModelConfig passes through)."""
    if isinstance(name_or_path, ModelConfig):
        return name_or_path
    return config_io.load(ModelConfig, profile_path(name_or_path))


def config_from_dict(data: dict, where: str = "model config") -> ModelConfig:
    return config_io.from_dict(ModelConfig, data, where=where)


def with_widths(config: ModelConfig, **changes: dict) -> ModelConfig:
    """A copy of `config` with some sections changed, e.g. kp_detector={'block_expansion': 8}."""
    sections = {}
    for section, values in changes.items():
        sections[section] = dataclasses.replace(getattr(config, section), **values)
    return dataclasses.replace(config, **sections)
