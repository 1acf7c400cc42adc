"""Scripted head motion: the poses, the keypoint maps, and `kp-motion head-motion`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from model_helpers import tiny_model_config, write_tiny_model
from PIL import Image

from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.models.animator import Animator
from kp_motion.models.checkpoint import load_model
from kp_motion.models.head_motion import (
    PEAK_DEGREES,
    HeadPose,
    move_keypoints,
    pose_affine,
    scripted_poses,
)

torch.set_num_threads(1)


def _keypoints(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "value": torch.rand(1, 10, 2, generator=generator) * 1.2 - 0.6,
        "jacobian": torch.eye(2) + 0.2 * torch.randn(1, 10, 2, 2, generator=generator),
    }


def test_each_motion_swings_its_own_axis_and_the_script_rests_at_both_ends():
    poses = scripted_poses(["nod", "turn", "tilt"], 8)
    assert len(poses) == 3 * 8 + 1
    assert poses[0] == poses[-1] == HeadPose()
    for index, (name, axis) in enumerate((("nod", "pitch"), ("turn", "yaw"), ("tilt", "roll"))):
        swing = poses[index * 8 : (index + 1) * 8]
        angles = [getattr(pose, axis) for pose in swing]
        assert max(angles) == pytest.approx(math.radians(PEAK_DEGREES[name]))
        assert min(angles) == pytest.approx(-math.radians(PEAK_DEGREES[name]))
        others = {"pitch", "yaw", "roll"} - {axis}
        assert all(getattr(pose, other) == 0 for pose in swing for other in others)


def test_bad_scripts_are_refused():
    with pytest.raises(ValueError, match="unknown motion"):
        scripted_poses(["wink"], 8)
    with pytest.raises(ValueError, match="frames per motion"):
        scripted_poses(["nod"], 1)


def test_rest_leaves_keypoints_and_a_tilt_rotates_them_about_their_centre():
    kp = _keypoints()
    moved = move_keypoints(kp, [HeadPose(), HeadPose(roll=0.3)])
    torch.testing.assert_close(moved["value"][0], kp["value"][0])
    torch.testing.assert_close(moved["jacobian"][0], kp["jacobian"][0])
    rest, tilted = kp["value"][0], moved["value"][1]
    torch.testing.assert_close(tilted.mean(0), rest.mean(0))  # the centre stays
    torch.testing.assert_close(torch.cdist(tilted, tilted), torch.cdist(rest, rest))  # rigid
    rotation, _ = pose_affine(HeadPose(roll=0.3), radius=1.0)
    torch.testing.assert_close(moved["jacobian"][1], rotation @ kp["jacobian"][0])


def test_a_nod_moves_the_face_down_and_shortens_it():
    kp = _keypoints(1)
    positions = kp["value"][0]
    radius = float((positions - positions.mean(0)).norm(dim=-1).mean())
    nodded = move_keypoints(kp, [HeadPose(pitch=0.4)])["value"][0]
    shift = nodded.mean(0) - positions.mean(0)
    torch.testing.assert_close(shift, torch.tensor([0.0, radius * math.sin(0.4)]))
    spread = (nodded - nodded.mean(0)).abs().sum(0) / (positions - positions.mean(0)).abs().sum(0)
    torch.testing.assert_close(spread, torch.tensor([1.0, math.cos(0.4)]))


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    folder = tmp_path_factory.mktemp("head_motion")
    write_tiny_model(folder / "model", tiny_model_config("face-128"))
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / "face.png")
    return folder


def test_the_command_renders_one_frame_per_pose_starting_at_the_image(face, capsys):
    output = face / "driving"  # a folder of PNG frames: lossless, so the check can be exact
    status = main(["head-motion", "--source", str(face / "face.png"), "-o", str(output),
                   "--checkpoint", str(face / "model"), "--motions", "tilt", "nod",
                   "--frames-per-motion", "3"])
    assert status == 0
    assert "7 frames" in capsys.readouterr().out  # 2 motions x 3 frames + the closing rest
    frames = video_io.read_video(output)
    assert frames.shape == (7, 32, 32, 3)
    # The first frame is the rest pose: the image rendered with its own keypoints.
    config, kp_detector, generator = load_model(face / "model")
    animator = Animator(kp_detector, generator, config, mode="absolute")
    source = video_io.resize_frame(video_io.read_image(face / "face.png"), config.image_size)
    animator.set_source(video_io.to_tensor(source))
    expected = video_io.from_tensor(animator.render(animator.kp_source)["prediction"])[0]
    assert np.abs(frames[0].astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(frames[1].astype(int) - expected.astype(int)).max() > 1  # tilted: moved


def test_the_command_refuses_a_missing_source_before_loading_a_model(tmp_path, capsys):
    status = main(["head-motion", "--source", str(tmp_path / "none.png"),
                   "-o", str(tmp_path / "out.mp4"), "--checkpoint", str(tmp_path / "absent")])
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--source not found" in error[0]
    assert not (tmp_path / "out.mp4").exists()
