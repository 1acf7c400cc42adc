"""A first-order-model-layout dataset (root/train, root/test) from a folder of clips, split by
the identity of the person in each clip.

Clips of one person are highly correlated, so a held-out set has to hold out whole identities,
never frames or clips of a person also seen in training. The identity of a clip is the text of
its file name before the first '#' (VoxCeleb face tracks: `id10290#<youtube id>#<start>#<end>`).

The dataset's entries are symbolic links to the clips: the clips are never copied (their
licence may not allow it, and they would double the disk use). Building into a folder that
already holds the same links adds what is missing and changes nothing else; anything else in
the way is refused, never deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kp_motion.data.video_io import GIF_SUFFIXES, VIDEO_SUFFIXES, natural_key

IDENTITY_SEPARATOR = "#"
TRAIN, TEST = "train", "test"
CLIP_SUFFIXES = VIDEO_SUFFIXES + GIF_SUFFIXES


def clip_identity(name: str) -> str:
    """The identity of a clip file name: the text before its first '#'."""
    identity, separator, _ = name.partition(IDENTITY_SEPARATOR)
    if not separator or not identity:
        raise ValueError(
            f"clip {name!r} has no identity prefix (expected '<identity>#...', e.g. "
            f"'id10290#abc#000001#000100.mp4')"
        )
    return identity


@dataclass
class IdentitySplit:
    """Clips of the training and of the held-out (test) identities, in natural name order."""

    clips: dict[str, list[Path]]  # TRAIN / TEST -> clip files
    identities: dict[str, list[str]] = field(default_factory=dict)  # TRAIN / TEST -> sorted ids


def find_clips(folder: str | Path) -> list[Path]:
    """Video files of a folder (not recursive), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"clip folder not found: {folder}")
    clips = [
        path for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in CLIP_SUFFIXES and not path.name.startswith(".")
    ]  # fmt: skip
    if not clips:
        raise ValueError(f"{folder}: no clips (expected {', '.join(CLIP_SUFFIXES)} files)")
    return sorted(clips, key=lambda path: natural_key(path.name))


def split_by_identity(clips: list[Path], hold_out: list[str]) -> IdentitySplit:
    """Clips of the `hold_out` identities go to test, all others to train."""
    by_identity: dict[str, list[Path]] = {}
    for clip in clips:
        by_identity.setdefault(clip_identity(clip.name), []).append(clip)
    known = sorted(by_identity)
    unknown = sorted(set(hold_out) - set(known))
    if unknown:
        raise ValueError(
            f"held-out identity {', '.join(unknown)} has no clip (identities: {', '.join(known)})"
        )
    if not hold_out:
        raise ValueError("name at least one identity to hold out for the test split")
    train_ids = [identity for identity in known if identity not in hold_out]
    if not train_ids:
        raise ValueError("every identity is held out: the train split would be empty")
    test_ids = sorted(set(hold_out))
    return IdentitySplit(
        clips={
            split: [clip for clip in clips if clip_identity(clip.name) in ids]
            for split, ids in ((TRAIN, train_ids), (TEST, test_ids))
        },
        identities={TRAIN: train_ids, TEST: test_ids},
    )


def _link_target(clip: Path, link_folder: Path) -> str:
    """The link's content: the clip's path relative to the link's folder (the dataset keeps
    working when both trees move together, e.g. a checkout and its ../shared)."""
    return os.path.relpath(os.path.abspath(clip), os.path.abspath(link_folder))


def _is_link_to(path: Path, clip: Path) -> bool:
    return path.is_symlink() and os.path.realpath(path) == os.path.realpath(clip)


def plan_links(split: IdentitySplit, root: str | Path) -> list[tuple[Path, Path]]:
    """(link, clip) pairs still to create under root; raises ValueError, before anything is
    written, when root holds anything this command would not have written."""
    root = Path(root)
    wanted = {
        root / name / clip.name: clip for name, clips in split.clips.items() for clip in clips
    }
    if root.exists() and not root.is_dir():
        raise ValueError(f"output {root} exists and is not a folder")
    if root.is_dir():
        _check_only_own_entries(root, wanted)
    return [(link, clip) for link, clip in wanted.items() if not _is_link_to(link, clip)]


def _check_only_own_entries(root: Path, wanted: dict[Path, Path]) -> None:
    """Refuse a root with entries other than train/, test/ and links to the wanted clips."""
    for entry in sorted(root.iterdir()):
        if entry.name not in (TRAIN, TEST) or entry.is_symlink() or not entry.is_dir():
            raise ValueError(
                f"output {root} holds {entry.name!r}, which this command did not write "
                "(choose a new folder; nothing was changed)"
            )
        for item in sorted(entry.iterdir()):
            clip = wanted.get(item)
            if clip is None or not _is_link_to(item, clip):
                raise ValueError(
                    f"output {root} holds {entry.name}/{item.name}, which is not a link of this "
                    "split (another split or another file; choose a new folder, nothing was "
                    "changed)"
                )


def write_links(split: IdentitySplit, root: str | Path) -> list[Path]:
    """Create root/train and root/test with a link per clip; returns the links it created."""
    links = plan_links(split, root)
    root = Path(root)
    for name in (TRAIN, TEST):
        (root / name).mkdir(parents=True, exist_ok=True)
    for link, clip in links:
        link.symlink_to(_link_target(clip, link.parent))
    return [link for link, _ in links]


def clip_frame_count(clip: Path) -> int | None:
    """Frames a video file declares in its header (no decoding); None when it declares none."""
    import av

    try:
        with av.open(str(clip)) as container:
            frames = container.streams.video[0].frames
    except (av.error.FFmpegError, IndexError, OSError):
        return None
    return int(frames) or None


def describe_split(split: IdentitySplit, count_frames: bool = True) -> list[str]:
    """One line per split: identities, clips and (declared) frames."""
    lines = []
    for name in (TRAIN, TEST):
        clips = split.clips[name]
        identities = split.identities[name]
        line = f"{name}: {len(identities)} identities ({', '.join(identities)}), {len(clips)} clips"
        if count_frames:
            counts = [clip_frame_count(clip) for clip in clips]
            if all(count is not None for count in counts):
                line += f", {sum(counts)} frames"
        lines.append(line)
    return lines
