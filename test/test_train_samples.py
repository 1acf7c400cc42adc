"""`kp-motion samples`: the reconstruction strip of a checkpoint."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from train_helpers import make_tiny_dataset, tiny_model_config

from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.evaluation.model_card import reconstruct_clip
from kp_motion.models import build_models
from kp_motion.models.animator import Animator
from kp_motion.models.checkpoint import save_checkpoint
from kp_motion.training.losses import keypoints_in_use
from kp_motion.training.samples import (
    DIAGNOSTICS,
    diagnostics_by_group,
    mean_diagnostics,
    motion_diagnostics,
)


def _untrained_checkpoint(tmp_path):
    """A tiny untrained model saved as a project checkpoint: (config, detector, generator, path)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = tiny_model_config()
    kp_detector, generator = build_models(config, "cpu")
    return config, kp_detector, generator, save_checkpoint(tmp_path / "model", config,
                                                           kp_detector, generator)


def test_samples_strip_has_a_driving_and_a_reconstruction_row_per_video(tmp_path, capsys):
    config, kp_detector, generator, checkpoint = _untrained_checkpoint(tmp_path)
    dataset = make_tiny_dataset(tmp_path / "data", train_videos=1, test_videos=2, frames=6)

    output = tmp_path / "strip.png"
    status = main(["samples", str(dataset), "-o", str(output), "--checkpoint", str(checkpoint),
                   "--videos", "2", "--frames", "3", "--zoom", "1", "--device", "cpu"])  # fmt: skip
    assert status == 0
    strip = video_io.read_image(output)
    gap = 2  # white lines between frames
    assert strip.shape == (4 * 32 + 3 * gap, 3 * 32 + 2 * gap, 3)
    # Row 0 is the first test video's frames 0, 2/3 and 5, exactly.
    first_video = video_io.read_video(dataset / "test" / "video0")
    assert np.array_equal(strip[:32, :32], first_video[0])
    assert np.array_equal(strip[:32, -32:], first_video[5])
    # Row 1 is the model's reconstruction of those frames.
    animator = Animator(kp_detector, generator, config, mode="absolute")
    expected = video_io.from_tensor(reconstruct_clip(animator, video_io.to_tensor(first_video)))
    row1 = strip[32 + gap : 64 + gap]
    assert np.abs(row1[:, :32].astype(int) - expected[0].astype(int)).max() <= 1
    printed = capsys.readouterr().out
    assert "mean L1 per video" in printed and "still source" in printed


def test_samples_keypoints_are_drawn_on_the_driving_rows_only(tmp_path):
    config, kp_detector, generator, checkpoint = _untrained_checkpoint(tmp_path)
    dataset = make_tiny_dataset(tmp_path / "data", train_videos=1, test_videos=1, frames=4)
    strips = {}
    for name, extra in (("plain", []), ("keypoints", ["--keypoints"])):
        strips[name] = tmp_path / f"{name}.png"
        assert main(["samples", str(dataset), "-o", str(strips[name]), "--checkpoint",
                     str(checkpoint), "--videos", "1", "--frames", "2", "--zoom", "2",
                     "--device", "cpu", *extra]) == 0  # fmt: skip
    plain, drawn = (video_io.read_image(strips[name]) for name in ("plain", "keypoints"))
    size, gap = 64, 4  # 32 px frames at zoom 2; the gap grows with the zoom
    assert plain.shape == drawn.shape == (2 * size + gap, 2 * size + gap, 3)
    # The reconstruction row is untouched; the driving row has a dot at each keypoint.
    assert np.array_equal(plain[size + gap :], drawn[size + gap :])
    frame = video_io.read_video(dataset / "test" / "video0")[0]
    animator = Animator(kp_detector, generator, config, mode="absolute")
    positions = animator.detect(video_io.to_tensor(frame[None]))["value"][0].numpy()
    changed = np.any(plain[:size, :size] != drawn[:size, :size], axis=-1)
    for x, y in positions:
        column, row = (round((x + 1) / 2 * (size - 1)), round((y + 1) / 2 * (size - 1)))
        if 0 <= column < size and 0 <= row < size:
            assert changed[row, column]
    assert changed.mean() < 0.5  # dots, not a repaint


def test_samples_refuses_a_non_png_output(tmp_path, capsys):
    assert main(["samples", str(tmp_path), "-o", str(tmp_path / "strip.jpg")]) == 2
    assert "must be a .png file" in capsys.readouterr().err


def test_motion_diagnostics_on_a_moving_and_a_static_video():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # Pixel-centre warps (as compact-64), so that an identity flow reproduces the frame exactly.
    config = dataclasses.replace(
        tiny_model_config(), warp_align_corners=True, resize_align_corners=True
    )
    animator = Animator(*build_models(config, "cpu"), config, mode="absolute")
    moving = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    found = motion_diagnostics(animator, moving)
    assert set(found) == set(DIAGNOSTICS)
    assert found["still"] == pytest.approx(float((moving - moving[:1]).abs().mean()), rel=1e-6)
    assert 0 < found["heatmap_spread"] < 8**0.5  # at most the diagonal of [-1, 1]^2
    assert 0 <= found["keypoints_in_use"] <= config.num_kp
    # A static video: every frame has the source's keypoints, so the flow is the identity, the
    # warped source is the video itself and rendering from the source is rendering from itself.
    static = moving[:1].expand(4, -1, -1, -1).clone()
    found = motion_diagnostics(animator, static)
    assert found["still"] == 0 and found["warped"] == pytest.approx(0, abs=1e-5)
    assert found["rendered"] == pytest.approx(found["self"], abs=1e-6)


def test_samples_breaks_the_diagnostics_down_by_synthetic_kind(tmp_path, capsys):
    torch.set_num_threads(1)
    config = tiny_model_config()
    kp_detector, generator = build_models(config, "cpu")
    checkpoint = save_checkpoint(tmp_path / "model", config, kp_detector, generator)
    dataset = make_tiny_dataset(tmp_path / "data", train_videos=1, test_videos=3, frames=4)
    # What `kp-motion synth` writes, reduced to what the breakdown reads.
    videos = [{"name": "video0", "kind": "arm"}, {"name": "video1", "kind": "blob"},
              {"name": "video2", "kind": "arm"}]  # fmt: skip
    (dataset / "manifest.yaml").write_text(yaml.safe_dump({"videos": videos}))
    status = main(["samples", str(dataset), "-o", str(tmp_path / "strip.png"), "--checkpoint",
                   str(checkpoint), "--videos", "3", "--device", "cpu"])  # fmt: skip
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[-2:]] == ["  arm (2 videos)", "  blob (1 videos)"]


def test_diagnostics_by_group_averages_each_groups_videos():
    def diagnostics(value: float) -> dict[str, float]:
        return dict.fromkeys(DIAGNOSTICS, value)

    per_video = {"a": diagnostics(1.0), "b": diagnostics(3.0), "c": diagnostics(5.0)}
    grouped = diagnostics_by_group(per_video, {"a": "arm", "b": "arm", "c": "blob", "z": "x"})
    assert grouped == {"arm": diagnostics(2.0), "blob": diagnostics(5.0)}
    assert mean_diagnostics(per_video) == diagnostics(3.0)


def test_keypoints_in_use_counts_masks_with_a_share_of_the_frame():
    masks = torch.zeros(2, 4, 8, 8)  # background + 3 keypoints, 2 frames
    masks[:, 0] = 1.0
    masks[0, 0, :4], masks[0, 1, :4] = 0.0, 1.0  # keypoint 1: half of frame 0, a quarter overall
    masks[:, 0, 0, 0], masks[:, 2, 0, 0] = 0.0, 1.0  # keypoint 2: 1 pixel of 64, 1.6 %
    masks[1, 0, 7, 7], masks[1, 3, 7, 7] = 0.0, 1.0  # keypoint 3: 1 pixel of 128, 0.8 %
    assert keypoints_in_use(masks) == 2
