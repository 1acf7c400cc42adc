"""The synthetic motion dataset: deterministic videos of moving figures in the FOMM layout.

    <out>/train/0000_quadruped.mp4 ...   (or frame folders 0000_quadruped/000000.png ...)
    <out>/test/0000_arm.mp4 ...
    <out>/manifest.yaml                  seed, full config, per-video kind and parameters

Every video is rendered from its own seed, derived from (dataset seed, split, index), so a video
can be re-rendered alone and the same seed always gives the same frames. The scenes themselves
(textures, figures, motion models) live in synthetic_scenes.py; docs/synthetic-data.md explains
the design.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from kp_motion import config as config_io
from kp_motion.data import video_io
from kp_motion.data.synthetic_scenes import KINDS, build_scene

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.yaml"
GENERATOR_VERSION = 1  # bump when the rendering changes, so old manifests are recognisable
SPLITS = ("train", "test")
FORMATS = ("mp4", "png")
# Third seed word of the stream that orders the kinds of a split; video seeds use the video
# index there, which never gets this large.
_KIND_ORDER_KEY = 2**32 - 1


@dataclass
class KindMix:
    """Relative share of each kind of video (weights, normalised; 0 leaves a kind out)."""

    quadruped: float = 0.3
    biped: float = 0.2
    arm: float = 0.3
    blob: float = 0.2

    def weights(self) -> dict[str, float]:
        return {kind: float(getattr(self, kind)) for kind in KINDS}


@dataclass
class SynthConfig:
    """Settings of `kp-motion synth`; the shipped values are in config/synth.yaml."""

    seed: int = 0
    size: int = 64  # frame side in pixels
    num_train: int = 200
    num_test: int = 40
    num_frames: int = 80
    fps: float = 25.0
    format: str = "mp4"  # "mp4" (libx264) or "png" (lossless frame folders)
    crf: int = 12  # mp4 quality (lower = better); small frames need a high quality to stay sharp
    supersample: int = 4  # canvas = size * supersample, then area-averaged: anti-aliasing
    kinds: KindMix = field(default_factory=KindMix)

    def validate(self) -> SynthConfig:
        problems = []
        if self.seed < 0:
            problems.append(f"seed must be >= 0 (got {self.seed})")
        if self.size < 16:
            problems.append(f"size must be >= 16 (got {self.size})")
        if self.num_train < 0 or self.num_test < 0 or self.num_train + self.num_test == 0:
            problems.append("num_train and num_test must be >= 0, and not both 0")
        if self.num_frames < 2:
            problems.append(f"num_frames must be >= 2 (got {self.num_frames})")
        if self.fps <= 0:
            problems.append(f"fps must be > 0 (got {self.fps})")
        if self.format not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)} (got {self.format!r})")
        if not 1 <= self.supersample <= 8:
            problems.append(f"supersample must be in 1..8 (got {self.supersample})")
        weights = self.kinds.weights()
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            problems.append(f"kinds weights must be >= 0 with a positive sum (got {weights})")
        if problems:
            raise ValueError("synthetic dataset config: " + "; ".join(problems))
        return self


def load_config(path: str | Path | None = None) -> SynthConfig:
    """config/synth.yaml (or `path`) -> validated SynthConfig."""
    from kp_motion.paths import config_path

    path = config_path("synth.yaml") if path is None else Path(path)
    return config_io.load(SynthConfig, path).validate()


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video, independent of the others."""

    split: str
    index: int
    kind: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.index:04d}_{self.kind}"


def _video_seed(dataset_seed: int, split: str, index: int) -> int:
    sequence = np.random.SeedSequence([dataset_seed, SPLITS.index(split), index])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def assign_kinds(weights: dict[str, float], count: int, rng: np.random.Generator) -> list[str]:
    """Exactly proportional kind counts (largest remainder), in a seeded random order."""
    total = sum(weights.values())
    quotas = {kind: count * w / total for kind, w in weights.items()}
    counts = {kind: int(np.floor(q)) for kind, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda k: (-(quotas[k] - counts[k]), KINDS.index(k)))
    for kind in by_remainder[: count - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind in KINDS for _ in range(counts.get(kind, 0))]
    rng.shuffle(kinds)
    return kinds


def plan_videos(config: SynthConfig) -> list[VideoSpec]:
    specs = []
    for split, count in (("train", config.num_train), ("test", config.num_test)):
        rng = np.random.default_rng([config.seed, SPLITS.index(split), _KIND_ORDER_KEY])
        for index, kind in enumerate(assign_kinds(config.kinds.weights(), count, rng)):
            specs.append(VideoSpec(split, index, kind, _video_seed(config.seed, split, index)))
    return specs


def render_video(
    kind: str, seed: int, size: int, num_frames: int, fps: float, supersample: int = 4
) -> tuple[np.ndarray, dict]:
    """Render one synthetic video -> (uint8 (T, size, size, 3) RGB frames, parameters)."""
    rng = np.random.default_rng(seed)
    scene, params = build_scene(kind, rng, num_frames, fps, size * supersample)
    frames = np.stack([scene.render(t, size) for t in range(num_frames)])
    return frames, params


def _rounded(value):
    """Manifest values: floats rounded for readability, numpy scalars made plain."""
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_one(spec: VideoSpec, config: SynthConfig, out_dir: Path) -> dict:
    frames, params = render_video(
        spec.kind, spec.seed, config.size, config.num_frames, config.fps, config.supersample
    )
    relative = Path(spec.split) / (spec.name + (".mp4" if config.format == "mp4" else ""))
    video_io.write_video(out_dir / relative, frames, fps=config.fps, crf=config.crf)
    return {
        "name": spec.name,
        "split": spec.split,
        "path": relative.as_posix(),
        "kind": spec.kind,
        "seed": spec.seed,
        "frames": config.num_frames,
        "params": _rounded(params),
    }


def _write_one_packed(job: tuple[VideoSpec, SynthConfig, Path]) -> dict:
    return _write_one(*job)


def video_kinds(root: str | Path) -> dict[str, str]:
    """{video name: kind} from a synthetic dataset's manifest; {} for a dataset without one."""
    manifest = Path(root) / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    videos = (yaml.safe_load(manifest.read_text()) or {}).get("videos", [])
    return {video["name"]: video["kind"] for video in videos if "name" in video and "kind" in video}


def _remove_previous_outputs(out_dir: Path) -> None:
    """Delete the videos a previous run listed in its manifest (and only those)."""
    import shutil

    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return
    previous = yaml.safe_load(manifest.read_text()) or {}
    for video in previous.get("videos", []):
        target = (out_dir / video["path"]).resolve()
        if out_dir.resolve() not in target.parents:
            continue  # never follow a manifest entry outside the dataset folder
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
    manifest.unlink()


def _is_occupied(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _check_output_folder(out_dir: Path, overwrite: bool) -> None:
    occupied = [out_dir / name for name in (*SPLITS, MANIFEST_NAME) if _is_occupied(out_dir / name)]
    if occupied and not overwrite:
        raise ValueError(
            f"{out_dir} already holds a dataset ({', '.join(p.name for p in occupied)}); "
            "choose another folder, or overwrite it (--overwrite)"
        )
    if overwrite:
        _remove_previous_outputs(out_dir)


def generate_dataset(
    config: SynthConfig,
    out_dir: str | Path,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Render every video of `config` into `out_dir` and write the manifest; returns it.

    `workers` > 1 renders in parallel processes (each video has its own seed, so the output
    does not depend on the number of workers).
    """
    from tqdm import tqdm

    config.validate()
    out_dir = Path(out_dir)
    _check_output_folder(out_dir, overwrite)
    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
    specs = plan_videos(config)
    jobs = [(spec, config, out_dir) for spec in specs]
    bar = tqdm(total=len(jobs), desc="synth", unit="video", disable=not progress)
    entries = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for entry in pool.map(_write_one_packed, jobs, chunksize=4):
                entries.append(entry)
                bar.update()
    else:
        for job in jobs:
            entries.append(_write_one_packed(job))
            bar.update()
    bar.close()
    manifest = {
        "generator": "kp_motion.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "config": config_io.to_dict(config),
        "counts": _kind_counts(entries),
        "videos": entries,
    }
    (out_dir / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return manifest


def _kind_counts(entries: list[dict]) -> dict:
    counts: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    for entry in entries:
        split_counts = counts[entry["split"]]
        split_counts[entry["kind"]] = split_counts.get(entry["kind"], 0) + 1
    return counts


def load_manifest(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no synthetic dataset manifest: {path}")
    return yaml.safe_load(path.read_text())


def write_demo_assets(
    out_dir: str | Path, kind: str = "quadruped", seed: int = 0, config: SynthConfig | None = None
) -> dict:
    """Bundled demo media: demo_source.png (frame 0 of one video) and demo_driving.mp4
    (another video of the same kind), both rendered like test videos of `config`."""
    config = dataclasses.replace(config or SynthConfig(), seed=seed).validate()
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r} (expected one of {', '.join(KINDS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source_seed = _video_seed(seed, "test", 0)
    driving_seed = _video_seed(seed, "test", 1)
    render = dict(
        size=config.size,
        num_frames=config.num_frames,
        fps=config.fps,
        supersample=config.supersample,
    )
    source_frames, source_params = render_video(kind, source_seed, **render)
    driving_frames, driving_params = render_video(kind, driving_seed, **render)
    video_io.write_image(out_dir / "demo_source.png", source_frames[0])
    video_io.write_video(out_dir / "demo_driving.mp4", driving_frames, config.fps, config.crf)
    return {
        "kind": kind,
        "seed": seed,
        "source": {"seed": source_seed, "frame": 0, "params": _rounded(source_params)},
        "driving": {
            "seed": driving_seed,
            "frames": len(driving_frames),
            "params": _rounded(driving_params),
        },
    }
