"""`kp-motion evaluate` end to end on tiny synthetic videos with tiny random-weight models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from model_helpers import tiny_model_config, write_tiny_model

from kp_motion.cli.main import main
from kp_motion.evaluation.i3d import InceptionI3d
from kp_motion.forecasting.checkpoint import build_model
from kp_motion.forecasting.checkpoint import save_checkpoint as save_forecaster
from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.settings import RnnSettings, VaeSettings, VrnnSettings
from kp_motion.paths import config_path

torch.set_num_threads(1)
LEARNED = ("vrnn", "rnn", "vae")
BASELINES = ("hold-last", "constant-velocity")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """A 32 px FOMM with 4-channel layers, three tiny forecasters and a random I3D."""
    folder = tmp_path_factory.mktemp("models")
    write_tiny_model(folder / "fomm", tiny_model_config("compact-64"))
    settings = {
        "vrnn": VrnnSettings(8, 8, 2, 0.1, 1.0),
        "rnn": RnnSettings(8, 1),
        "vae": VaeSettings(2, 4, 8, 2, 0.1),
    }
    for kind, model_settings in settings.items():
        save_forecaster(folder / kind, build_model(kind, model_settings), Standardizer.identity())
    torch.save(InceptionI3d().state_dict(), folder / "i3d.pt")
    return folder


def _config(tmp_path: Path, models: Path) -> Path:
    settings = yaml.safe_load(config_path("evaluate.yaml").read_text())
    settings["dataset"].update(synthetic_videos=3, synthetic_frames=12)
    settings.update(
        checkpoint=str(models / "fomm"),
        block_sizes=[2, 3],
        strip_frames=4,
        forecasters=[str(models / kind) for kind in LEARNED] + list(BASELINES),
    )
    settings["fvd"].update(input_size=32, clip_length=4, clip_stride=4)
    settings["codec"].update(videos=1, max_trials=6, preset="ultrafast")
    path = tmp_path / "evaluate.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_evaluate_end_to_end(tmp_path, tiny_models) -> None:
    output = tmp_path / "report"
    status = main(["evaluate", "--config", str(_config(tmp_path, tiny_models)),
                   "--i3d-weights", str(tiny_models / "i3d.pt"), "-o", str(output),
                   "--no-progress"])  # fmt: skip
    assert status == 0
    payload = json.loads((output / "results.json").read_text())
    records = {(r["mode"], r["k"], r["model"]): r for r in payload["records"]}
    models = (*LEARNED, *BASELINES)
    expected = {("reconstruction", None, "fomm-only"), ("reconstruction", None, "still-source")}
    for k in (2, 3):
        expected |= {("reconstruction", k, m) for m in ("fomm-only", "still-source", *models)}
        expected |= {("transfer", k, m) for m in models}
    assert set(records) == expected
    for record in records.values():
        assert record["videos"] == 3
        assert record["fvd"] is not None and record["fvd"] >= 0
        assert 0 <= record["mse"] <= 1
    # 11 driving frames: k=2 compares 8 per video, k=3 compares 6 (transfer drives 12 frames).
    assert records[("reconstruction", 2, "vrnn")]["frames"] == 3 * 8
    for model in ("fomm-only", "still-source"):  # the same frames as the forecasters'
        assert records[("reconstruction", 2, model)]["frames"] == 3 * 8
    assert records[("transfer", 3, "vrnn")]["frames"] == 3 * 12
    assert len(payload["codec"]) == 2 * (1 + len(models))
    at_rate = {(c["k"], c["stream"]): c for c in payload["codec_at_stream_rate"]}
    assert set(at_rate) == {(k, s) for k in (2, 3)
                            for s in ("every frame sent", "k of every 2k sent")}  # fmt: skip
    assert set(at_rate[(2, "k of every 2k sent")]["method_psnr"]) == set(models)
    for entry in at_rate.values():  # one codec video; H.264 encoded something at the rate asked
        assert entry["videos"] == 1 and entry["h264_kbps"] > 0
    assert at_rate[(3, "every frame sent")]["keypoint_kbps"] == pytest.approx(
        2 * at_rate[(3, "k of every 2k sent")]["keypoint_kbps"]
    )
    assert [b["sent_frames"] for b in payload["bandwidth"]] == [2, 3]
    markdown = (output / "report.md").read_text()
    assert (
        "| (input, output) frames | FOMM only | still source | VRNN | RNN | VAE | hold-last | "
        "constant-velocity |" in markdown
    )
    assert markdown.count("| (2, 2) |") >= 8 and "FVD: I3D logits" in markdown
    assert "## H.264 at the keypoint stream's bit rate" in markdown
    for name in (
        "mse_vs_horizon.png",
        "per_frame_error.png",
        "frames_transfer_k3.png",
        "results.csv",
    ):
        assert (output / name).is_file()


def test_user_errors_exit_2_with_one_line(tmp_path, tiny_models, capsys) -> None:
    config = str(_config(tmp_path, tiny_models))
    cases = [
        (["--dataset", str(tmp_path / "missing")], "dataset folder not found"),
        (["--i3d-weights", str(tmp_path / "none.pt")], "I3D weights file not found"),
        (["--forecasters", "no-such-model"], "forecaster not found: no-such-model"),
        (["--bag", "run.mcap"], "--bag needs --reference"),
        (["-k", "0"], "block_sizes must be positive"),
    ]
    for extra, message in cases:
        status = main(
            ["evaluate", "--config", config, "--no-progress", "-o", str(tmp_path / "out"), *extra]
        )
        error = capsys.readouterr().err.strip()
        assert status == 2, extra
        assert message in error and len(error.splitlines()) == 1, error


def test_models_worse_than_the_still_source_are_warned_on_stderr(
    tmp_path, monkeypatch, capsys
) -> None:
    from kp_motion.evaluation import pipeline
    from kp_motion.evaluation.report import EvaluationResult, MetricRecord

    records = [
        MetricRecord("reconstruction", 6, "fomm-only", 1, 12, 0.01, 20.0, 0.5),
        MetricRecord("reconstruction", 6, "still-source", 1, 12, 0.005, 23.0, 0.6),
        MetricRecord("reconstruction", 6, "hold-last", 1, 12, 0.002, 27.0, 0.7),
    ]
    result = EvaluationResult(records, {}, [], [], "n/a", {}, {}, ["v"])
    monkeypatch.setattr(
        pipeline, "run_evaluation", lambda *a, **k: (result, {"markdown": tmp_path / "r.md"})
    )
    assert main(["evaluate", "--no-progress", "-o", str(tmp_path)]) == 0
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        "kp-motion evaluate: warning: reconstruction, k = 6: FOMM only loses to the still source "
        "(PSNR 20.00 dB < 23.00 dB on the same 12 frames)"
    ]
