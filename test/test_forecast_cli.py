"""`kp-motion train forecaster` on a tiny sequence folder, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from forecast_helpers import single_thread

from kp_motion.cli.main import main
from kp_motion.data.keypoint_sequences import save_sequences
from kp_motion.forecasting.checkpoint import load_model
from kp_motion.forecasting.synthetic import synthetic_sequences

single_thread()

META = {"model_id": "det-1", "dataset": "synthetic", "split": "train", "fps": 25,
        "num_keypoints": 10}  # fmt: skip


@pytest.fixture
def sequence_folder(tmp_path):
    sequences = synthetic_sequences(4, 40, seed=0)
    return save_sequences(
        tmp_path / "seq",
        {f"clip{i}": (values, np.arange(len(values))) for i, values in enumerate(sequences)},
        META,
    )


def test_trains_all_models_and_scores_them(sequence_folder, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["train", "forecaster", "--data", str(sequence_folder), "--model", "all",
                   "--out", str(out), "--steps", "3", "--seed", "1", "--no-progress"])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "validating on 1 held-out sequence(s)" in printed
    for kind in ("vrnn", "rnn", "vae"):
        model, _, manifest = load_model(out / kind)
        assert model.kind == kind
        assert manifest["training"]["detector_model_id"] == "det-1"
        assert manifest["training"]["seed"] == 1
    report = yaml.safe_load((out / "evaluation.yaml").read_text())
    models = {row["model"] for row in report["protocol"]}
    assert models == {"vrnn", "rnn", "vae", "hold-last", "constant-velocity"}
    # 40-frame validation sequences: k = 5, 6, 12, 15 all fit (2k <= 40).
    assert sorted({row["k"] for row in report["protocol"]}) == [5, 6, 12, 15]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "{tmp}/missing"], "not found"),
        (["--data", "{seq}", "--steps", "0"], "--steps must be >= 1"),
        (["--data", "{seq}", "--config", "{tmp}/bad.yaml"], "unknown setting"),
    ],
)
def test_user_errors_exit_2_with_one_line(arguments, message, sequence_folder, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("rnn: {hidden_size: 8, num_layers: 1, colour: red}\n")
    filled = [a.format(tmp=tmp_path, seq=sequence_folder) for a in arguments]
    status = main(["train", "forecaster", *filled, "--out", str(tmp_path / "out"), "--no-progress"])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_corrupt_sequence_file_is_a_clean_error(sequence_folder, tmp_path, capsys):
    (sequence_folder / "clip0.npz").write_bytes(b"\x00" * 10)
    status = main(["train", "forecaster", "--data", str(sequence_folder), "--out",
                   str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert status == 2
    assert "clip0.npz" in capsys.readouterr().err


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "forecaster", "--help"])
    assert exit_info.value.code == 0
    assert "--model" in capsys.readouterr().out


def test_test_data_is_scored_separately_and_must_share_the_detector(
    sequence_folder, tmp_path, capsys
):
    test_sequences = synthetic_sequences(2, 40, seed=7)
    test_folder = save_sequences(
        tmp_path / "test_seq",
        {f"test{i}": (values, np.arange(len(values))) for i, values in enumerate(test_sequences)},
        {**META, "split": "test"},
    )
    out = tmp_path / "out"
    status = main(["train", "forecaster", "--data", str(sequence_folder), "--model", "rnn",
                   "--test-data", str(test_folder), "--out", str(out), "--steps", "2",
                   "--no-progress"])  # fmt: skip
    assert status == 0
    assert "test data (2 sequence(s)" in capsys.readouterr().out
    report = yaml.safe_load((out / "evaluation.yaml").read_text())
    assert report["test"]["sequences"] == 2
    assert {row["model"] for row in report["test"]["protocol"]} == {
        "rnn", "hold-last", "constant-velocity"}  # fmt: skip
    # Test scores differ from validation scores: other sequences.
    assert report["test"]["protocol"] != report["protocol"]

    other = save_sequences(
        tmp_path / "other_seq",
        {"x": (test_sequences[0], np.arange(40))},
        {**META, "model_id": "det-2"},
    )
    status = main(["train", "forecaster", "--data", str(sequence_folder), "--model", "rnn",
                   "--test-data", str(other), "--out", str(tmp_path / "out2"),
                   "--steps", "1", "--no-progress"])  # fmt: skip
    assert status == 2
    assert "--test-data keypoints come from detector 'det-2'" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists(), "nothing is trained when the test data is wrong"
