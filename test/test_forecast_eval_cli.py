"""`kp-motion forecast-eval` end to end on a tiny keypoint file, its JSON contract, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from forecast_helpers import single_thread

from kp_motion.cli.main import main
from kp_motion.data.keypoint_sets import save_keypoint_set
from kp_motion.forecasting.checkpoint import forecaster_set_members
from kp_motion.forecasting.synthetic import synthetic_sequences

single_thread()


@pytest.fixture
def tiny_npz(tmp_path):
    clips = synthetic_sequences(3, 30, seed=4)
    names = ["id00001#a.mp4", "id00001#b.mp4", "id00002#c.mp4"]
    return save_keypoint_set(tmp_path / "tiny.npz", dict(zip(names, clips, strict=True)))


def test_scores_the_default_set_per_the_contract(tiny_npz, tmp_path, capsys):
    out = tmp_path / "scores.json"
    status = main(["forecast-eval", "--keypoints", str(tiny_npz), "--k", "6", "12",
                   "--json", str(out), "--samples", "2", "--no-progress"])  # fmt: skip
    assert status == 0
    scores = json.loads(out.read_text())
    shipped = set(forecaster_set_members("vox-256"))
    expected_models = shipped | {"hold-last", "constant-velocity", "vrnn-sample-mean"}
    assert set(scores["k"]) == {"6", "12"}
    for k, blocks in (("6", 2), ("12", 1)):
        assert set(scores["k"][k]) == expected_models
        for entry in scores["k"][k].values():
            assert set(entry) == {"all", "positions", "jacobians", "frames"}
            assert entry["frames"] == 3 * blocks * int(k)
            pooled = (20 * entry["positions"] + 40 * entry["jacobians"]) / 60
            assert entry["all"] == pytest.approx(pooled)
        assert scores["oracle"][k]["all"] < scores["k"][k]["hold-last"]["all"]
    printed = capsys.readouterr().out
    assert "hold-last" in printed and "oracle" in printed


def test_a_bad_file_fails_in_one_line_before_any_work(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, names=np.array(["id00001#a"]), lengths=np.array([5]))
    result = subprocess.run(
        [sys.executable, "-m", "kp_motion.cli.main", "forecast-eval", "--keypoints", str(bad),
         "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing array(s) value, jacobian" in lines[0]
    assert not (tmp_path / "out.json").exists()


def test_clips_too_short_for_k_are_an_error(tiny_npz, capsys):
    assert main(["forecast-eval", "--keypoints", str(tiny_npz), "--k", "20"]) == 2
    assert "no clip has the 2k frames" in capsys.readouterr().err
