"""`kp-motion animate` end to end on a tiny video, its input errors, and `kp-motion bench`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kp_motion import config as config_io
from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.models import build_models, load_profile, save_checkpoint
from kp_motion.models.model_config import with_widths

torch.set_num_threads(1)

FRAMES = 5


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny compact-64 checkpoint, a moving-square driving video and an odd-sized RGBA source."""
    folder = tmp_path_factory.mktemp("animate")
    config = with_widths(
        load_profile("compact-64"),
        kp_detector={"block_expansion": 8, "max_features": 32},
        dense_motion={"block_expansion": 8, "max_features": 32},
        generator={"block_expansion": 8, "max_features": 32, "num_bottleneck_blocks": 1},
    )
    torch.manual_seed(21)
    save_checkpoint(folder / "model", config, *build_models(config))
    driving = []
    for index in range(FRAMES):
        frame = np.full((48, 80, 3), 30, np.uint8)  # non-square driving frames
        frame[10:30, 10 + 6 * index : 30 + 6 * index] = (220, 180, 40)
        driving.append(frame)
    video_io.write_video(folder / "driving.mp4", driving, fps=12)
    source = np.random.default_rng(0).integers(0, 255, (37, 29, 4), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(source, mode="RGBA").save(folder / "source.png")
    return folder


def animate(workspace, *options: str) -> int:
    return main(["animate", "--checkpoint", str(workspace / "model"), *options])


def test_transfer_writes_result_side_by_side_and_keypoints(workspace, capsys):
    output = workspace / "result.mp4"
    status = animate(
        workspace,
        "--source", str(workspace / "source.png"),
        "--driving", str(workspace / "driving.mp4"),
        "-o", str(output),
        "--side-by-side", str(workspace / "side.mp4"),
        "--keypoints-video", str(workspace / "keypoints"),
        "--fit", "crop",
        "--adapt-movement-scale",
    )  # fmt: skip
    assert status == 0
    result = video_io.read_video(output)
    assert result.shape == (FRAMES, 64, 64, 3)
    assert video_io.video_fps(output) == pytest.approx(12.0)
    assert video_io.read_video(workspace / "side.mp4").shape == (FRAMES, 64, 192, 3)
    keypoint_frames = video_io.read_video(workspace / "keypoints")  # a folder of PNG frames
    assert keypoint_frames.shape == (FRAMES, 64, 192, 3)
    assert f"{FRAMES} frames" in capsys.readouterr().out


def test_reconstruction_to_lossless_png_frames_matches_the_animator(workspace):
    """The PNG output holds exactly what the Animator renders (lossless, same fitting)."""
    from kp_motion.models import Animator, load_model

    output = workspace / "reconstruction"
    status = animate(
        workspace, "--mode", "reconstruction", "--driving", str(workspace / "driving.mp4"),
        "-o", str(output), "--max-frames", "3",
    )  # fmt: skip
    assert status == 0
    written = video_io.read_video(output)
    assert written.shape == (3, 64, 64, 3)
    config, kp_detector, generator = load_model(workspace / "model")
    animator = Animator(kp_detector, generator, config, mode="absolute")
    driving = video_io.resize_video(video_io.read_video(workspace / "driving.mp4"), (64, 64))
    animator.set_source(video_io.to_tensor(driving[0]))
    for index in range(3):
        kp_driving = animator.detect(video_io.to_tensor(driving[index]))
        expected = video_io.from_tensor(animator.render(kp_driving)["prediction"])[0]
        np.testing.assert_array_equal(written[index], expected)


def test_bad_inputs_exit_non_zero_with_one_line(workspace, capsys):
    source, driving = str(workspace / "source.png"), str(workspace / "driving.mp4")
    (workspace / "empty.mp4").write_bytes(b"")
    (workspace / "corrupt.mp4").write_bytes(b"\x00\x01 definitely not a video" * 40)
    wrong = workspace / "wrong_config"
    wrong.mkdir()
    for name in ("weights.safetensors",):
        (wrong / name).write_bytes((workspace / "model" / name).read_bytes())
    config_io.save(load_profile("compact-64"), wrong / "model.yaml")  # other widths
    bad_reference = workspace / "reference.pth.tar"
    torch.save({"kp_detector": {}, "generator": {}}, bad_reference)
    cases = {
        "no frames could be decoded": ["--source", source, "--driving",
                                       str(workspace / "empty.mp4")],
        "corrupt": ["--source", source, "--driving", str(workspace / "corrupt.mp4")],
        "not found": ["--source", source, "--driving", str(workspace / "absent.mp4")],
        "needs --source": ["--driving", driving],
        "unsupported output": ["--source", source, "--driving", driving, "-o", "out.webp"],
        "unknown device": ["--source", source, "--driving", driving, "--device", "gpu"],
        "go together": ["--source", source, "--driving", driving, "--reference-config",
                        "vox-256"],
    }  # fmt: skip
    for expected, options in cases.items():
        if "-o" not in options:
            options = [*options, "-o", str(workspace / "never.mp4")]
        assert animate(workspace, *options) == 2, expected
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and expected in error[0], (expected, error)
    checkpoints = {
        "shape mismatches": ["--checkpoint", str(wrong)],
        "checkpoint not found": ["--checkpoint", str(workspace / "absent_model")],
        "missing keys": ["--reference-checkpoint", str(bad_reference),
                         "--reference-config", "vox-256"],
    }  # fmt: skip
    for expected, options in checkpoints.items():
        status = main(["animate", "--source", source, "--driving", driving,
                       "-o", str(workspace / "never.mp4"), *options])  # fmt: skip
        assert status == 2, expected
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and expected in error[0], (expected, error)
    assert not (workspace / "never.mp4").exists()


def test_bench_prints_latency_per_stage(capsys):
    status = main(["bench", "--only", "models", "--profiles", "compact-64",
                   "--repeats", "1", "--warmup", "0", "--device", "cpu"])  # fmt: skip
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.startswith("compact-64")]
    stages = [" ".join(row[1:-3]) for row in rows]
    assert stages == ["detector", "render, no cache", "render, cached source",
                      "frame: detect + cached render"]  # fmt: skip
    for row in rows:
        milliseconds, fps, unit = float(row[-3]), float(row[-2]), row[-1]
        assert unit == "frame"
        # fps is printed with one decimal: at a slow frame (a loaded machine) that rounding
        # alone is more than 1 %, so allow half a unit of the last printed digit as well.
        assert milliseconds > 0 and fps == pytest.approx(1000 / milliseconds, rel=0.01, abs=0.05)


def test_bench_forecaster_section_times_every_forecaster(capsys):
    status = main(["bench", "--only", "forecasters", "--repeats", "1", "--device", "cpu"])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {
        (line.split()[0], " ".join(line.split()[1:-3])): line.split()
        for line in lines
        if line.split() and line.split()[0] in {"vrnn", "rnn", "vae", "hold-last"}
    }
    for model in ("vrnn", "rnn", "vae", "hold-last"):
        assert float(rows[(model, "observe")][-3]) > 0
        assert float(rows[(model, "predict 1 frame")][-3]) > 0
    # Learned models also report training throughput; baselines have nothing to train.
    assert rows[("vrnn", "training")][-1] == "sequence"
    assert ("hold-last", "training") not in rows


def test_bench_refuses_bad_options(capsys):
    assert main(["bench", "--profiles", "no-such-profile"]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert main(["bench", "--repeats", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["bench", "--only", "everything"])
