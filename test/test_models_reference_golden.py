"""Equal to the FOMM reference code on its golden outputs (../shared/fixtures/reference-fomm).

Each fixture folder holds a config in the reference's own YAML format, a seeded random
checkpoint in the reference's .pth.tar layout, 64 x 64 input frames, and what the reference
computed from them: keypoints, and rendered frames in absolute and relative motion with
grid_sample's align_corners false (the reference on PyTorch >= 1.3) and true (PyTorch 1.0).
The models are loaded by load_reference_checkpoint, the loader of
`kp-motion animate --reference-checkpoint`, and driven by the Animator the CLI uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import shared_path
from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.models import Animator
from kp_motion.models.checkpoint import load_reference_checkpoint
from kp_motion.models.reference_config import resolve_model_config

FIXTURES = ("tiny-64", "tiny-64-single-jacobian")
NUM_DRIVING = 4
TOLERANCE = 1e-4


def fixture_folder(name: str):
    return shared_path(f"fixtures/reference-fomm/{name}")


def read_frame(path) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1], as the fixtures' README reads its PNGs."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def load(name: str, align_corners: bool):
    folder = fixture_folder(name)
    config, kp_detector, generator = load_reference_checkpoint(
        folder / "checkpoint.pth.tar", str(folder / "config.yaml"), warp_align_corners=align_corners
    )
    source = read_frame(folder / "source.png")
    driving = torch.cat([read_frame(folder / f"driving_{i:03d}.png") for i in range(NUM_DRIVING)])
    return folder, config, kp_detector, generator, source, driving


@pytest.mark.parametrize("name", FIXTURES)
def test_reference_config_reads_as_the_reference_builds_it(name):
    folder = fixture_folder(name)
    config = resolve_model_config(folder / "config.yaml")
    params = yaml.safe_load((folder / "config.yaml").read_text())["model_params"]
    assert config.image_size == (64, 64)
    assert config.kp_detector.single_jacobian_map == (name == "tiny-64-single-jacobian")
    assert config.generator.num_bottleneck_blocks == (
        params["generator_params"]["num_bottleneck_blocks"]
    )
    # Defaults of the reference code for what its YAML leaves out.
    assert config.kp_detector.pad == 0 and config.dense_motion.kp_variance == 0.01
    assert config.warp_align_corners is True and config.resize_align_corners is False
    assert resolve_model_config(folder / "config.yaml", False).warp_align_corners is False


@pytest.mark.parametrize("name", FIXTURES)
def test_keypoints_equal_the_reference(name):
    folder, _, kp_detector, _, source, driving = load(name, align_corners=True)
    golden = np.load(folder / "keypoints.npz")
    with torch.no_grad():
        for frames, prefix in ((source, "source"), (driving, "driving")):
            detected = kp_detector(frames)
            for key in ("value", "jacobian"):
                expected = torch.from_numpy(golden[f"{prefix}_{key}"])
                assert torch.allclose(detected[key], expected, atol=TOLERANCE, rtol=0), (
                    f"{name} {prefix} {key}: max diff "
                    f"{(detected[key] - expected).abs().max():.2e}"
                )


@pytest.mark.parametrize("align_corners", [False, True], ids=["align_false", "align_true"])
@pytest.mark.parametrize("mode", ["absolute", "relative"])
@pytest.mark.parametrize("name", FIXTURES)
def test_rendered_frames_equal_the_reference(name, mode, align_corners):
    folder, config, kp_detector, generator, source, driving = load(name, align_corners)
    animator = Animator(kp_detector, generator, config, mode=mode, relative_jacobian=True)
    animator.set_source(source)
    kp_driving = animator.detect(driving)  # relative: driving_000 becomes the initial frame
    rendered = animator.render(kp_driving)["prediction"].permute(0, 2, 3, 1).numpy()
    suffix = "true" if align_corners else "false"
    expected = np.load(folder / f"out_{mode}_align_corners_{suffix}.npy")
    assert rendered.shape == expected.shape
    difference = float(np.abs(rendered - expected).max())
    assert difference <= TOLERANCE, f"{name} {mode} align_corners={suffix}: max diff {difference}"


def test_the_align_setting_matters_on_the_fixtures():
    """The two golden settings really differ, so the test above checks the switch."""
    folder = fixture_folder("tiny-64")
    false = np.load(folder / "out_absolute_align_corners_false.npy")
    true = np.load(folder / "out_absolute_align_corners_true.npy")
    assert np.abs(false - true).max() > 100 * TOLERANCE


def test_animate_cli_renders_the_golden_frames(tmp_path, capsys):
    """`kp-motion animate` with a reference YAML: the golden frames, up to 8-bit rounding."""
    folder = fixture_folder("tiny-64")
    driving = tmp_path / "driving"
    driving.mkdir()
    for index in range(NUM_DRIVING):  # a frame folder of the driving PNGs only
        (driving / f"{index:03d}.png").symlink_to(folder / f"driving_{index:03d}.png")
    output = tmp_path / "result"
    status = main([
        "animate", "--source", str(folder / "source.png"), "--driving", str(driving),
        "-o", str(output), "--motion", "relative", "--device", "cpu",
        "--reference-checkpoint", str(folder / "checkpoint.pth.tar"),
        "--reference-config", str(folder / "config.yaml"), "--warp-align-corners", "false",
    ])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    written = video_io.read_video(output).astype(np.float32) / 255.0
    expected = np.load(folder / "out_relative_align_corners_false.npy")
    assert np.abs(written - expected).max() <= 0.5 / 255 + TOLERANCE


def write_yaml(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_bad_reference_configs_are_refused_in_one_line(tmp_path):
    good = yaml.safe_load((fixture_folder("tiny-64") / "config.yaml").read_text())
    (tmp_path / "broken.yaml").write_text("model_params: [unclosed\n")
    no_common = {"model_params": {k: v for k, v in good["model_params"].items()
                                  if k != "common_params"}}  # fmt: skip
    no_num_kp = yaml.safe_load(yaml.safe_dump(good))
    del no_num_kp["model_params"]["common_params"]["num_kp"]
    typo = yaml.safe_load(yaml.safe_dump(good))
    typo["model_params"]["kp_detector_params"]["num_block"] = 3
    cases = {
        "not valid YAML": str(tmp_path / "broken.yaml"),
        "model_params.common_params is missing": write_yaml(tmp_path / "a.yaml", no_common),
        "missing key(s) num_kp": write_yaml(tmp_path / "b.yaml", no_num_kp),
        "unknown key(s) num_block": write_yaml(tmp_path / "c.yaml", typo),
        "config file not found": str(tmp_path / "absent.yaml"),
        "unknown profile": "vox-1024",
    }
    for expected, spec in cases.items():
        with pytest.raises((ValueError, FileNotFoundError)) as error:
            resolve_model_config(spec)
        message = str(error.value)
        assert expected in message and "\n" not in message, (expected, message)


def test_a_checkpoint_of_another_config_is_refused(capsys):
    """The mgif-style checkpoint (4 Jacobian channels) under the 40-channel config."""
    single = fixture_folder("tiny-64-single-jacobian")
    config = fixture_folder("tiny-64") / "config.yaml"
    with pytest.raises(ValueError, match="shape mismatches.*jacobian"):
        load_reference_checkpoint(single / "checkpoint.pth.tar", str(config))
    status = main([
        "animate", "--source", str(single / "source.png"), "--driving", str(single),
        "-o", "never.mp4", "--reference-checkpoint", str(single / "checkpoint.pth.tar"),
        "--reference-config", str(config),
    ])  # fmt: skip
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "does not match the model" in error[0]
