"""FramesDataset / VideoDataset on a small first-order-model layout the test writes itself."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kp_motion.data import video_io
from kp_motion.data.augmentation import AugmentationConfig
from kp_motion.data.datasets import FramesDataset, VideoDataset, find_videos

torch.set_num_threads(1)


def moving_square(frames: int, height: int, width: int, colour: tuple[int, int, int]):
    """A square sliding right over a gradient: frames differ and keep a known layout."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[..., 2] = np.linspace(0, 120, width, dtype=np.uint8)[None, None]
    for t in range(frames):
        left = 2 + t * 2
        video[t, height // 4 : height // 4 + 8, left : left + 8] = colour
    return video


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    """train/: mp4, gif, frame folder, frame strip, a corrupt mp4 and a stray text file."""
    train = tmp_path / "train"
    test = tmp_path / "test"
    train.mkdir()
    test.mkdir()
    video_io.write_video(train / "a_video.mp4", moving_square(6, 32, 48, (250, 30, 30)), fps=10)
    video_io.write_video(train / "b_anim.gif", moving_square(5, 24, 24, (30, 250, 30)))
    video_io.write_video(train / "c_frames", moving_square(7, 20, 20, (30, 30, 250)))
    strip = np.concatenate(list(moving_square(4, 16, 16, (250, 250, 30))), axis=1)
    video_io.write_image(train / "d_strip.png", strip)
    (train / "e_corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    (train / "notes.txt").write_text("not a video")
    video_io.write_video(test / "clip", moving_square(9, 18, 30, (200, 200, 200)))
    return tmp_path


def test_index_skips_the_corrupt_file_with_a_warning_naming_it(
    dataset_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(find_videos(dataset_root, "train")) == 5  # the .txt is not a candidate
    with caplog.at_level(logging.WARNING):
        dataset = FramesDataset(dataset_root, "train", size=16, repeats=3)
    assert dataset.names == ["a_video", "b_anim", "c_frames", "d_strip"]
    assert dataset.skipped == ["e_corrupt.mp4"]
    assert any("e_corrupt.mp4" in record.getMessage() for record in caplog.records)
    assert len(dataset) == 4 * 3


@pytest.mark.parametrize("cache", [True, False])
def test_items_are_pairs_of_resized_frames(dataset_root: Path, cache: bool) -> None:
    dataset = FramesDataset(dataset_root, "train", size=16, cache=cache, seed=0)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["source"].shape == (3, 16, 16) and item["driving"].shape == (3, 16, 16)
        assert item["source"].dtype == torch.float32
        assert float(item["source"].min()) >= 0.0 and float(item["driving"].max()) <= 1.0
        assert item["name"] == dataset.names[index]
        # Two different frames of a moving square are never identical.
        assert not torch.equal(item["source"], item["driving"])


def test_cached_and_streamed_decoding_agree(dataset_root: Path) -> None:
    cached = FramesDataset(dataset_root, "train", size=16, is_train=False, cache=True)
    streamed = FramesDataset(dataset_root, "train", size=16, is_train=False, cache=False)
    for index in range(len(cached)):
        from_cache, from_files = cached[index], streamed[index]
        for key in ("source", "driving"):
            torch.testing.assert_close(from_cache[key], from_files[key])


def test_seeded_items_repeat_and_epochs_differ(dataset_root: Path) -> None:
    def run(epoch: int) -> list[torch.Tensor]:
        dataset = FramesDataset(dataset_root, "train", size=16, repeats=2, seed=5)
        dataset.set_epoch(epoch)
        return [dataset[i]["driving"] for i in range(len(dataset))]

    first, again, other_epoch = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other_epoch, strict=True))


def test_unseeded_items_follow_torch_manual_seed(dataset_root: Path) -> None:
    dataset = FramesDataset(dataset_root, "train", size=16)
    torch.manual_seed(3)
    first = [dataset[i]["source"] for i in range(4)]
    torch.manual_seed(3)
    assert all(torch.equal(a, dataset[i]["source"]) for i, a in enumerate(first))


def test_augmented_pair_is_flipped_together(dataset_root: Path) -> None:
    flip = AugmentationConfig(
        horizontal_flip=1.0, time_flip=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0
    )
    plain = FramesDataset(dataset_root, "train", size=16, seed=2, augmentation=flip)
    none = AugmentationConfig(
        horizontal_flip=0.0, time_flip=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0
    )
    reference = FramesDataset(dataset_root, "train", size=16, seed=2, augmentation=none)
    for index in range(len(plain)):
        for key in ("source", "driving"):
            torch.testing.assert_close(plain[index][key], reference[index][key].flip(-1))


def test_decoding_failure_after_indexing_falls_back_and_is_counted(
    dataset_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = FramesDataset(dataset_root, "train", size=16, cache=False, seed=0)
    (dataset_root / "train" / "a_video.mp4").write_bytes(b"broken since indexing")
    with caplog.at_level(logging.WARNING):
        item = dataset[0]
    assert item["name"] == "b_anim"  # the next readable video
    assert dataset.decode_failures == 1
    assert any("a_video.mp4" in record.getMessage() for record in caplog.records)
    # A whole epoch still runs through a DataLoader.
    batches = list(DataLoader(dataset, batch_size=2))
    assert sum(len(batch["name"]) for batch in batches) == len(dataset)


def test_crop_fit_keeps_the_aspect_ratio(dataset_root: Path) -> None:
    stretched = VideoDataset(dataset_root, "train", size=16, fit="resize")[0]["video"]
    cropped = VideoDataset(dataset_root, "train", size=16, fit="crop")[0]["video"]
    assert stretched.shape == cropped.shape == (6, 3, 16, 16)
    assert not torch.allclose(stretched, cropped)


def test_video_dataset_items(dataset_root: Path) -> None:
    dataset = VideoDataset(dataset_root, "train", size=20, max_frames=5)
    lengths = [dataset[i]["video"].shape[0] for i in range(len(dataset))]
    assert lengths == [5, 5, 5, 4]
    first = dataset[0]
    assert first["fps"] == pytest.approx(10.0) and first["name"] == "a_video"
    test_set = VideoDataset(dataset_root, "test", size=24)
    video = test_set[0]["video"]
    assert video.shape == (9, 3, 24, 24) and video.dtype == torch.float32
    with pytest.raises(IndexError):
        test_set[1]


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no train/ folder"):
        FramesDataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="not found"):
        VideoDataset(tmp_path / "missing")
    (tmp_path / "test").mkdir()
    with pytest.raises(ValueError, match="no videos"):
        VideoDataset(tmp_path, "test")
    (tmp_path / "test" / "bad.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="none of the 1 videos"):
        VideoDataset(tmp_path, "test")
    with pytest.raises(ValueError, match="repeats"):
        FramesDataset(tmp_path, "test", repeats=0)


def test_max_frame_gap_bounds_the_distance_between_a_pairs_frames(tmp_path: Path) -> None:
    # Frame t of this lossless frame-folder video is uniformly grey at level 8 t: the pixel
    # values tell which frames a pair took.
    frames = np.stack([np.full((16, 16, 3), 8 * t, dtype=np.uint8) for t in range(30)])
    video_io.write_video(tmp_path / "train" / "ramp", frames)

    def gaps(max_frame_gap: int | None) -> set[int]:
        dataset = FramesDataset(
            tmp_path, "train", size=16, is_train=False, repeats=200, seed=1,
            max_frame_gap=max_frame_gap,
        )  # fmt: skip
        found = set()
        for index in range(len(dataset)):
            item = dataset[index]
            levels = [round(float(item[key].mean()) * 255 / 8) for key in ("source", "driving")]
            found.add(levels[1] - levels[0])
        return found

    assert gaps(3) == {1, 2, 3}  # every allowed gap, never a larger one, never the same frame
    assert max(gaps(None)) > 20
    with pytest.raises(ValueError, match="max_frame_gap must be >= 1"):
        FramesDataset(tmp_path, "train", size=16, max_frame_gap=0)


def test_pair_targets_get_the_pairs_video_frames_and_augmentation(tmp_path: Path) -> None:
    # Frame t is grey at level 8 t, so an item's frames say which frames the pair took.
    frames = np.stack([np.full((16, 16, 3), 8 * t, dtype=np.uint8) for t in range(30)])
    video_io.write_video(tmp_path / "train" / "ramp", frames)
    calls = []

    def pair_targets(name, frame_pair, drawn):
        calls.append((name, tuple(frame_pair), drawn))
        return {"pair": torch.as_tensor(frame_pair, dtype=torch.float32)}

    reverse = AugmentationConfig(
        horizontal_flip=0.0, time_flip=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0
    )
    dataset = FramesDataset(tmp_path, "train", size=16, repeats=5, seed=3, augmentation=reverse,
                            pair_targets=pair_targets)  # fmt: skip
    for index in range(len(dataset)):
        item = dataset[index]
        name, pair, drawn = calls[-1]
        assert name == "ramp" and pair[0] < pair[1] and drawn.reverse and not drawn.flip
        # The frames in the video's order; the augmentation says they were swapped.
        levels = [round(float(item[key].mean()) * 255 / 8) for key in ("driving", "source")]
        assert levels == list(pair) and item["pair"].tolist() == list(pair)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["pair"].shape == (4, 2)
    plain = FramesDataset(tmp_path, "train", size=16, seed=3, is_train=False)
    assert set(plain[0]) == {"source", "driving", "name"}
