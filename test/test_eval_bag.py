"""`kp-motion evaluate --bag`: rendered images read back from a rosbag2 bag (mcap and sqlite3),
aligned with the reference video and scored; no rclpy needed (bags written with rosbags)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from kp_motion.cli.main import main
from kp_motion.data.video_io import write_video

pytest.importorskip("rosbags")

RENDERED = "/kp_motion/rendered"
KEYPOINTS = "/kp_motion/keypoints"
SIZE = 64
FRAMES = 8
BASE_STAMP_NS = 1_700_000_000_000_000_000


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


def _reference_frames() -> np.ndarray:
    """Smooth textured frames in [20, 200], so that +-20 offsets never clip."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    frames = []
    for t in range(FRAMES):
        red = 110 + 90 * np.sin((cols + 3 * t) / 7.0)
        green = 110 + 90 * np.cos((rows - 2 * t) / 9.0)
        blue = 110 + 90 * np.sin((rows + cols + t) / 11.0)
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.rint(frames), 20, 200).astype(np.uint8)


def _write_reference(tmp_path: Path, frames: np.ndarray) -> Path:
    # A folder of PNG frames: lossless, so an exact copy really scores MSE 0.
    return write_video(tmp_path / "reference", frames, fps=10)


def _write_bag(path: Path, storage: str, frames, encoding="rgb8", keypoints=None, pad=0,
               receive_order=None, topic=RENDERED) -> Path:
    """Images with header stamps BASE + i ms, written in `receive_order` (default: in order);
    keypoints: [(frame_index, origin)] per image, stamped like the image it rendered."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from kp_motion.ros.bag import make_typestore

    store = make_typestore()
    types = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3

    def header(row: int):
        sec, nanosec = divmod(BASE_STAMP_NS + row * 1_000_000, 1_000_000_000)
        return types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id="cam"
        )

    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
        images = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=store)
        keypoint_connection = None
        if keypoints is not None:
            keypoint_connection = writer.add_connection(
                KEYPOINTS, "kp_motion/msg/Keypoint60", typestore=store
            )
        order = receive_order if receive_order is not None else range(len(frames))
        for received, row in enumerate(order):
            stored = frames[row][..., ::-1] if encoding == "bgr8" else frames[row]
            padded = np.concatenate(
                [stored.reshape(SIZE, -1), np.full((SIZE, pad), 99, np.uint8)], axis=1
            )
            message = types["sensor_msgs/msg/Image"](
                header=header(row), height=SIZE, width=SIZE, encoding=encoding,
                is_bigendian=0, step=padded.shape[1], data=padded.reshape(-1),
            )
            when = BASE_STAMP_NS + received * 1_000_000
            writer.write(images, when, store.serialize_cdr(message, message.__msgtype__))
            if keypoint_connection is not None and keypoints[row] is not None:
                frame_index, origin = keypoints[row]
                keypoint = types["kp_motion/msg/Keypoint60"](
                    header=header(row), frame_index=frame_index, origin=origin,
                    model_id="test", values=np.zeros(60, np.float32),
                )
                writer.write(keypoint_connection, when,
                             store.serialize_cdr(keypoint, keypoint.__msgtype__))
    return path


def _evaluate(tmp_path: Path, bag: Path, reference: Path, *extra: str) -> dict:
    output = tmp_path / "report"
    status = main(["evaluate", "--bag", str(bag), "--reference", str(reference),
                   "-o", str(output), *extra])
    assert status == 0
    assert (output / "report.md").is_file()
    return json.loads((output / "metrics.json").read_text())


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_an_exact_copy_scores_zero_error_in_stamp_order(tmp_path, storage, capsys):
    frames = _reference_frames()
    reference = _write_reference(tmp_path, frames)
    # Received out of order: the reader must sort by header stamp.
    bag = _write_bag(tmp_path / "bag", storage, frames, receive_order=[2, 0, 1, 3, 5, 4, 7, 6])
    result = _evaluate(tmp_path, bag, reference)
    summary = result["summary"]
    assert summary["frames"] == FRAMES
    assert summary["mse"] == 0.0 and summary["psnr"] == "inf"
    assert summary["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result["fvd_status"].startswith("unavailable")
    assert result["alignment"].startswith("frame i of the bag")
    assert [row["bag_frame"] for row in result["per_frame"]] == list(range(FRAMES))
    assert "8 frames: MSE 0" in capsys.readouterr().out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_constant_offset_gives_its_squared_error(tmp_path, storage):
    frames = _reference_frames()
    reference = _write_reference(tmp_path, frames)
    bag = _write_bag(tmp_path / "bag", storage, frames + np.uint8(10))
    result = _evaluate(tmp_path, bag, reference)
    expected_mse = (10 / 255) ** 2
    assert result["summary"]["mse"] == pytest.approx(expected_mse, rel=1e-5)
    assert result["summary"]["psnr"] == pytest.approx(10 * math.log10(1 / expected_mse), rel=1e-5)
    assert 0.5 < result["summary"]["ssim"] < 1.0
    with (tmp_path / "report" / "frames.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == FRAMES
    assert float(rows[3]["mse"]) == pytest.approx(expected_mse, rel=1e-5)


def test_keypoints_align_by_frame_index_and_split_by_origin(tmp_path):
    frames = _reference_frames()
    reference = _write_reference(tmp_path, frames)
    # The bag renders reference frames 0, 1, 2, 4, 5, 6, 7 (frame 3 lost) plus one image whose
    # keypoint message is missing: aligning by order would compare the wrong frames.
    indices = [0, 1, 2, 4, 5, 6, 7, 7]
    origins = [0, 0, 1, 1, 2, 2, 0, None]
    offsets = {0: 0, 1: 10, 2: 20}
    rendered = np.stack([
        frames[index] + np.uint8(offsets[origin] if origin is not None else 30)
        for index, origin in zip(indices, origins, strict=True)
    ])
    keypoints = [None if origin is None else (index, origin)
                 for index, origin in zip(indices, origins, strict=True)]
    bag = _write_bag(tmp_path / "bag", "mcap", rendered, keypoints=keypoints)
    result = _evaluate(tmp_path, bag, reference)
    assert result["alignment"].startswith("Keypoint60 frame_index")
    assert result["summary"]["frames"] == 7
    assert [row["reference_frame"] for row in result["per_frame"]] == [0, 1, 2, 4, 5, 6, 7]
    split = result["by_origin"]
    assert {name: values["frames"] for name, values in split.items()} == {
        "detected": 3, "predicted": 2, "concealed": 2}
    assert split["detected"]["mse"] == 0.0
    assert split["predicted"]["mse"] == pytest.approx((10 / 255) ** 2, rel=1e-5)
    assert split["concealed"]["mse"] == pytest.approx((20 / 255) ** 2, rel=1e-5)
    expected_mean = (2 * (10 / 255) ** 2 + 2 * (20 / 255) ** 2) / 7
    assert result["summary"]["mse"] == pytest.approx(expected_mean, rel=1e-5)
    assert any("1 rendered frames have no Keypoint60" in note for note in result["notes"])
    assert "| concealed | 2 |" in (tmp_path / "report" / "report.md").read_text()


def test_bgr8_images_with_padded_rows_decode_to_rgb(tmp_path):
    frames = _reference_frames()
    reference = _write_reference(tmp_path, frames)
    bag = _write_bag(tmp_path / "bag", "sqlite3", frames, encoding="bgr8", pad=5)
    assert _evaluate(tmp_path, bag, reference)["summary"]["mse"] == 0.0


def test_a_reference_of_another_size_is_resized_to_the_rendering(tmp_path):
    colours = np.arange(FRAMES, dtype=np.uint8)[:, None, None, None] * 25 + 10
    rendered = np.broadcast_to(colours, (FRAMES, SIZE, SIZE, 3)).copy()
    large = np.broadcast_to(colours, (FRAMES, 96, 80, 3)).copy()
    reference = _write_reference(tmp_path, large)
    bag = _write_bag(tmp_path / "bag", "mcap", rendered[:6])
    result = _evaluate(tmp_path, bag, reference)
    assert result["frame_size"] == [SIZE, SIZE] and result["summary"]["frames"] == 6
    assert result["summary"]["mse"] == 0.0  # constant frames survive resizing exactly
    assert any("6 rendered frames and the reference 8" in note for note in result["notes"])


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    frames = _reference_frames()
    reference = _write_reference(tmp_path, frames)
    bag = _write_bag(tmp_path / "bag", "mcap", frames[:2])
    empty_bag = _write_bag(tmp_path / "empty", "mcap", frames[:0])
    (tmp_path / "not_a_bag").mkdir()
    (tmp_path / "no_frames").mkdir()
    cases = [
        (["--bag", str(tmp_path / "missing"), "--reference", str(reference)], "bag not found"),
        (["--bag", str(tmp_path / "not_a_bag"), "--reference", str(reference)],
         "not a rosbag2 folder"),
        (["--bag", str(bag), "--reference", str(reference), "--bag-topic", "/other"],
         "topic /other is not in the bag"),
        (["--bag", str(empty_bag), "--reference", str(reference)], "holds no images"),
        (["--bag", str(bag), "--reference", str(tmp_path / "nothing.mp4")],
         "reference video not found"),
        (["--bag", str(bag), "--reference", str(tmp_path / "no_frames")], "no image frames"),
        (["--bag", str(bag)], "--bag needs --reference"),
        (["--reference", str(reference)], "only apply with --bag"),
    ]
    for extra, message in cases:
        status = main(["evaluate", "-o", str(tmp_path / "out"), *extra])
        error = capsys.readouterr().err.strip()
        assert status == 2, extra
        assert message in error and len(error.splitlines()) == 1, (extra, error)
