"""`kp-motion train forecaster --keypoints --cross-validate` end to end on a tiny keypoint set:
one fold per identity, the report (table, plot, JSON), the final set; and its input errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from forecast_helpers import single_thread, tiny_settings

from kp_motion import config as config_io
from kp_motion.cli.main import main
from kp_motion.data.keypoint_sets import save_keypoint_set
from kp_motion.forecasting import forecaster_set_members
from kp_motion.forecasting.closed_loop import ORACLE_NAME
from kp_motion.forecasting.settings import LEARNED_KINDS, LINEAR_KINDS
from kp_motion.forecasting.synthetic import synthetic_sequences

single_thread()


def test_cross_validates_by_identity_then_trains_the_set(tmp_path, capsys):
    settings = tiny_settings(closed_loop_weight=1.0, closed_loop_k=[4], val_fraction=0.5)
    settings.direct_linear = dataclasses.replace(settings.direct_linear, horizon=6)
    config = tmp_path / "forecaster.yaml"
    config_io.save(settings, config)
    names = ["id00001#a", "id00001#b", "id00002#c", "id00002#d"]
    keypoints = save_keypoint_set(
        tmp_path / "set.npz", dict(zip(names, synthetic_sequences(4, 40, seed=5), strict=True))
    )
    out = tmp_path / "out"
    status = main(["train", "forecaster", "--keypoints", str(keypoints), "--config", str(config),
                   "--model", "all", "--cross-validate", "--steps", "2", "--out", str(out),
                   "--detector", "test-detector", "--no-progress"])  # fmt: skip
    assert status == 0
    report = json.loads((out / "report" / "crossval.json").read_text())
    assert set(report["per_fold_all_mse"]) == {"id00001", "id00002"}
    scores = report["scores"]
    extra = {"vrnn-sample-mean", "hold-last", "constant-velocity", ORACLE_NAME}
    for k in ("4", "6"):
        assert set(scores[k]) == set(LEARNED_KINDS + LINEAR_KINDS) | extra
        # Pooled over both folds: every 2k-frame block of the 4 clips of 40 frames.
        assert scores[k]["hold-last"]["frames"] == 4 * (40 // (2 * int(k))) * int(k)
        assert len(scores[k]["direct-linear"]["per_step"]) == int(k)
    assert (out / "report" / "crossval-per-step.png").stat().st_size > 0
    assert "| 4 | direct-linear |" in (out / "report" / "crossval-table.md").read_text()
    members = forecaster_set_members(out)
    assert set(members) == set(LEARNED_KINDS + LINEAR_KINDS)
    assert "hold-last" in capsys.readouterr().out


def test_excluded_identity_and_the_sets_detector_are_recorded(tmp_path, capsys):
    config = tmp_path / "forecaster.yaml"
    config_io.save(tiny_settings(val_fraction=0.5), config)
    names = ["id00001#a", "id00002#b", "id00002#c", "id00003#d"]
    keypoints = save_keypoint_set(
        tmp_path / "set.npz",
        dict(zip(names, synthetic_sequences(4, 30, seed=6), strict=True)),
        {"model_id": "0123456789abcdef", "model": "face-128"},
    )
    out = tmp_path / "out"
    base = ["train", "forecaster", "--keypoints", str(keypoints), "--config", str(config),
            "--steps", "2", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main([*base, "--model", "linear-ar", "--exclude-identity", "id00002"]) == 0
    assert "2 clips, 60 frames of id00001, id00003" in capsys.readouterr().out
    manifest = config_io.load_yaml(out / "linear-ar" / "forecaster.yaml")
    assert manifest["training"]["detector_model_id"] == "0123456789abcdef"
    assert manifest["training"]["detector"] == "face-128"
    assert manifest["training"]["identities"] == ["id00001", "id00003"]
    assert manifest["training"]["excluded_identities"] == ["id00002"]
    assert manifest["training"]["train_clips"] == 2
    assert main([*base, "--model", "linear-ar", "--exclude-identity", "id00009"]) == 2
    error = capsys.readouterr().err
    assert "--exclude-identity" in error and "no clips of identity id00009" in error
    assert main(["train", "forecaster", "--data", str(tmp_path), "--out", str(out),
                 "--exclude-identity", "id00001"]) == 2  # fmt: skip
    assert "need --keypoints" in capsys.readouterr().err


def test_keypoint_set_errors_come_before_training(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, names=np.array(["id00001#a"]), lengths=np.array([3]))
    args = ["train", "forecaster", "--keypoints", str(bad), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "missing array(s)" in capsys.readouterr().err
    one_person = save_keypoint_set(
        tmp_path / "one.npz", {"id00001#a": synthetic_sequences(1, 30, seed=0)[0]}
    )
    args = ["train", "forecaster", "--keypoints", str(one_person), "--cross-validate",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2
    assert "needs >= 2 identities" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
