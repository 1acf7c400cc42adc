"""`kp-motion bandwidth` end to end on a tiny keypoint file: the JSON contract, rates and errors
checked by hand on the simplest points, the report files, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kp_motion.cli.main import main
from kp_motion.data.keypoint_sets import save_keypoint_set
from kp_motion.forecasting.synthetic import synthetic_sequences
from kp_motion.stream import wire

FPS = 25.0
THRESHOLD = 1e-3
POINT_KEYS = {"policy", "wire", "forecaster", "m", "n", "threshold", "max_gap",
              "payload_bytes_per_second", "wire_bytes_per_second", "mse_all", "mse_predicted"}


@pytest.fixture
def clips():
    return synthetic_sequences(3, 30, seed=4, noise_std=0.002)


@pytest.fixture
def tiny_npz(tmp_path, clips):
    names = ["id00001#a.mp4", "id00001#b.mp4", "id00002#c.mp4"]
    return save_keypoint_set(tmp_path / "tiny.npz", dict(zip(names, clips, strict=True)))


def test_bandwidth_end_to_end_per_the_contract(tiny_npz, clips, tmp_path):
    out, report = tmp_path / "rd.json", tmp_path / "report"
    status = main(["bandwidth", "--keypoints", str(tiny_npz), "--fps", str(FPS),
                   "--json", str(out), "--report", str(report), "--forecasters", "hold-last",
                   "--max-m", "2", "--thresholds", str(THRESHOLD), "--max-gaps", "10",
                   "--no-progress"])  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    assert set(result) == {"every_frame", "points"}
    float32_bytes = wire.payload_bytes(wire.FLOAT32)
    assert result["every_frame"] == {"payload_bytes_per_second": float32_bytes * FPS}
    points = result["points"]
    assert len(points) == 2 * (2 + 1)  # per wire: M = N = 1, 2 and one predictive point
    assert all(set(p) == POINT_KEYS for p in points)

    # Fixed M = N = 1 over float32: every other frame sent, each withheld frame held-last.
    fixed = next(p for p in points if p["policy"] == "fixed" and p["wire"] == "float32"
                 and p["m"] == 1)
    assert fixed["payload_bytes_per_second"] == pytest.approx(0.5 * FPS * float32_bytes)
    assert fixed["wire_bytes_per_second"] == pytest.approx(
        0.5 * FPS * (float32_bytes + wire.TRANSPORT_OVERHEAD_BYTES))
    errors = [(clip[1::2].astype(np.float64) - clip[0::2]) ** 2 for clip in clips]
    assert fixed["mse_predicted"] == pytest.approx(np.mean(np.concatenate(errors)))
    assert fixed["mse_all"] == pytest.approx(fixed["mse_predicted"] / 2)

    for predictive in (p for p in points if p["policy"] == "predictive"):
        assert predictive["m"] is None and predictive["max_gap"] == 10
        # Every forecast frame is within the threshold, so their pooled MSE is too.
        assert predictive["mse_predicted"] <= THRESHOLD
        assert predictive["payload_bytes_per_second"] < FPS * wire.payload_bytes(
            predictive["wire"])
    assert (report / "rate-distortion.md").is_file() and (report / "rate-distortion.png").is_file()
    assert "M = N = 2" in (report / "rate-distortion.md").read_text()


def test_a_bad_file_fails_in_one_line_before_any_work(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, names=np.array(["id00001#a"]), lengths=np.array([5]))
    result = subprocess.run(
        [sys.executable, "-m", "kp_motion.cli.main", "bandwidth", "--keypoints", str(bad),
         "--fps", "25", "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing array(s) value, jacobian" in lines[0]
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--fps", "0", "--fps must be positive"),
    ("--wires", "float16", "unknown wire float16"),
    ("--forecasters", "nope", "unknown forecaster 'nope'"),
])  # fmt: skip
def test_bad_options_are_one_line_errors(tiny_npz, option, value, message, capsys):
    assert main(["bandwidth", "--keypoints", str(tiny_npz), option, value, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
