"""ONNX export: detector.onnx and renderer.onnx in onnxruntime equal PyTorch to 1e-4."""

from __future__ import annotations

import pytest
import torch
from test_models_fast_render import frames, small_models

from kp_motion.cli.main import main
from kp_motion.models import onnx_export

for optional in ("onnxruntime", "onnx"):
    pytest.importorskip(
        optional, reason=f"{optional} is not installed (optional: pip install 'kp-motion[onnx]')"
    )

TOLERANCE = 1e-4


@pytest.mark.parametrize("warped_skips", [False, True])
def test_onnx_detector_and_renderer_equal_pytorch(tmp_path, warped_skips):
    config, kp_detector, generator = small_models(warped_skips=warped_skips)
    paths = onnx_export.export_models(config, kp_detector, generator, tmp_path)
    source, driving = frames(1, 1), frames(3, 2)  # a batch other than the traced one
    with torch.no_grad():
        kp_driving = kp_detector(driving)
        cache = generator.encode_source(source, kp_detector(source))
        expected = generator.render(cache, kp_driving, full_outputs=False)["prediction"]
    detected = onnx_export.OnnxDetector(paths["detector"], threads=1)(driving)
    for key in ("value", "jacobian"):
        assert (detected[key] - kp_driving[key]).abs().max() < TOLERANCE, key
    renderer = onnx_export.OnnxRenderer(paths["renderer"], generator, threads=1)
    rendered = renderer.render(cache, kp_driving)
    assert rendered.shape == expected.shape
    assert (rendered - expected).abs().max() < TOLERANCE
    # The guard runs before onnxruntime, as in the generator: a singular Jacobian is repaired.
    broken = {"value": kp_driving["value"], "jacobian": torch.zeros_like(kp_driving["jacobian"])}
    assert torch.isfinite(renderer.render(cache, broken)).all()
    assert renderer.guard.jacobians > 0


def test_renderer_of_another_model_is_refused(tmp_path):
    config, kp_detector, generator = small_models()
    paths = onnx_export.export_models(config, kp_detector, generator, tmp_path)
    _, _, skipping_generator = small_models(warped_skips=True)
    with pytest.raises(ValueError, match="do not fit this generator"):
        onnx_export.OnnxRenderer(paths["renderer"], skipping_generator)


def test_export_cli_writes_and_checks_the_files(tmp_path, capsys):
    folder = shared_reference_fixture()
    output = tmp_path / "onnx"
    options = ["export", "-o", str(output), "--reference-checkpoint",
               str(folder / "checkpoint.pth.tar"), "--reference-config",
               str(folder / "config.yaml")]  # fmt: skip
    assert main(options) == 0
    printed = capsys.readouterr().out
    assert (output / "detector.onnx").is_file() and (output / "renderer.onnx").is_file()
    prediction_difference = float(printed.split("prediction ")[1].split()[0].rstrip(","))
    assert prediction_difference < TOLERANCE
    # A second export into the same folder is refused before anything is loaded.
    assert main(options) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "exists already" in error[0]


def test_export_without_onnx_says_what_to_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "onnx" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["export", "-o", str(tmp_path / "onnx")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "pip install 'kp-motion[onnx]'" in error[0]
    assert not (tmp_path / "onnx").exists()


def shared_reference_fixture():
    from conftest import shared_path

    return shared_path("fixtures/reference-fomm/tiny-64")
