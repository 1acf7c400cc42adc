"""Face framing (kp_motion.data.face_framing) on a public-domain face placed off-centre on a
larger canvas: the crop is found, square, with the margin, stays put for small moves and follows
the face out; no face is a one-line error or a warning; `animate --fit face`, the camera's
frames and the graph option use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kp_motion.cli.main import main
from kp_motion.data import video_io
from kp_motion.data.face_framing import (
    MARGIN,
    Crop,
    FaceFramer,
    NoFaceError,
    default_fit,
    detect_faces,
    framed_video,
)
from kp_motion.stream.sources import Frames, FrameSource

HEAD = Path(__file__).parent / "data" / "astronaut_head.png"  # 320 x 320, README there
CANVAS = (480, 640)  # a webcam frame: rows, columns
# Where the face is in the head image: the eyes-to-chin region, measured by eye on the image
# (x from 110 to 215, y from 60 to 175); its centre, with a slack of a quarter of its size.
FACE_CENTRE_IN_HEAD = (162, 117)
CENTRE_SLACK = 25


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    return video_io.read_image(HEAD)


def on_canvas(head: np.ndarray, left: int, top: int) -> np.ndarray:
    canvas = np.full((*CANVAS, 3), 90, np.uint8)
    canvas[top : top + head.shape[0], left : left + head.shape[1]] = head
    return canvas


def crop_centre(framer: FaceFramer) -> tuple[float, float]:
    crop = framer.current
    return crop.left + crop.side / 2, crop.top + crop.side / 2


def assert_near_face(point: tuple[float, float], left: int, top: int) -> None:
    expected = (left + FACE_CENTRE_IN_HEAD[0], top + FACE_CENTRE_IN_HEAD[1])
    assert abs(point[0] - expected[0]) < CENTRE_SLACK, (point, expected)
    assert abs(point[1] - expected[1]) < CENTRE_SLACK, (point, expected)


def test_the_default_fit_follows_the_model():
    assert default_fit("face-128") == "face"
    assert default_fit("vox-256") == "face"
    assert default_fit("compact-64") == "resize"


def test_the_face_is_found_off_centre_and_framed_in_a_square_with_the_margin(head):
    frame = on_canvas(head, 300, 140)
    face = detect_faces(frame)[0]
    assert_near_face(face.centre, 300, 140)
    framer = FaceFramer()
    crop = framer.crop(frame)
    side = framer.current.side
    assert crop.shape == (side, side, 3)
    assert side == round((1 + 2 * MARGIN) * max(face.width, face.height))
    assert framer.current.holds(face, tolerance=0.0)  # the whole face box is in the crop
    assert_near_face(crop_centre(framer), 300, 140)


def test_the_crop_stays_for_small_moves_and_follows_the_face_out(head):
    framer = FaceFramer(detect_every=1)
    framer.crop(on_canvas(head, 40, 20))
    placed = framer.current
    for shift in (4, 8, -4):
        framer.crop(on_canvas(head, 40 + shift, 20 + shift))
        assert framer.current == placed and framer.moves == 1
    framer.crop(np.full((*CANVAS, 3), 90, np.uint8))  # no face in this frame: the crop stays
    assert framer.current == placed
    framer.crop(on_canvas(head, 300, 150))  # the face left the crop: it is framed again
    assert framer.moves == 2 and framer.current != placed
    assert_near_face(crop_centre(framer), 300, 150)


def test_a_crop_near_the_border_is_shifted_inside_and_stays_square(head):
    framer = FaceFramer(margin=2.0)  # 5 face sides: more than the frame's 480 rows
    crop = framer.crop(on_canvas(head, 0, 0))
    assert framer.current == Crop(left=0, top=0, side=480)  # shrunk to the rows, shifted in
    assert crop.shape == (480, 480, 3)


def test_a_smaller_input_after_a_large_one_is_framed_anew(head):
    framer = FaceFramer(detect_every=1)
    framer.crop(on_canvas(head, 300, 140))
    crop = framer.crop(head)  # 320 x 320: the old crop does not fit in it
    assert crop.shape[0] == crop.shape[1] == framer.current.side <= 320
    assert_near_face(crop_centre(framer), 0, 0)


def test_no_face_is_one_line_error_or_a_warning_once_and_the_centred_square():
    flat = np.full((*CANVAS, 3), 120, np.uint8)
    with pytest.raises(NoFaceError, match="no face found in clip.mp4") as error:
        FaceFramer(name="clip.mp4").crop(flat)
    assert "\n" not in str(error.value)
    warnings: list[str] = []
    framer = FaceFramer(require_face=False, warn=warnings.append, detect_every=1)
    for _ in range(3):
        crop = framer.crop(flat)
    assert len(warnings) == 1 and "centred square" in warnings[0]
    assert crop.shape == (480, 480, 3) and framer.current.left == 80


def test_a_face_appearing_after_the_fallback_is_framed(head):
    framer = FaceFramer(require_face=False, warn=lambda message: None, detect_every=1)
    framer.crop(np.full((*CANVAS, 3), 120, np.uint8))
    framer.crop(on_canvas(head, 300, 140))
    assert framer.face_seen
    assert_near_face(crop_centre(framer), 300, 140)


def test_a_video_is_framed_from_its_first_frame_with_a_face(head):
    flat = np.full((*CANVAS, 3), 120, np.uint8)
    framer = FaceFramer()
    crops = list(framed_video(iter([flat, flat, on_canvas(head, 300, 140)]), framer, "v.mp4"))
    assert len(crops) == 3 and framer.moves == 1  # placed on the third, used from the first
    assert_near_face(crop_centre(framer), 300, 140)
    np.testing.assert_array_equal(crops[0], framer.current.cut(flat))
    with pytest.raises(NoFaceError, match="no face found in the first 2 frames of v.mp4"):
        next(framed_video(iter([flat, flat]), FaceFramer(), "v.mp4"))


def test_the_camera_frames_with_fit_face_are_the_face_square(head, tmp_path):
    clip = video_io.write_video(tmp_path / "clip", [on_canvas(head, 300, 140)] * 2)
    frames = Frames(FrameSource(clip), width=64, fit="face")
    first = frames.next()
    assert first.shape == (64, 64, 3)
    assert_near_face(crop_centre(frames.framer), 300, 140)
    native = Frames(FrameSource(clip), fit="face").next()  # width = height = 0: crop's size
    assert native.shape[0] == native.shape[1] == frames.framer.current.side
    warnings: list[str] = []
    flat = video_io.write_video(tmp_path / "flat", [np.full((*CANVAS, 3), 9, np.uint8)])
    square = Frames(FrameSource(flat), fit="face", warn=warnings.append).next()
    assert square.shape == (480, 480, 3) and len(warnings) == 1


def test_the_graph_option_fit_defaults_to_face():
    from kp_motion.graph_config import options

    option = options.OPTIONS_BY_NAME["fit"]
    assert option.config_default() == "face"
    assert option.allowed == ("resize", "crop", "face")
    assert {("camera", "fit"), ("sender", "fit"), ("renderer", "fit")} <= set(option.targets())


def test_animate_fit_face_end_to_end_and_a_faceless_video_is_one_line(head, tmp_path, capsys):
    driving = [on_canvas(head, 280 + 4 * index, 120) for index in range(3)]
    video_io.write_video(tmp_path / "driving.mp4", driving, fps=10)
    common = ["animate", "--checkpoint", "fomm-compact-64", "--source", str(HEAD),
              "--fit", "face", "--device", "cpu"]  # fmt: skip
    status = main([*common, "--driving", str(tmp_path / "driving.mp4"),
                   "-o", str(tmp_path / "out")])  # fmt: skip
    assert status == 0
    assert video_io.read_video(tmp_path / "out").shape == (3, 64, 64, 3)
    status = main(["animate", "--checkpoint", "fomm-compact-64", "--mode", "reconstruction",
                   "--fit", "face", "--device", "cpu", "--driving", str(tmp_path / "driving.mp4"),
                   "-o", str(tmp_path / "rec")])  # fmt: skip
    assert status == 0 and video_io.read_video(tmp_path / "rec").shape == (3, 64, 64, 3)
    video_io.write_video(tmp_path / "flat.mp4", [np.full((*CANVAS, 3), 9, np.uint8)] * 2)
    capsys.readouterr()
    status = main([*common, "--driving", str(tmp_path / "flat.mp4"),
                   "-o", str(tmp_path / "none")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and "no face found in the first 2 frames of" in err and "\n" not in err
    assert not (tmp_path / "none").exists()
