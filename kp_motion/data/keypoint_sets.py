"""Keypoint sets in one .npz file: every frame of a list of clips, as a FOMM detector gives them.

The layout (that of the shared VoxCeleb keypoints):
    names     (C,) clip names, e.g. "id10283#x6M3KQ8-gM4#005643#006041.mp4"
    lengths   (C,) frames per clip (all >= 1)
    value     (N, K, 2) float keypoint positions, clips concatenated in `names` order
    jacobian  (N, K, 2, 2) float Jacobians of the same frames
with N = lengths.sum() and K = 10. A set written by `kp-motion extract --set` also holds
    model_id  () the detector's model_id (kp_motion.models.checkpoint.model_id)
    model     () the detector's name (its profile, e.g. "face-128")
optional arrays that the shared file lacks. Each clip becomes a KeypointSequence of 60-value frames
(kp_motion.keypoints layout) with frame indices 0..T-1, so the forecasting code treats a set
exactly like a folder written by `kp-motion extract`.

Clips of one person are strongly correlated, so splits go by identity, never by clip or frame:
the identity of a clip is the `idNNNNN` prefix of its name (the VoxCeleb speaker id).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kp_motion.data.keypoint_sequences import KeypointSequence
from kp_motion.keypoints import NUM_KEYPOINTS, pack, unpack

REQUIRED_ARRAYS = ("names", "lengths", "value", "jacobian")
# Which detector gave the keypoints; written by the project's extraction, absent from sets made
# elsewhere (the shared VoxCeleb file), so never required.
DETECTOR_ARRAYS = ("model_id", "model")
IDENTITY_PATTERN = re.compile(r"^(id\d+)")


def identity_of(name: str) -> str:
    """The speaker id (`idNNNNN` prefix) of a clip name, or a ValueError naming the clip."""
    match = IDENTITY_PATTERN.match(name)
    if match is None:
        raise ValueError(f"clip name {name!r} does not start with an identity 'idNNNNN'")
    return match.group(1)


@dataclass
class KeypointSet:
    """The clips of one keypoint file, in file order."""

    source: str  # where the set was read from (for messages)
    clips: list[KeypointSequence]
    # {"model_id": ..., "model": ...} of the detector, where the file records them
    detector: dict[str, str] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(len(clip) for clip in self.clips)

    def identities(self) -> list[str]:
        """The distinct identities, sorted."""
        return sorted({identity_of(clip.name) for clip in self.clips})

    def clips_of(self, identities: Sequence[str]) -> list[KeypointSequence]:
        wanted = set(identities)
        return [clip for clip in self.clips if identity_of(clip.name) in wanted]

    def excluding(self, identities: Sequence[str]) -> KeypointSet:
        """The same set without the clips of `identities` (each must have clips here)."""
        unknown = sorted(set(identities) - set(self.identities()))
        if unknown:
            raise ValueError(f"{self.source}: no clips of identity {', '.join(unknown)}")
        kept = [name for name in self.identities() if name not in set(identities)]
        if not kept:
            raise ValueError(f"{self.source}: excluding {', '.join(identities)} leaves no clips")
        return KeypointSet(self.source, self.clips_of(kept), dict(self.detector))

    def split_by_identity(
        self, held_out: Sequence[str]
    ) -> tuple[list[KeypointSequence], list[KeypointSequence]]:
        """(clips of every other identity, clips of the `held_out` identities)."""
        unknown = sorted(set(held_out) - set(self.identities()))
        if unknown:
            raise ValueError(f"{self.source}: no clips of identity {', '.join(unknown)}")
        others = [name for name in self.identities() if name not in set(held_out)]
        return self.clips_of(others), self.clips_of(held_out)

    def leave_one_identity_out(
        self,
    ) -> Iterator[tuple[str, list[KeypointSequence], list[KeypointSequence]]]:
        """(held-out identity, training clips, held-out clips) for each identity in turn."""
        identities = self.identities()
        if len(identities) < 2:
            raise ValueError(f"{self.source}: leave-one-identity-out needs >= 2 identities")
        for identity in identities:
            train, held_out = self.split_by_identity([identity])
            yield identity, train, held_out


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"keypoint file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, expected an archive with named arrays")
        with loaded as archive:
            missing = [key for key in REQUIRED_ARRAYS if key not in archive.files]
            if missing:
                raise ValueError(f"missing array(s) {', '.join(missing)}")
            present = REQUIRED_ARRAYS + tuple(k for k in DETECTOR_ARRAYS if k in archive.files)
            return {key: archive[key] for key in present}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a keypoint set ({error})") from None


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    names, lengths = arrays["names"], arrays["lengths"]
    value, jacobian = arrays["value"], arrays["jacobian"]
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) == 0:
        raise ValueError(f"{where}: names must be a non-empty 1-D array of strings")
    if lengths.shape != names.shape or lengths.dtype.kind not in "iu":
        raise ValueError(f"{where}: lengths must be {names.shape} integers, got {lengths.shape}")
    if (lengths < 1).any():
        raise ValueError(f"{where}: every clip needs at least one frame (lengths >= 1)")
    total = int(lengths.sum())
    if value.shape != (total, NUM_KEYPOINTS, 2):
        raise ValueError(
            f"{where}: value must be ({total}, {NUM_KEYPOINTS}, 2) for lengths summing to "
            f"{total}, got {value.shape}"
        )
    if jacobian.shape != (total, NUM_KEYPOINTS, 2, 2):
        raise ValueError(
            f"{where}: jacobian must be ({total}, {NUM_KEYPOINTS}, 2, 2), got {jacobian.shape}"
        )
    for key in ("value", "jacobian"):
        if arrays[key].dtype.kind != "f" or not np.isfinite(arrays[key]).all():
            raise ValueError(f"{where}: {key} must be finite floats")
    if len(set(names.tolist())) != len(names):
        raise ValueError(f"{where}: clip names are not unique")
    for key in DETECTOR_ARRAYS:
        if key in arrays and (arrays[key].ndim != 0 or arrays[key].dtype.kind not in "US"):
            raise ValueError(f"{where}: {key} must be a single string")


def load_keypoint_set(path: str | Path) -> KeypointSet:
    """Read and check a keypoint .npz; every problem is a one-line ValueError / FileNotFound."""
    path = Path(path)
    arrays = _read_arrays(path)
    _check_arrays(arrays, str(path))
    frames = pack(arrays["value"], arrays["jacobian"])
    per_clip = np.split(frames, np.cumsum(arrays["lengths"])[:-1])
    clips = [
        KeypointSequence(str(name), values, np.arange(len(values), dtype=np.int64))
        for name, values in zip(arrays["names"].tolist(), per_clip, strict=True)
    ]
    detector = {key: str(arrays[key]) for key in DETECTOR_ARRAYS if key in arrays}
    return KeypointSet(str(path), clips, detector)


def save_keypoint_set(
    path: str | Path, clips: dict[str, np.ndarray], detector: dict[str, str] | None = None
) -> Path:
    """Write clips (name -> (T, 60) frames) as a keypoint set, with the detector's model_id
    and name where given ({"model_id": ..., "model": ...}); returns the path."""
    path = Path(path)
    if not clips:
        raise ValueError(f"{path}: a keypoint set needs at least one clip")
    unknown = sorted(set(detector or {}) - set(DETECTOR_ARRAYS))
    if unknown:
        raise ValueError(f"unknown detector field(s) {unknown} (expected {list(DETECTOR_ARRAYS)})")
    names = list(clips)
    arrays = [np.asarray(clips[name], np.float32) for name in names]
    positions, jacobians = unpack(np.concatenate(arrays))
    extra = {key: np.array(str(value)) for key, value in (detector or {}).items()}
    np.savez(
        path,
        names=np.array(names),
        lengths=np.array([len(a) for a in arrays], dtype=np.int64),
        value=positions,
        jacobian=jacobians,
        **extra,
    )
    return path
