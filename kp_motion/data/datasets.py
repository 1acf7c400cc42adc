"""torch Datasets over the first-order-model layout.

    <root>/train/<video>   <root>/test/<video>

where each <video> is a video file (.mp4/.mov/.avi/.mkv/.webm/.gif: VoxCeleb, Tai-Chi, Mgif), a
folder of image frames (BAIR, or any dataset saved as PNG/JPG frames), or a single .png/.jpg
image holding a horizontal strip of square frames (the first-order-model's "png" format).
Files of other types are ignored.

FramesDataset serves training pairs (two frames of one video); VideoDataset serves whole videos
for evaluation and keypoint extraction. Frames are resized to the model's resolution with
video_io.resize_frame (fit "resize" stretches, "crop" centre-crops first).

A video that cannot be read is reported by name (logging.warning) and skipped: at indexing
time (each video is decoded or probed once) and, should decoding fail later, the item falls
back to another video and the failure is counted; an epoch never stops on a bad file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from kp_motion.data import video_io
from kp_motion.data.augmentation import Augmentation, AugmentationConfig, Augmenter

log = logging.getLogger(__name__)

VIDEO_FILE_SUFFIXES = video_io.VIDEO_SUFFIXES + video_io.GIF_SUFFIXES
STRIP_SUFFIXES = (".png", ".jpg", ".jpeg")
# Caching decoded videos in memory pays off for small frames (a 64 px, 80-frame video is ~1 MB).
AUTO_CACHE_MAX_SIZE = 128
UNREADABLE = (ValueError, OSError, RuntimeError)
# pair_targets(video name, (2,) frame indices of the pair, the pair's augmentation or None)
# -> {name: tensor}: what a training pair carries beside its frames (FramesDataset).
PairTargets = Callable[[str, np.ndarray, Augmentation | None], dict[str, torch.Tensor]]


@dataclass
class VideoEntry:
    """One video of a split: where it is and how to read it."""

    path: Path
    layout: str  # "file" (video/gif), "folder" (image frames) or "strip" (one image of frames)
    frame_files: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem if self.layout != "folder" else self.path.name


def split_folder(root: str | Path, split: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{root} has no {split}/ folder (expected the first-order-model layout: "
            f"<root>/train/<videos>, <root>/test/<videos>)"
        )
    return folder


def find_videos(root: str | Path, split: str) -> list[VideoEntry]:
    """Video entries of <root>/<split>, in natural name order (no decoding)."""
    folder = split_folder(root, split)
    entries = []
    for path in sorted(folder.iterdir(), key=lambda p: video_io.natural_key(p.name)):
        if path.name.startswith("."):
            continue
        suffix = path.suffix.lower()
        if path.is_dir():
            entries.append(VideoEntry(path, "folder", video_io.list_frame_files(path)))
        elif suffix in VIDEO_FILE_SUFFIXES:
            entries.append(VideoEntry(path, "file"))
        elif suffix in STRIP_SUFFIXES:
            entries.append(VideoEntry(path, "strip"))
        else:
            log.debug("%s: not a video, ignored", path)
    if not entries:
        raise ValueError(
            f"{folder}: no videos (expected video files, .gif files or folders of frames)"
        )
    return entries


def split_strip(image: np.ndarray, path: Path) -> np.ndarray:
    """(H, T*H, 3) horizontal strip -> (T, H, H, 3) square frames."""
    height, width = image.shape[:2]
    if width % height:
        raise ValueError(
            f"{path}: a frame strip must be a whole number of square frames wide "
            f"(got {width}x{height})"
        )
    return image.reshape(height, width // height, height, 3).transpose(1, 0, 2, 3)


class _VideoCollection(Dataset):
    """Indexing, probing, decoding, caching and skipping shared by both datasets."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        size: int,
        fit: str,
        cache: bool | None,
        max_frames: int | None = None,
        progress: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if fit not in ("resize", "crop"):
            raise ValueError(f"fit must be 'resize' or 'crop', got {fit!r}")
        self.root, self.split, self.size, self.fit = Path(root), split, size, fit
        self.max_frames = max_frames
        self.cache_enabled = size <= AUTO_CACHE_MAX_SIZE if cache is None else bool(cache)
        self._cache: dict[int, np.ndarray] = {}
        self.skipped: list[str] = []  # names of videos left out at indexing time
        self.decode_failures = 0  # decoding failures after indexing (items fell back)
        self._unusable: set[int] = set()
        self.videos = self._usable_videos(find_videos(root, split), progress)

    def _usable_videos(self, candidates: list[VideoEntry], progress: bool) -> list[VideoEntry]:
        from tqdm import tqdm

        usable = []
        desc = f"{self.split} videos" + (" (decoding to cache)" if self.cache_enabled else "")
        for entry in tqdm(candidates, desc=desc, unit="video", disable=not progress):
            try:
                frames = self._decode(entry) if self.cache_enabled else self._probe(entry)
            except UNREADABLE as error:
                log.warning("skipping unreadable video %s: %s", entry.path, error)
                self.skipped.append(entry.path.name)
                continue
            if self.cache_enabled:
                self._cache[len(usable)] = frames
            usable.append(entry)
        if not usable:
            raise ValueError(
                f"{self.root / self.split}: none of the {len(candidates)} videos could be read"
            )
        return usable

    def _probe(self, entry: VideoEntry) -> None:
        """Cheap readability check: the first frame decodes."""
        if entry.layout == "folder":
            if not entry.frame_files:
                raise ValueError(f"{entry.path}: no image frames in this folder")
            video_io.read_image(entry.frame_files[0])
        elif entry.layout == "strip":
            split_strip(video_io.read_image(entry.path), entry.path)
        else:
            next(video_io.iter_video(entry.path, max_frames=1))

    def _resize(self, frames) -> np.ndarray:
        return np.stack([video_io.resize_frame(frame, self.size, self.fit) for frame in frames])

    def _frame_files(self, entry: VideoEntry) -> list[Path]:
        if not entry.frame_files:
            raise ValueError(f"{entry.path}: no image frames in this folder")
        return entry.frame_files[: self.max_frames]

    def _raw_frames(self, entry: VideoEntry) -> np.ndarray:
        """All frames of a video file or strip at their stored size (T, H, W, 3)."""
        if entry.layout == "strip":
            return split_strip(video_io.read_image(entry.path), entry.path)[: self.max_frames]
        return video_io.read_video(entry.path, max_frames=self.max_frames)

    def _decode(self, entry: VideoEntry) -> np.ndarray:
        """Every frame of a video, resized: uint8 (T, size, size, 3)."""
        if entry.layout == "folder":
            return self._resize(video_io.read_image(path) for path in self._frame_files(entry))
        return self._resize(self._raw_frames(entry))

    def _load(self, video_index: int, pick) -> np.ndarray:
        """Resized frames chosen by pick(frame_count) -> index array, decoding as little as
        the source allows: frame folders read only the chosen files; video files are decoded
        whole (their length is only known then) but only the chosen frames are resized."""
        if video_index in self._cache:
            frames = self._cache[video_index]
            return frames[pick(len(frames))]
        entry = self.videos[video_index]
        if entry.layout == "folder":
            files = self._frame_files(entry)
            return self._resize(video_io.read_image(files[i]) for i in pick(len(files)))
        raw = self._raw_frames(entry)
        return self._resize(raw[pick(len(raw))])

    def _load_with_fallback(self, video_index: int, pick) -> tuple[int, np.ndarray]:
        """Load from `video_index`, or from the next readable video if decoding fails."""
        count = len(self.videos)
        for attempt in range(count):
            candidate = (video_index + attempt) % count
            if candidate in self._unusable:
                continue
            try:
                return candidate, self._load(candidate, pick)
            except UNREADABLE as error:
                self.decode_failures += 1
                self._unusable.add(candidate)
                log.warning(
                    "skipping video %s: decoding failed (%s); %d failure(s) so far",
                    self.videos[candidate].path,
                    error,
                    self.decode_failures,
                )
        raise RuntimeError(f"{self.root / self.split}: no video could be decoded any more")

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.videos]


class FramesDataset(_VideoCollection):
    """Training pairs: item = {"source": (3, H, W), "driving": (3, H, W), "name": str}.

    Each item takes two distinct frames of one video (chosen at random; a one-frame video gives
    the same frame twice), float32 in [0, 1], augmented together when `is_train`. With
    `max_frame_gap` set, the two frames are at most that many frames apart: the first is drawn
    uniformly, the second uniformly among its neighbours within the gap. `repeats`
    visits each video that many times per epoch (first-order-model's num_repeats). Decoded videos
    are cached in memory at construction when `cache` is True (default: for size <= 128).

    Randomness: with `seed` set, item i of epoch e (see set_epoch) always gives the same pair
    and augmentation; without it, the per-item seed is drawn from torch's generator, so
    torch.manual_seed (and DataLoader's per-worker seeding) makes runs repeatable. Evaluation
    datasets (`is_train=False`) are not augmented and use seed 0 unless given one.

    `pair_targets` (PairTargets) adds tensors to every item, computed from the video's name,
    the pair's frame indices and its augmentation (so that they can be flipped and
    time-reversed with the frames), e.g. the part poses of a synthetic dataset for an extra
    loss term; every item must give the same names and shapes, so that batches stack.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 64,
        fit: str = "resize",
        is_train: bool = True,
        repeats: int = 1,
        augmentation: AugmentationConfig | None = None,
        cache: bool | None = None,
        seed: int | None = None,
        progress: bool = False,
        max_frame_gap: int | None = None,
        pair_targets: PairTargets | None = None,
    ) -> None:
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if max_frame_gap is not None and max_frame_gap < 1:
            raise ValueError(f"max_frame_gap must be >= 1 (or None), got {max_frame_gap}")
        self.max_frame_gap = max_frame_gap
        super().__init__(root, split, size, fit, cache, progress=progress)
        self.is_train = is_train
        self.repeats = repeats
        self.augment = Augmenter(augmentation) if is_train else None
        self.seed = seed if (seed is not None or is_train) else 0
        self.epoch = 0
        self.pair_targets = pair_targets

    def set_epoch(self, epoch: int) -> None:
        """With a fixed seed, give each epoch different pairs (like DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos) * self.repeats

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = self._rng(index)

        picked: list[np.ndarray] = []  # the frame indices, for pair_targets

        def pick_pair(count: int) -> np.ndarray:
            picked.append(self._pick_pair(rng, count))
            return picked[-1]

        video_index, pair = self._load_with_fallback(index % len(self.videos), pick_pair)
        frames = pair.astype(np.float32) / 255.0
        drawn = self.augment.draw(rng) if self.augment is not None else None
        if drawn is not None:
            frames = self.augment.apply(frames, drawn)
        tensors = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        name = self.videos[video_index].name
        item = {"source": tensors[0], "driving": tensors[1], "name": name}
        if self.pair_targets is not None:
            item.update(self.pair_targets(name, picked[-1], drawn))
        return item

    def _pick_pair(self, rng: np.random.Generator, count: int) -> np.ndarray:
        if count < 2:
            return np.zeros(2, dtype=int)
        if self.max_frame_gap is None:
            return np.sort(rng.choice(count, size=2, replace=False))
        first = int(rng.integers(count))
        gap = self.max_frame_gap
        neighbours = np.r_[max(0, first - gap) : first, first + 1 : min(count, first + gap + 1)]
        return np.sort([first, int(rng.choice(neighbours))])


class VideoDataset(_VideoCollection):
    """Whole videos: item = {"video": (T, 3, H, W) float32 in [0, 1], "name": str, "fps": float}.

    Videos differ in length, so use batch_size=1 (or a collate function of your own).
    `max_frames` keeps only the first frames of long videos. Not cached by default (None:
    cached for size <= 128, like FramesDataset).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        size: int = 64,
        fit: str = "resize",
        max_frames: int | None = None,
        cache: bool | None = False,
        progress: bool = False,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        super().__init__(root, split, size, fit, cache, max_frames=max_frames, progress=progress)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        video_index, frames = self._load_with_fallback(index, np.arange)
        entry = self.videos[video_index]
        fps = video_io.video_fps(entry.path) if entry.layout == "file" else video_io.DEFAULT_FPS
        return {
            "video": video_io.to_tensor(frames),
            "name": entry.name,
            "fps": fps,
        }
