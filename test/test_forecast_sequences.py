"""The keypoint sequence folder format (what `kp-motion extract` writes, forecasters read)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from kp_motion.data.keypoint_sequences import load_sequences, save_sequences

META = {"model_id": "abc123", "dataset": "synthetic", "split": "train", "fps": 25,
        "num_keypoints": 10}  # fmt: skip


def sequences(count: int = 2, length: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        f"video_{i}": (rng.normal(size=(length, 60)).astype(np.float32),
                       np.arange(length, dtype=np.int64) * 2)
        for i in range(count)
    }  # fmt: skip


def test_round_trip(tmp_path):
    written = sequences()
    save_sequences(tmp_path / "seq", written, {**META, "extra": "kept"})
    loaded, meta = load_sequences(tmp_path / "seq")
    assert meta == {**META, "extra": "kept"}
    assert [s.name for s in loaded] == ["video_0", "video_1"]
    for sequence in loaded:
        values, frame_indices = written[sequence.name]
        np.testing.assert_array_equal(sequence.values, values)
        np.testing.assert_array_equal(sequence.frame_indices, frame_indices)
        assert sequence.values.dtype == np.float32 and sequence.frame_indices.dtype == np.int64


def test_segments_split_at_frame_index_gaps(tmp_path):
    values = np.zeros((7, 60), np.float32)
    save_sequences(tmp_path, {"clip": (values, np.array([0, 1, 2, 5, 6, 7, 9]))}, META)
    (sequence,), _ = load_sequences(tmp_path)
    assert [len(run) for run in sequence.segments()] == [3, 3, 1]


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_sequences(tmp_path / "nowhere")
    save_sequences(tmp_path, sequences(1), META)
    (tmp_path / "video_0.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="video_0.npz: not a readable"):
        load_sequences(tmp_path)
    np.savez(tmp_path / "video_0.npz", values=np.zeros((3, 60), np.float32))
    with pytest.raises(ValueError, match="missing array"):
        load_sequences(tmp_path)
    (tmp_path / "meta.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="meta.yaml"):
        load_sequences(tmp_path)


def test_wrong_width_and_bad_meta_are_rejected(tmp_path):
    np.savez(tmp_path / "clip.npz", values=np.zeros((4, 58), np.float32),
             frame_indices=np.arange(4))  # fmt: skip
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(META))
    with pytest.raises(ValueError, match=r"\(T, 60\)"):
        load_sequences(tmp_path)
    with pytest.raises(ValueError, match="missing fps"):
        save_sequences(
            tmp_path / "other", sequences(1), {k: v for k, v in META.items() if k != "fps"}
        )
    with pytest.raises(ValueError, match="strictly increasing"):
        save_sequences(tmp_path / "other", {"a": (np.zeros((2, 60)), np.array([3, 3]))}, META)
    with pytest.raises(ValueError, match="invalid sequence name"):
        save_sequences(tmp_path / "other", {"../a": (np.zeros((1, 60)), np.array([0]))}, META)
