"""`kp-motion extract`: keypoint sequences of a dataset, in the keypoint_sequences format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import make_tiny_dataset, tiny_model_config

from kp_motion.cli.main import main
from kp_motion.data.datasets import VideoDataset
from kp_motion.data.keypoint_sequences import load_sequences
from kp_motion.data.keypoint_sets import load_keypoint_set
from kp_motion.keypoints import unpack
from kp_motion.models.checkpoint import build_models, model_id, save_checkpoint

torch.set_num_threads(1)
FRAMES = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extract")
    config = tiny_model_config()
    torch.manual_seed(0)
    kp_detector, generator = build_models(config)
    # Non-identity Jacobians, so that the Jacobian block of the values is checked too.
    with torch.no_grad():
        kp_detector.jacobian.weight.normal_(0.0, 0.01)
    checkpoint = save_checkpoint(folder / "model", config, kp_detector, generator)
    data = make_tiny_dataset(folder / "data", train_videos=3, test_videos=2, frames=FRAMES)
    return {
        "data": data,
        "checkpoint": checkpoint,
        "model_id": model_id(config, kp_detector),
        "detector": kp_detector.eval(),
    }


def test_extract_writes_sequences_with_frame_indices_and_model_id(setup, tmp_path, capsys):
    argv = ["extract", str(setup["data"]), "-o", str(tmp_path), "--no-progress"]
    assert main([*argv, "--checkpoint", str(setup["checkpoint"]), "--batch-size", "3"]) == 0
    assert f"train: 3 sequences in {tmp_path / 'train'}" in capsys.readouterr().out
    for split, count in (("train", 3), ("test", 2)):
        sequences, meta = load_sequences(tmp_path / split)
        assert [s.name for s in sequences] == [f"video{i}" for i in range(count)]
        assert meta["model_id"] == setup["model_id"]
        assert meta["split"] == split and meta["num_keypoints"] == 10
        assert meta["profile"] == "tiny-test-32" and meta["fps"] > 0
        for sequence in sequences:
            assert sequence.values.shape == (FRAMES, 60)
            assert sequence.values.dtype == np.float32
            np.testing.assert_array_equal(sequence.frame_indices, np.arange(FRAMES))
    # The values are the detector's output on the dataset's frames (batching changes nothing).
    sequences, _ = load_sequences(tmp_path / "test")
    video = VideoDataset(setup["data"], "test", size=32)[1]["video"]
    with torch.no_grad():
        expected = setup["detector"](video)
    positions, jacobians = unpack(sequences[1].values)
    np.testing.assert_allclose(positions, expected["value"].numpy(), atol=1e-5)
    np.testing.assert_allclose(jacobians, expected["jacobian"].numpy(), atol=1e-5)
    assert not np.allclose(jacobians, np.eye(2))


def test_extract_one_split_with_a_frame_limit(setup, tmp_path):
    argv = ["extract", str(setup["data"]), "-o", str(tmp_path), "--no-progress", "--split", "test"]
    assert main([*argv, "--checkpoint", str(setup["checkpoint"]), "--max-frames", "5"]) == 0
    assert not (tmp_path / "train").exists()
    sequences, _ = load_sequences(tmp_path / "test")
    assert all(s.values.shape == (5, 60) for s in sequences)


def test_extract_errors(setup, tmp_path, capsys, monkeypatch):
    data = str(setup["data"])
    assert main(["extract", data, "--checkpoint", str(tmp_path / "absent")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    argv = ["extract", data, "--checkpoint", str(setup["checkpoint"]), "--split", "val"]
    assert main([*argv, "-o", str(tmp_path)]) == 2
    assert "has no val/ folder" in capsys.readouterr().err
    # Without --checkpoint the embedded default model is used; here it is absent.
    (tmp_path / "share" / "config").mkdir(parents=True)
    monkeypatch.setenv("KP_MOTION_SHARE", str(tmp_path / "share"))
    assert main(["extract", data, "-o", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "embedded default model is missing" in error and len(error.splitlines()) == 1


def test_extract_a_keypoint_set_of_a_clips_folder(setup, tmp_path, capsys):
    clips = setup["data"] / "test"  # a plain folder of clips (here: two videos)
    argv = ["extract", str(clips), "--set", str(tmp_path / "set.npz"), "--no-progress"]
    assert main([*argv, "--checkpoint", str(setup["checkpoint"]), "--batch-size", "3"]) == 0
    assert f"2 clips, {2 * FRAMES} frames" in capsys.readouterr().out
    keypoint_set = load_keypoint_set(tmp_path / "set.npz")
    assert keypoint_set.detector == {"model_id": setup["model_id"], "model": "tiny-test-32"}
    assert [clip.name for clip in keypoint_set.clips] == ["video0", "video1"]
    # The values are the detector's output on the clip's frames at the model's size.
    video = VideoDataset(setup["data"], "test", size=32)[1]["video"]
    with torch.no_grad():
        expected = setup["detector"](video)
    positions, jacobians = unpack(keypoint_set.clips[1].values)
    np.testing.assert_allclose(positions, expected["value"].numpy(), atol=1e-5)
    np.testing.assert_allclose(jacobians, expected["jacobian"].numpy(), atol=1e-5)


def test_extract_set_errors_come_before_the_model_loads(setup, tmp_path, capsys):
    clips, absent_model = str(setup["data"] / "test"), str(tmp_path / "absent")
    cases = [
        ([clips, "--set", str(tmp_path / "set.txt")], "--set must name a .npz file"),
        ([str(tmp_path / "nowhere"), "--set", str(tmp_path / "s.npz")], "clips folder not found"),
        ([clips, "--set", str(tmp_path / "no" / "s.npz")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(["extract", *argv, "--checkpoint", absent_model]) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
