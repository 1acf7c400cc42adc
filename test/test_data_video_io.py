"""video_io: round trips through every format, input conversions, and readable errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kp_motion.data import video_io

torch.set_num_threads(1)


def smooth_frames(count: int = 12, height: int = 32, width: int = 48) -> np.ndarray:
    """Smooth moving gradients: easy for lossy codecs, every frame different."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for t in range(count):
        red = 128 + 100 * np.sin(cols / width * 2 * np.pi + t * 0.3)
        green = 128 + 100 * np.cos(rows / height * 2 * np.pi - t * 0.2)
        blue = np.full_like(rows, 40 + 15 * t)
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def test_mp4_round_trip_is_close_and_keeps_fps(tmp_path: Path) -> None:
    frames = smooth_frames()
    path = video_io.write_video(tmp_path / "clip.mp4", frames, fps=30)
    decoded = video_io.read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # yuv420p halves colour resolution, which costs a few levels on saturated gradients.
    assert mean_abs_diff(decoded, frames) < 6.0
    assert video_io.video_fps(path) == pytest.approx(30.0)
    streamed = list(video_io.iter_video(path, max_frames=5))
    assert len(streamed) == 5
    np.testing.assert_array_equal(np.stack(streamed), decoded[:5])


def test_mp4_bytes_depend_only_on_the_frames(tmp_path: Path) -> None:
    # With x264's macroblock-tree rate control on, the first file after another colour
    # conversion in the process (and, at random, others) came out different, and
    # `kp-motion synth` depended on --workers.
    import av

    frames = smooth_frames(count=30, height=64, width=64)
    first = video_io.write_video(tmp_path / "first.mp4", frames).read_bytes()
    for frame in frames[:3]:
        av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
    second = video_io.write_video(tmp_path / "second.mp4", frames).read_bytes()
    assert first == second


def test_mp4_odd_size_is_padded_with_edge_pixels(tmp_path: Path) -> None:
    frames = smooth_frames(count=4, height=31, width=45)
    decoded = video_io.read_video(video_io.write_video(tmp_path / "odd.mp4", frames))
    assert decoded.shape == (4, 32, 46, 3)
    assert mean_abs_diff(decoded[:, :31, :45], frames) < 6.0
    # The padding repeats the last row, so it looks like its neighbour, not black.
    assert mean_abs_diff(decoded[:, 31, :45], frames[:, 30]) < 8.0


def test_png_folder_round_trip_is_exact_and_replaces_its_own_stale_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, 17, 23, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    video_io.write_video(folder, frames)
    assert [p.name for p in video_io.list_frame_files(folder)][:2] == ["000000.png", "000001.png"]
    np.testing.assert_array_equal(video_io.read_video(folder), frames)
    # A shorter second write must not leave the old frames 3..5 behind.
    video_io.write_video(folder, frames[:3])
    np.testing.assert_array_equal(video_io.read_video(folder), frames[:3])
    assert video_io.video_fps(folder, default=12.5) == 12.5


def test_gif_round_trip(tmp_path: Path) -> None:
    frames = smooth_frames(count=5)
    path = video_io.write_video(tmp_path / "clip.gif", frames, fps=20)
    decoded = video_io.read_video(path)
    assert decoded.shape == frames.shape
    assert mean_abs_diff(decoded, frames) < 6.0  # one 256-colour palette per frame
    assert video_io.video_fps(path) == pytest.approx(20.0)


def test_folder_frames_sorted_naturally(tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    folder.mkdir()
    for index in (10, 2, 1):
        Image.fromarray(np.full((4, 4, 3), index, np.uint8)).save(folder / f"f{index}.png")
    (folder / "notes.txt").write_text("ignored")
    decoded = video_io.read_video(folder)
    assert list(decoded[:, 0, 0, 0]) == [1, 2, 10]


def test_read_image_converts_grayscale_rgba_palette_and_16bit(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    image = video_io.read_image(tmp_path / "gray.png")
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 1], gray)

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red
    rgba[1, 1] = (0, 0, 255, 0)  # fully transparent blue becomes the white background
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    image = video_io.read_image(tmp_path / "rgba.png")
    assert tuple(image[0, 0]) == (255, 0, 0) and tuple(image[1, 1]) == (255, 255, 255)

    deep = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 13000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = video_io.read_image(tmp_path / "deep.png")
    expected = np.rint(deep / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(image[..., 0], expected)

    Image.fromarray(np.full((3, 3, 3), 77, np.uint8)).convert("P").save(tmp_path / "pal.gif")
    assert video_io.read_image(tmp_path / "pal.gif").shape == (3, 3, 3)


def test_read_image_of_a_video_is_its_first_frame(tmp_path: Path) -> None:
    frames = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    folder = video_io.write_video(tmp_path / "v", frames)
    np.testing.assert_array_equal(video_io.read_image(folder), frames[0])
    single = video_io.write_image(tmp_path / "one.png", frames[1])
    np.testing.assert_array_equal(video_io.read_video(single), frames[1:2])


@pytest.mark.parametrize("name", ["empty.mp4", "empty.gif", "junk.mp4", "junk.mov", "junk.gif"])
def test_corrupt_or_empty_files_raise_a_readable_value_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    content = b"" if name.startswith("empty") else np.random.default_rng(2).bytes(3000)
    if name == "junk.gif":
        content = b"GIF89a" + content
    path.write_bytes(content)
    with pytest.raises(ValueError, match="no frames could be decoded") as error:
        video_io.read_video(path)
    assert name in str(error.value)


def test_truncated_mp4_raises_value_error(tmp_path: Path) -> None:
    whole = video_io.write_video(tmp_path / "whole.mp4", smooth_frames(count=8)).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated.mp4"):
        video_io.read_video(truncated)


def test_missing_and_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        video_io.read_video(tmp_path / "missing.mp4")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        video_io.read_image(tmp_path / "missing.png")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unknown video type"):
        video_io.read_video(tmp_path / "data.csv")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(ValueError, match="no image frames"):
        video_io.read_video(tmp_path / "empty_folder")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        video_io.read_image(tmp_path / "broken.png")


def test_write_video_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        video_io.write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), np.float32))
    mixed = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]
    with pytest.raises(ValueError, match="shape"):
        video_io.write_video(tmp_path / "mixed", mixed)
    with pytest.raises(ValueError, match="cannot write"):
        video_io.write_video(tmp_path / "f.xyz", np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        video_io.write_video(tmp_path / "none.mp4", [])


def test_resize_frame_on_odd_non_square_inputs() -> None:
    frame = np.zeros((31, 57, 3), np.uint8)
    frame[:, 13:44] = 200  # the central 31x31 square is bright, the side bands dark
    resized = video_io.resize_frame(frame, 16)
    assert resized.shape == (16, 16, 3) and resized.dtype == np.uint8
    assert resized[:, 0].max() == 0  # stretched: dark bands remain at the sides
    cropped = video_io.resize_frame(frame, 16, fit="crop")
    assert cropped.shape == (16, 16, 3) and cropped.min() == 200  # only the centre survives
    assert video_io.resize_frame(frame[:, :, 0], (9, 5)).shape == (9, 5, 3)
    enlarged = video_io.resize_frame(frame, 64, fit="crop")
    assert enlarged.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="fit"):
        video_io.resize_frame(frame, 16, fit="stretch")


def test_tensor_conversions() -> None:
    frames = np.random.default_rng(3).integers(0, 256, (4, 5, 7, 3), dtype=np.uint8)
    tensor = video_io.to_tensor(frames)
    assert tensor.shape == (4, 3, 5, 7) and tensor.dtype == torch.float32
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    np.testing.assert_array_equal(video_io.from_tensor(tensor), frames)
    assert video_io.to_tensor(frames[0]).shape == (1, 3, 5, 7)
    assert video_io.from_tensor(tensor[0]).shape == (5, 7, 3)
    out_of_range = torch.tensor([-0.5, 0.5, 1.5]).view(1, 3, 1, 1)
    assert list(video_io.from_tensor(out_of_range)[0, 0, 0]) == [0, 128, 255]
    with pytest.raises(ValueError):
        video_io.from_tensor(torch.zeros(2, 4, 5, 5))


def test_frame_folder_output_keeps_frames_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    folder.mkdir()
    users_frame = folder / "000000.png"
    users_frame.write_bytes(b"the user's own picture")
    with pytest.raises(ValueError, match="did not write"):
        video_io.write_video(folder, np.zeros((2, 8, 8, 3), np.uint8))
    assert users_frame.read_bytes() == b"the user's own picture"


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames"])
def test_an_output_under_a_file_is_refused_before_writing(tmp_path: Path, name: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        video_io.check_output(blocker / name)
    with pytest.raises(ValueError, match="is a file"):
        video_io.VideoWriter(blocker / name)
    assert blocker.read_text() == "not a folder"


def test_a_video_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        video_io.check_output(tmp_path / "clip.mp4")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_an_unwritable_output_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot write"):
            video_io.check_output(locked / "out.mp4")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_closing_a_video_whose_stream_never_opened_raises_nothing_more(tmp_path: Path,
                                                                       monkeypatch) -> None:
    import av

    closed = []

    class ContainerWithoutEncoder:
        def add_stream(self, *args, **kwargs):
            raise ValueError("no libx264 here")

        def close(self):
            closed.append(True)

    monkeypatch.setattr(av, "open", lambda *args, **kwargs: ContainerWithoutEncoder())
    writer = video_io.VideoWriter(tmp_path / "clip.mp4", fps=10)
    with pytest.raises(ValueError, match="no libx264"):
        writer.write(np.zeros((8, 8, 3), np.uint8))
    writer.close()  # the one error above is all the user sees: no flush of a missing stream
    assert closed == [True]
