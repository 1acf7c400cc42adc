"""The face model on real faces, and the model card's strip and table (kp_motion/evaluation/
model_card.py, `kp-motion samples --card --table`)."""

import numpy as np
import pytest
import torch
from train_helpers import make_tiny_dataset, tiny_model_config

from conftest import shared_path
from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.data.datasets import VideoDataset
from kp_motion.evaluation.metrics import psnr
from kp_motion.evaluation.model_card import (
    CAPTION_HEIGHT,
    NEUTRAL_GREY,
    SampleModel,
    held_out_table,
    keypoint_overlay,
    moving_frames,
    reconstruct_clip,
)
from kp_motion.models import build_models
from kp_motion.models.animator import Animator
from kp_motion.models.checkpoint import load_model, resolve_checkpoint, save_checkpoint

FACE_MODEL = "fomm-face-128"
# Two clips of the held-out identity id10290, from two different videos.
HELD_OUT_CLIPS = (
    "id10290#FgJsZ26_AXU#023990#024098.mp4",
    "id10290#KacOkTDTi-g#000035#000595.mp4",
)
FRAMES_WITH_MOTION = list(range(20, 41, 5))


@pytest.mark.parametrize("clip", HELD_OUT_CLIPS)
def test_face_model_reconstruction_beats_the_still_source_on_a_held_out_face(clip):
    path = shared_path(f"data/voxceleb-seed/clips/{clip}")
    torch.set_num_threads(1)
    config, kp_detector, generator = load_model(resolve_checkpoint(FACE_MODEL), "cpu")
    size = config.image_size[0]
    frames = video_io.read_video(path, max_frames=FRAMES_WITH_MOTION[-1] + 1)
    video = video_io.to_tensor(np.stack([video_io.resize_frame(f, size) for f in frames]))
    picked = video[[0, *FRAMES_WITH_MOTION]]
    animator = Animator(kp_detector, generator, config, mode="absolute")
    rendered = reconstruct_clip(animator, picked)[1:]
    truth = picked[1:]
    model_psnr = float(psnr(rendered, truth).mean())
    still_psnr = float(psnr(picked[:1].expand_as(truth), truth).mean())
    assert model_psnr > still_psnr, f"{clip}: model {model_psnr:.2f} dB, still {still_psnr:.2f}"


def test_moving_frames_are_frame_0_and_the_farthest_spaced_frames():
    positions = np.zeros((40, 2, 2), np.float32)
    positions[10, :, 0] = 0.5  # the farthest from frame 0
    positions[11, :, 0] = 0.45  # too close in time to frame 10 to be shown as well
    positions[30, :, 1] = 0.3
    assert moving_frames(positions, 3) == [0, 10, 30]
    assert moving_frames(positions, 1) == [0]


def test_keypoint_overlay_shows_keypoints_on_a_neutral_background_only():
    positions = np.array([[-0.5, 0.0], [0.5, 0.5]], np.float32)
    jacobians = np.stack([np.eye(2, dtype=np.float32)] * 2)
    panel = keypoint_overlay(positions, jacobians, 64)
    assert panel.shape == (64, 64, 3)
    drawn = np.any(panel != NEUTRAL_GREY, axis=-1)
    assert drawn[32, 16] and drawn[48, 48]  # the keypoints ([-1, 1] spans 0..63)
    assert drawn[32, 20]  # the first Jacobian column: an axis along +x
    assert 0 < drawn.mean() < 0.2 and not drawn[0, 0]


def _tiny_card_inputs(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = tiny_model_config()
    kp_detector, generator = build_models(config, "cpu")
    checkpoint = save_checkpoint(tmp_path / "model", config, kp_detector, generator)
    dataset = make_tiny_dataset(tmp_path / "data", train_videos=1, test_videos=2, frames=6)
    return config, kp_detector, generator, checkpoint, dataset


def test_card_strip_shows_no_dataset_frame_and_has_a_row_per_step(tmp_path):
    config, _, _, checkpoint, dataset = _tiny_card_inputs(tmp_path)
    source = tmp_path / "face.png"
    video_io.write_image(source, np.full((40, 50, 3), 200, np.uint8))
    output, table = tmp_path / "strip.png", tmp_path / "table.md"
    status = main(["samples", str(dataset), "-o", str(output), "--checkpoint", str(checkpoint),
                   "--card", "--card-source", str(source), "--frames", "3", "--zoom", "1",
                   "--table", str(table), "--device", "cpu"])  # fmt: skip
    assert status == 0
    strip = video_io.read_image(output)
    # Rows: keypoints A, reconstruction A, keypoints B, reconstruction B, B's frame 0 driven by
    # A, the given source driven by A and by B; each row under a title band, each panel over a
    # caption band, rows 4 px apart.
    row_height = (CAPTION_HEIGHT + 2) + (32 + CAPTION_HEIGHT) + 4
    assert strip.shape == (7 * row_height - 4, 3 * 32 + 2 * 4, 3)
    first_overlay = strip[CAPTION_HEIGHT + 2 : CAPTION_HEIGHT + 2 + 32, :32]
    assert np.mean(np.all(first_overlay == NEUTRAL_GREY, axis=-1)) > 0.5
    frames = np.concatenate([video_io.read_video(dataset / "test" / f"video{i}") for i in (0, 1)])
    for top in range(0, strip.shape[0] - 32, row_height):
        for left in range(0, strip.shape[1], 36):
            panel = strip[top + CAPTION_HEIGHT + 2 : top + CAPTION_HEIGHT + 34, left : left + 32]
            assert not any(np.array_equal(panel, frame) for frame in frames)
    # The last row starts with the given source (resized), shown as it is.
    last = strip[-(32 + CAPTION_HEIGHT) : -CAPTION_HEIGHT, :32]
    assert np.all(np.abs(last.astype(int) - 200) <= 1)
    assert table.read_text().startswith("| clips | frames | PSNR (dB) | still PSNR |")


def test_held_out_table_has_a_row_per_clip_and_the_still_source_is_scored_right(tmp_path):
    config, kp_detector, generator, _, dataset = _tiny_card_inputs(tmp_path)
    model = SampleModel.build(config, kp_detector, generator)
    clips = VideoDataset(dataset, "test", size=32)
    table = held_out_table(model.absolute, clips).splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| video0", "| video1", "| all 2"]
    video = clips[0]["video"]
    still_l1 = float((video[:1] - video[1:]).abs().mean())
    assert table[2].split(" | ")[-1] == f"{still_l1:.4f} |"
    assert table[2].split(" | ")[1] == "5"  # frames 1..5: frame 0 is the source


def test_card_refuses_a_missing_source_image_before_loading_a_model(tmp_path, capsys):
    status = main(["samples", str(tmp_path), "-o", str(tmp_path / "strip.png"), "--card",
                   "--card-source", str(tmp_path / "nowhere.png")])  # fmt: skip
    assert status == 2
    assert "nowhere.png" in capsys.readouterr().err
