"""The synthetic dataset: determinism, layout, manifest, kinds, motion, the CLI and demo assets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kp_motion import config as config_io
from kp_motion.cli.main import main as cli_main
from kp_motion.data import synthetic, video_io
from kp_motion.data.synthetic import KindMix, SynthConfig
from kp_motion.data.synthetic_scenes import KINDS, Scene, build_scene, smooth_random_walk

TINY = SynthConfig(
    seed=7, size=32, num_train=4, num_test=2, num_frames=6, format="png", supersample=2
)


def decoded_videos(root: Path) -> dict[str, np.ndarray]:
    manifest = synthetic.load_manifest(root)
    return {
        entry["path"]: video_io.read_video(root / entry["path"]) for entry in manifest["videos"]
    }


def test_same_seed_gives_identical_frames_and_manifest(tmp_path: Path) -> None:
    synthetic.generate_dataset(TINY, tmp_path / "a", progress=False)
    synthetic.generate_dataset(TINY, tmp_path / "b", progress=False)
    first, second = decoded_videos(tmp_path / "a"), decoded_videos(tmp_path / "b")
    assert first.keys() == second.keys() and len(first) == 6
    for path, frames in first.items():
        np.testing.assert_array_equal(frames, second[path])
    manifest_a = (tmp_path / "a" / synthetic.MANIFEST_NAME).read_text()
    assert manifest_a == (tmp_path / "b" / synthetic.MANIFEST_NAME).read_text()
    assert str(tmp_path) not in manifest_a  # portable: no absolute paths
    other = dataclasses.replace(TINY, seed=8)
    synthetic.generate_dataset(other, tmp_path / "c", progress=False)
    third = decoded_videos(tmp_path / "c")
    assert any(
        path not in third or not np.array_equal(frames, third[path])
        for path, frames in first.items()
    )


@pytest.mark.parametrize("video_format", ["png", "mp4"])
def test_parallel_workers_give_the_same_videos(tmp_path: Path, video_format: str) -> None:
    config = dataclasses.replace(TINY, num_train=2, num_test=1, format=video_format)
    synthetic.generate_dataset(config, tmp_path / "one", workers=1, progress=False)
    synthetic.generate_dataset(config, tmp_path / "two", workers=2, progress=False)
    one, two = decoded_videos(tmp_path / "one"), decoded_videos(tmp_path / "two")
    assert one.keys() == two.keys()
    assert all(np.array_equal(frames, two[path]) for path, frames in one.items())


def test_layout_and_manifest(tmp_path: Path) -> None:
    manifest = synthetic.generate_dataset(TINY, tmp_path, progress=False)
    train = sorted(p.name for p in (tmp_path / "train").iterdir())
    test = sorted(p.name for p in (tmp_path / "test").iterdir())
    assert len(train) == 4 and len(test) == 2
    assert all(name[:4].isdigit() and name.split("_")[1] in KINDS for name in train + test)
    assert manifest["seed"] == 7
    assert config_io.from_dict(SynthConfig, manifest["config"]) == TINY
    entry = manifest["videos"][0]
    assert {"name", "split", "path", "kind", "seed", "frames", "params"} <= entry.keys()
    frames = video_io.read_video(tmp_path / entry["path"])
    assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
    # One video re-rendered alone from its manifest entry is the same video.
    alone, _ = synthetic.render_video(entry["kind"], entry["seed"], 32, 6, 25.0, 2)
    np.testing.assert_array_equal(alone, frames)


def test_kind_shares_are_exact() -> None:
    rng = np.random.default_rng(0)
    kinds = synthetic.assign_kinds({"quadruped": 3, "biped": 0, "arm": 1, "blob": 1}, 10, rng)
    assert sorted(kinds) == sorted(["quadruped"] * 6 + ["arm"] * 2 + ["blob"] * 2)
    config = dataclasses.replace(TINY, kinds=KindMix(quadruped=0, biped=0, arm=1, blob=0))
    assert {spec.kind for spec in synthetic.plan_videos(config)} == {"arm"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_moves(kind: str) -> None:
    frames, params = synthetic.render_video(
        kind, seed=3, size=32, num_frames=12, fps=25.0, supersample=2
    )
    assert frames.shape == (12, 32, 32, 3)
    change = np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean()
    assert change > 0.5, f"{kind}: first and last frame nearly equal ({change:.2f})"
    step = np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).mean(axis=(1, 2, 3))
    assert step.max() < 25, f"{kind}: motion is not smooth (largest step {step.max():.1f})"
    assert frames.std() > 10  # textured, not a flat image
    assert "variant" in params


def test_larger_resolution_renders() -> None:
    frames, _ = synthetic.render_video(
        "quadruped", seed=1, size=128, num_frames=2, fps=25.0, supersample=2
    )
    assert frames.shape == (2, 128, 128, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_part_poses_lie_on_their_parts_and_some_move(kind: str) -> None:
    """Each part's pose maps its local frame onto the part as drawn: the centre and points a
    third of the way out along both local axes are on the part (drawn alone on magenta)."""
    canvas, frames = 64, 12
    scene, _ = build_scene(kind, np.random.default_rng(4), frames, 25.0, canvas)
    poses = scene.part_poses()
    assert poses.shape == (frames, len(scene.layers), 2, 3)
    centres = poses[..., 2]
    assert np.linalg.norm(centres - centres[:1], axis=-1).max() > 0.02  # the figure moves
    magenta = np.zeros((canvas, canvas, 3), np.uint8)
    magenta[..., [0, 2]] = 255  # in no texture's palette
    local_points = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]]) / 3
    for index, layer in enumerate(scene.layers):
        alone = Scene(magenta, [layer], scene.outline_px)
        for frame in (0, frames - 1):
            image = alone.render(frame, canvas)
            pose = poses[frame, index]
            for point in local_points @ pose[:, :2].T + pose[:, 2]:
                x, y = np.round(point * canvas - 0.5).astype(int)
                if 0 <= x < canvas and 0 <= y < canvas:  # arm bases sit on the border
                    assert not np.array_equal(image[y, x], magenta[0, 0]), (kind, index, frame)


def test_blob_pose_inverts_the_mapping_the_blob_is_drawn_with() -> None:
    scene, _ = build_scene("blob", np.random.default_rng(5), 6, 25.0, 64)
    for layer in scene.layers:
        local = np.array([0.7, -0.4])
        for frame, pose in enumerate(layer.poses):
            offset = pose[:, :2] @ local  # image units, from the centre
            cos, sin = np.cos(layer.rotations[frame]), np.sin(layer.rotations[frame])
            stretch, radius = layer.stretch[frame], layer.radius
            # BlobLayer.draw's image -> local map (per normalised unit rather than pixel).
            along = (cos * offset[0] + sin * offset[1]) / (stretch * radius)
            across = (-sin * offset[0] + cos * offset[1]) * stretch / radius
            np.testing.assert_allclose([along, across], local, atol=1e-9)
            np.testing.assert_array_equal(pose[:, 2], layer.centres[frame])


def test_random_walk_is_bounded_and_smooth() -> None:
    path = smooth_random_walk(np.random.default_rng(0), 400, -1.0, 2.0, step=1.5)
    assert path.shape == (400,)
    assert path.min() >= -1.0 - 1e-9 and path.max() <= 2.0 + 1e-9
    assert np.abs(np.diff(path)).max() < 0.5  # no jumps between frames
    assert np.ptp(path) > 1.0  # it does wander


def test_existing_dataset_needs_overwrite(tmp_path: Path) -> None:
    synthetic.generate_dataset(TINY, tmp_path, progress=False)
    with pytest.raises(ValueError, match="already holds a dataset"):
        synthetic.generate_dataset(TINY, tmp_path, progress=False)
    smaller = dataclasses.replace(TINY, num_train=1, num_test=1, format="mp4")
    synthetic.generate_dataset(smaller, tmp_path, overwrite=True, progress=False)
    assert len(list((tmp_path / "train").iterdir())) == 1  # old frame folders removed
    assert len(list((tmp_path / "test").iterdir())) == 1


def test_config_validation_and_shipped_yaml() -> None:
    shipped = synthetic.load_config()
    assert shipped.size == 64 and shipped.format in synthetic.FORMATS
    for bad in (
        {"size": 4},
        {"num_frames": 1},
        {"format": "avi"},
        {"num_train": 0, "num_test": 0},
        {"seed": -1},
        {"kinds": KindMix(0, 0, 0, 0)},
    ):
        with pytest.raises(ValueError, match="synthetic dataset config"):
            dataclasses.replace(TINY, **bad).validate()


def test_cli_generates_and_reports_bad_input(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = [
        "synth",
        "--out",
        str(out),
        "--train",
        "2",
        "--test",
        "1",
        "--frames",
        "4",
        "--size",
        "32",
        "--supersample",
        "1",
        "--kinds",
        "blob=2,arm",
        "--quiet",
    ]
    assert cli_main(args) == 0
    manifest = synthetic.load_manifest(out)
    assert {entry["kind"] for entry in manifest["videos"]} <= {"blob", "arm"}
    assert video_io.read_video(out / manifest["videos"][0]["path"]).shape == (4, 32, 32, 3)
    assert cli_main(args) == 2  # already there, no --overwrite
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--kinds", "dragon"]) == 2
    assert "dragon" in capsys.readouterr().err


def test_demo_assets(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, num_frames=5)
    info = synthetic.write_demo_assets(tmp_path, kind="biped", seed=2, config=config)
    source = video_io.read_image(tmp_path / "demo_source.png")
    driving = video_io.read_video(tmp_path / "demo_driving.mp4")
    assert source.shape == (32, 32, 3) and driving.shape == (5, 32, 32, 3)
    assert info["kind"] == "biped" and info["source"]["seed"] != info["driving"]["seed"]
