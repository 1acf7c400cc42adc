"""`kp-motion animate` given an output it cannot write: one line, status 2, before any model is
loaded or frame rendered (the render of a long clip must not be lost at the end)."""

from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import clip_frames

from kp_motion.cli import animate
from kp_motion.cli.main import main
from kp_motion.data import video_io


@pytest.fixture
def inputs(tmp_path):
    driving = video_io.write_video(tmp_path / "driving", clip_frames(3))
    source = video_io.write_image(tmp_path / "face.png", np.full((32, 32, 3), 90, np.uint8))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return driving, source, blocker


def _refuse_model_loading(monkeypatch):
    def load_models(args):
        raise AssertionError("models were loaded before the output was checked")

    monkeypatch.setattr(animate, "load_models", load_models)


@pytest.mark.parametrize("option", ["--output", "--side-by-side", "--keypoints-video"])
def test_animate_refuses_an_output_under_a_file_in_one_line(inputs, option, monkeypatch, capsys):
    driving, source, blocker = inputs
    _refuse_model_loading(monkeypatch)
    outputs = {"--output": str(driving.parent / "ok.mp4"), option: str(blocker / "out.mp4")}
    argv = ["animate", "--driving", str(driving), "--source", str(source)]
    for flag, path in outputs.items():
        argv += [flag, path]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "is a file, not a folder" in error[0], error
    assert not (driving.parent / "ok.mp4").exists()


def test_animate_keeps_the_users_frames_in_an_output_folder(inputs, monkeypatch, capsys):
    driving, source, _ = inputs
    _refuse_model_loading(monkeypatch)
    folder = driving.parent / "results"
    folder.mkdir()
    (folder / "000001.png").write_bytes(b"mine")
    status = main(["animate", "--driving", str(driving), "--source", str(source),
                   "--output", str(folder)])
    assert status == 2
    assert "did not write" in capsys.readouterr().err
    assert (folder / "000001.png").read_bytes() == b"mine"


def test_the_dispatcher_prints_any_os_error_as_one_line(monkeypatch, capsys):
    def fail(args):
        raise PermissionError(13, "Permission denied", "/some/out.mp4")

    monkeypatch.setattr(animate, "run", fail)
    assert main(["animate", "--driving", "d", "-o", "o.mp4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kp-motion animate: error: Permission denied (/some/out.mp4)")
