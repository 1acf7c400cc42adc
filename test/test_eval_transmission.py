"""`kp-motion evaluate --transmission`: what the receiver shows under a transmission policy,
rendered and scored against FOMM with every true keypoint. A fake renderer whose frame is
filled with the first keypoint's x value makes every error computable by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_helpers import tiny_model_config, write_tiny_model

from kp_motion.cli.main import main
from kp_motion.evaluation.transmission import (
    PolicyTally,
    parse_policy,
    policy_row,
    score_video,
)
from kp_motion.forecasting.baselines import HoldLastForecaster, rest_frame
from kp_motion.stream.wire import TRANSPORT_OVERHEAD_BYTES, payload_bytes

torch.set_num_threads(1)
SIZE, FPS, FRAMES = 12, 10.0, 8


class FillAnimator:
    """Renders a frame filled with keypoint x0."""

    device = torch.device("cpu")

    def set_source(self, source: torch.Tensor) -> None:
        self.source = source

    def render(self, keypoints: dict) -> dict[str, torch.Tensor]:
        first_x = keypoints["value"][:, 0, 0].float()
        return {"prediction": first_x[:, None, None, None].expand(-1, 3, SIZE, SIZE).clone()}


def _rows(policies: list[str]) -> list[dict]:
    truth = np.tile(rest_frame(), (FRAMES, 1))
    truth[:, 0] = np.arange(FRAMES) / 10  # x0 of frame t is t / 10: each step changes it 0.1
    tallies = {parse_policy(text, "hold-last"): PolicyTally() for text in policies}
    score_video(FillAnimator(), torch.zeros(1, 3, SIZE, SIZE), truth, FPS, False,
                {"hold-last": HoldLastForecaster()}, tallies, 0.0, 0)
    return [policy_row(setting, tally) for setting, tally in tallies.items()]


def test_fixed_and_predictive_policies_scored_by_hand():
    fixed, predictive = _rows(["fixed:1:1", "predictive:1e-3:4"])
    # fixed 1/1: odd frames show the previous frame (hold-last), 0.1 off in x0.
    assert fixed["policy"] == "fixed:1:1:float32" and fixed["messages"] == 4
    assert fixed["forecast_share"] == 0.5
    assert fixed["mse"] == pytest.approx(4 * 0.1**2 / FRAMES)
    assert fixed["keypoint_mse"] == pytest.approx(4 * 0.1**2 / (FRAMES * 60))
    seconds = FRAMES / FPS
    assert fixed["payload_bytes_per_second"] == pytest.approx(4 * payload_bytes("float32")
                                                              / seconds)
    assert fixed["wire_bytes_per_second"] == pytest.approx(
        4 * (payload_bytes("float32") + TRANSPORT_OVERHEAD_BYTES) / seconds)
    assert fixed["psnr"] == pytest.approx(10 * np.log10(1 / fixed["mse"]))
    # predictive, threshold 1e-3 over the 60 values: a frame k steps after the last sent one
    # is off by (0.1 k)^2 / 60, sent from k = 3 (1.5e-3); frames 0 and 4 are refreshes.
    # Sent: 0, 3, 4, 7; shown off by 0.1 (frames 1, 5) and 0.2 (frames 2, 6).
    assert predictive["messages"] == 4 and predictive["forecast_share"] == 0.5
    assert predictive["mse"] == pytest.approx(2 * (0.1**2 + 0.2**2) / FRAMES)


def test_a_policy_that_sends_every_frame_matches_fomm_exactly():
    (row,) = _rows(["fixed:1:0"])
    assert row["mse"] == 0 and row["psnr"] is None and row["ssim"] == pytest.approx(1.0)
    assert row["forecast_share"] == 0 and row["messages"] == FRAMES


@pytest.mark.parametrize("text", ["fixed:0:1", "fixed:1", "predictive:-1:4", "predictive:1:0",
                                  "fixed:1:1:json", "sometimes:1:1", "fixed:a:1"])
def test_bad_policies_are_named(text):
    with pytest.raises(ValueError, match="transmission policy|needs M"):
        parse_policy(text, "hold-last")


@pytest.fixture(scope="module")
def tiny_fomm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "fomm"
    write_tiny_model(folder, tiny_model_config("compact-64"))
    return folder


def test_evaluate_transmission_end_to_end(tmp_path, tiny_fomm, capsys):
    output = tmp_path / "out"
    status = main(["evaluate", "--dataset", "synthetic", "--max-videos", "1", "--max-frames",
                   "9", "--checkpoint", str(tiny_fomm), "--forecasters", "hold-last",
                   "--transmission", "fixed:2:2", "predictive:1e-4:4:compact",
                   "--drop-probability", "0.2", "--no-progress", "-o", str(output)])
    assert status == 0, capsys.readouterr().err
    report = json.loads((output / "transmission.json").read_text())
    assert len(report["videos"]) == 1 and report["drop_probability"] == 0.2
    fixed, predictive = report["policies"]
    assert fixed["policy"] == "fixed:2:2:float32" and fixed["frames"] == 8
    assert fixed["messages"] == 4  # frames 0, 1, 4, 5 (lost or not, they were sent)
    assert predictive["policy"] == "predictive:0.0001:4:compact"
    assert predictive["messages"] >= 2  # the refreshes 0 and 4 at least
    for row in (fixed, predictive):
        assert row["mse"] >= 0 and 0 < row["ssim"] <= 1 and row["payload_bytes_per_second"] > 0
    assert "fixed:2:2:float32" in (output / "transmission.md").read_text()


def test_bad_transmission_options_exit_2_before_loading(tmp_path, capsys):
    cases = [(["--transmission", "fixed:1"], "transmission policy 'fixed:1'"),
             (["--transmission", "fixed:1:1", "--drop-probability", "1.5"], "drop-probability"),
             (["--drop-probability", "0.1"], "only apply with --transmission")]
    for extra, message in cases:
        status = main(["evaluate", "--checkpoint", str(tmp_path / "missing"), "--no-progress",
                       "-o", str(tmp_path / "out"), *extra])
        error = capsys.readouterr().err.strip()
        assert status == 2 and message in error and len(error.splitlines()) == 1, error
    assert not (tmp_path / "out").exists()
