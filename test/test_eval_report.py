"""Report files (markdown, CSV, JSON, PNG) from a small hand-made result."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from kp_motion.evaluation.report import (
    EvaluationResult,
    FrameStrip,
    MetricRecord,
    format_number,
    markdown_report,
    metric_table,
    write_report,
)

MODELS = ("vrnn", "hold-last")


def _result() -> EvaluationResult:
    records = [
        MetricRecord("reconstruction", None, "fomm-only", 2, 30, 0.002, 27.0, 0.9),
        MetricRecord("reconstruction", None, "still-source", 2, 30, 0.0025, 26.0, 0.85),
    ]
    for k in (6, 12):
        records.append(MetricRecord("reconstruction", k, "fomm-only", 2, 24, 0.0021, 27.0, 0.9))
        records.append(MetricRecord("reconstruction", k, "still-source", 2, 24, 0.0026, 26, 0.8))
        for index, model in enumerate(MODELS):
            mse = 0.003 + 0.001 * index + 0.0001 * k
            records.append(
                MetricRecord(
                    "reconstruction",
                    k,
                    model,
                    2,
                    24,
                    mse,
                    25.0,
                    0.8,
                    kp_mse=1e-4 * k,
                    kp_position_mse=2e-4 * k,
                )
            )
            records.append(MetricRecord("transfer", k, model, 2, 24, mse / 2, math.inf, 0.95))
    strip = FrameStrip("reconstruction", 6, "v0", [6, 7], {
        "real": np.zeros((2, 8, 8, 3), np.uint8), "vrnn": np.full((2, 8, 8, 3), 200, np.uint8),
    }, [False, True])  # fmt: skip
    per_frame = {
        mode: {k: {m: [0.001, 0.002, 0.004] for m in MODELS} for k in (6, 12)}
        for mode in ("reconstruction", "transfer")
    }
    return EvaluationResult(
        records=records, per_frame_mse=per_frame,
        bandwidth=[{"sent_frames": 6, "withheld_frames": 6, "message_bytes": 304, "fps": 25.0,
                    "full_kbit_per_second": 60.8, "predicted_kbit_per_second": 30.4,
                    "ratio": 0.5}],
        codec=[{"k": 6, "model": "vrnn", "target_psnr": 25.0, "kbps": 41.5, "reached": 2,
                "videos": 2}],
        fvd_status="unavailable (no I3D weights given)",
        environment={"cpu": "test cpu", "cpu_count": 2, "torch_threads": 1,
                     "torch_device": "cpu", "torch_version": "x"},
        settings={"block_sizes": [6, 12]}, videos=["v0", "v1"], wall_time_s=1.5,
        strips=[strip],
    )  # fmt: skip


def test_metric_table_layout() -> None:
    lines = metric_table(_result(), "reconstruction", "mse")
    # Every cell of a row on the frames of that k: the all-frames scores are not in it.
    assert lines[0] == "| (input, output) frames | FOMM only | still source | VRNN | hold-last |"
    assert lines[2] == "| (6, 6) | 0.0021 | 0.0026 | 0.0036 | 0.0046 |"
    assert lines[3] == "| (12, 12) | 0.0021 | 0.0026 | 0.0042 | 0.0052 |"
    assert len(lines) == 4
    transfer = metric_table(_result(), "transfer", "mse")  # FOMM only is the reference there
    assert transfer[0] == "| (input, output) frames | VRNN | hold-last |" and len(transfer) == 4


def test_all_frames_scores_are_a_table_of_their_own() -> None:
    markdown = markdown_report(_result(), [])
    assert "k = 6: 24 frames of 2 videos; k = 12: 24 frames of 2 videos" in markdown
    assert "| model | frames | MSE | PSNR dB | SSIM |" in markdown
    assert "| FOMM only | 30 | 0.0020 | 27 | 0.9000 |" in markdown
    assert "| still source | 30 | 0.0025 | 26 | 0.8500 |" in markdown
    # Both forecasters (PSNR 25) lose to the still source (26) at both k; FOMM only (27) not.
    assert markdown.count("loses to the still source") == 4
    assert "reconstruction, k = 12: VRNN loses to the still source (PSNR 25.00 dB < 26.00 dB " \
           "on the same 24 frames)" in markdown


def test_format_number() -> None:
    assert format_number(None) == "n/a" and format_number(math.inf) == "inf"
    assert format_number(1.2345e-6) == "1.234e-06" and format_number(27.04) == "27.04"


def test_write_report_files(tmp_path) -> None:
    written = write_report(_result(), tmp_path / "report")
    for name in (
        "markdown",
        "csv",
        "json",
        "mse_vs_horizon",
        "per_frame_error",
        "frames_reconstruction_k6",
    ):
        assert written[name].is_file() and written[name].stat().st_size > 0, name
    for name in ("mse_vs_horizon", "per_frame_error", "frames_reconstruction_k6"):
        assert written[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = written["markdown"].read_text()
    assert "## Reconstruction (reference: the real video)" in markdown
    assert "FVD: unavailable (no I3D weights given)." in markdown
    assert "| (6, 6) | 304 | 25 | 60.8 | 30.4 | 0.5000 |" in markdown
    assert "Hardware: test cpu" in markdown and "![per_frame_error.png]" in markdown
    with written["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(_result().records)
    assert rows[0]["model"] == "fomm-only" and rows[0]["k"] == "" and rows[0]["fvd"] == ""
    payload = json.loads(written["json"].read_text())
    # records[4]: k = 6 VRNN, after the two all-frames rows, FOMM only and the still source.
    assert payload["records"][4]["kp_mse"] == pytest.approx(6e-4)
    assert any(record["psnr"] == "inf" for record in payload["records"])  # JSON has no inf
    assert payload["per_frame_mse"]["transfer"]["12"]["vrnn"] == [0.001, 0.002, 0.004]
