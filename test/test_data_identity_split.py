"""`kp-motion dataset`: clips split by identity into links, on tiny clips the test writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.data.datasets import find_videos
from kp_motion.data.identity_split import (
    clip_identity,
    find_clips,
    split_by_identity,
    write_links,
)

CLIPS = {  # name -> frames
    "id00001#aaa#000010#000020.mp4": 4,
    "id00001#bbb#000030#000040.mp4": 5,
    "id00002#ccc#000001#000009.mp4": 3,
    "id00003#ddd#000005#000011.mp4": 6,
}


@pytest.fixture
def clip_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, frames in CLIPS.items():
        video = rng.integers(0, 255, (frames, 16, 16, 3), dtype=np.uint8)
        video_io.write_video(folder / name, video, fps=10)
    (folder / "README.txt").write_text("not a clip")
    return folder


def test_identity_is_the_text_before_the_first_hash() -> None:
    assert clip_identity("id10290#x#1#2.mp4") == "id10290"
    with pytest.raises(ValueError, match="no identity prefix"):
        clip_identity("clip.mp4")
    with pytest.raises(ValueError, match="no identity prefix"):
        clip_identity("#x.mp4")


def test_split_holds_out_whole_identities_as_links(clip_folder: Path, tmp_path: Path) -> None:
    split = split_by_identity(find_clips(clip_folder), ["id00001", "id00003"])
    assert split.identities == {"train": ["id00002"], "test": ["id00001", "id00003"]}
    root = tmp_path / "out" / "dataset"
    created = write_links(split, root)
    assert len(created) == len(CLIPS)
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(
        name for name in CLIPS if not name.startswith("id00002")
    )
    assert [p.name for p in (root / "train").iterdir()] == ["id00002#ccc#000001#000009.mp4"]
    for link in created:
        assert link.is_symlink()  # never a copy
        assert os.path.samefile(link, clip_folder / link.name)
    # The first-order-model reader sees the layout.
    assert len(find_videos(root, "test")) == 3
    assert len(video_io.read_video(root / "train" / "id00002#ccc#000001#000009.mp4")) == 3


def test_rebuilding_adds_nothing_and_other_content_is_refused(
    clip_folder: Path, tmp_path: Path
) -> None:
    clips = find_clips(clip_folder)
    root = tmp_path / "dataset"
    write_links(split_by_identity(clips, ["id00001"]), root)
    assert write_links(split_by_identity(clips, ["id00001"]), root) == []
    with pytest.raises(ValueError, match="not a link of this split"):
        write_links(split_by_identity(clips, ["id00002"]), root)
    stray = root / "train" / "mine.txt"
    stray.write_text("keep me")
    with pytest.raises(ValueError, match="mine.txt"):
        write_links(split_by_identity(clips, ["id00001"]), root)
    assert stray.read_text() == "keep me"
    assert len(list((root / "test").iterdir())) == 2  # nothing was removed


def test_cli_prints_the_split(
    clip_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "dataset"
    assert main(["dataset", str(clip_folder), str(root), "--hold-out", "id00003"]) == 0
    out = capsys.readouterr().out
    assert "train: 2 identities (id00001, id00002), 3 clips, 12 frames" in out
    assert "test: 1 identities (id00003), 1 clips, 6 frames" in out
    assert "4 links created" in out


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda folder, root: [str(folder / "missing"), str(root)], "clip folder not found"),
        (lambda folder, root: [str(folder.parent / "empty"), str(root)], "no clips"),
        (lambda folder, root: [str(folder), str(root), "--hold-out", "id09999"],
         "held-out identity id09999 has no clip"),
        (lambda folder, root: [str(folder), str(root), "--hold-out", "id00001", "id00002",
                               "id00003"], "every identity is held out"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line(
    clip_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture, make_args, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    args = make_args(clip_folder, tmp_path / "dataset")
    if "--hold-out" not in args:
        args += ["--hold-out", "id00001"]
    assert main(["dataset", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not (tmp_path / "dataset").exists()  # refused before writing anything
