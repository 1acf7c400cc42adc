"""The camera's frames without ROS: files and folders, looping, frame limits, resizing, and
one-line errors for inputs that cannot work."""

from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import SIZE, write_clip

from kp_motion.stream.sources import Frames, FrameSource, SourceError, open_source, output_size


def test_output_size_keeps_the_aspect_ratio_when_one_side_is_zero():
    assert output_size((480, 640, 3), 0, 0) is None
    assert output_size((480, 640, 3), 320, 0) == (240, 320)
    assert output_size((480, 640, 3), 0, 120) == (120, 160)
    assert output_size((480, 640, 3), 64, 64) == (64, 64)


def _read_all(frames: Frames, limit: int = 100) -> list[np.ndarray]:
    read = []
    while len(read) < limit and (frame := frames.next()) is not None:
        read.append(frame)
    return read


def test_a_clip_plays_once_or_loops_and_stops_at_max_frames(tmp_path):
    clip = write_clip(tmp_path / "clip", 4)
    once = _read_all(Frames(open_source(str(clip), 0, 0, 25.0)))
    assert len(once) == 4 and once[0].shape == (SIZE, SIZE, 3)
    looped = _read_all(Frames(open_source(str(clip), 0, 0, 25.0), loop=True, max_frames=10))
    assert len(looped) == 10
    np.testing.assert_array_equal(looped[4], once[0])  # the second pass starts over
    assert not Frames(FrameSource(clip)).live


def test_frames_are_resized_or_cropped_to_the_asked_size(tmp_path):
    clip = write_clip(tmp_path / "clip", 2)
    stretched = Frames(FrameSource(clip), width=16, height=8).next()
    cropped = Frames(FrameSource(clip), width=16, height=8, fit="crop").next()
    assert stretched.shape == cropped.shape == (8, 16, 3)
    assert not np.array_equal(stretched, cropped)
    assert Frames(FrameSource(clip), width=16).next().shape == (16, 16, 3)


@pytest.mark.parametrize("spec, complaint", [
    ("", "input is empty"),
    ("{tmp}/absent.mp4", "input not found"),
    ("{tmp}/corrupt.mp4", "no frames"),
    ("{tmp}/empty", "no image frames"),
])  # fmt: skip
def test_an_unusable_input_is_one_line(tmp_path, spec, complaint):
    (tmp_path / "corrupt.mp4").write_bytes(b"this is not a video")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=complaint) as error:
        open_source(spec.format(tmp=tmp_path), 0, 0, 25.0)
    assert "\n" not in str(error.value)
