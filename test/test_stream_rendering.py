"""The receiver's rendering without ROS: Animator.render_values, StreamRenderer, overlays."""

from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import SIZE, clip_frames, make_checkpoint

from kp_motion.keypoints import Origin
from kp_motion.stream.rendering import ORIGIN_COLOURS, StreamRenderer, overlay_frame


def test_overlay_marks_origin_with_a_border_colour():
    frame = np.zeros((16, 16, 3), np.uint8)
    positions = np.zeros((10, 2), np.float32)
    for origin, colour in ORIGIN_COLOURS.items():
        canvas = overlay_frame(frame, positions, origin)
        assert tuple(canvas[0, 5]) == colour and tuple(canvas[15, 15]) == colour
        assert canvas[8, 8].any(), "keypoints at the centre are drawn"


def test_overlay_survives_huge_finite_and_non_finite_positions():
    frame = np.zeros((16, 16, 3), np.uint8)
    positions = np.zeros((10, 2), np.float32)
    positions[0] = (1e9, -1e9)  # finite, far outside the int32 pixel range once scaled
    positions[1] = (np.nan, np.inf)
    canvas = overlay_frame(frame, positions, int(Origin.DETECTED))
    assert canvas.shape == frame.shape
    assert canvas[8, 8].any(), "the other keypoints are still drawn"


@pytest.fixture(scope="module")
def animator_parts(tmp_path_factory):
    from kp_motion.models.checkpoint import load_model

    folder = make_checkpoint(tmp_path_factory.mktemp("model") / "tiny")
    return load_model(folder)


def _renderer(parts, overlay=True, mode="relative"):
    from kp_motion.models.animator import Animator

    config, kp_detector, generator = parts
    return StreamRenderer(Animator(kp_detector, generator, config, mode=mode), overlay)


def _values(parts, frame):
    from kp_motion.stream.sender import FrameDetector

    config, kp_detector, _ = parts
    return FrameDetector(kp_detector, config.image_size, "cpu")(frame)


def test_render_values_is_the_normalise_render_convert_path_in_one_call(animator_parts):
    from kp_motion.data.video_io import from_tensor
    from kp_motion.models.animator import keypoints_from_values

    frames = clip_frames(3)
    values = [_values(animator_parts, frame) for frame in frames]
    one_call, by_steps = _renderer(animator_parts), _renderer(animator_parts)
    for stream in (one_call, by_steps):
        stream.set_source(frames[0])
    for value in values:
        image, positions = one_call.animator.render_values(value)
        animator = by_steps.animator
        kp_norm = animator.normalized(keypoints_from_values(value, animator.device))
        expected = from_tensor(animator.render_normalized(kp_norm)["prediction"])[0]
        np.testing.assert_array_equal(image, expected)
        np.testing.assert_array_equal(positions, kp_norm["value"][0].numpy())
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8


def test_a_frame_index_going_back_starts_a_new_driving_stream(animator_parts):
    frames = clip_frames(4)
    values = [_values(animator_parts, frame) for frame in frames]
    stream = _renderer(animator_parts)
    stream.set_source(frames[0])
    stream.render(5, values[0], int(Origin.DETECTED))
    stream.render(6, values[1], int(Origin.PREDICTED))
    reference = stream.animator.kp_driving_initial["value"].numpy().copy()
    stream.render(0, values[2], int(Origin.DETECTED))  # a new stream: its first frame leads
    restarted = stream.animator.kp_driving_initial["value"].numpy()
    assert not np.array_equal(reference, restarted)
    np.testing.assert_allclose(restarted[0], values[2][:20].reshape(10, 2))
    assert stream.rendered == 3


def test_overlay_only_when_asked_and_with_the_frame_s_origin(animator_parts):
    frame = clip_frames(1)[0]
    value = _values(animator_parts, frame)
    with_overlay, plain = _renderer(animator_parts), _renderer(animator_parts, overlay=False)
    for stream in (with_overlay, plain):
        stream.set_source(frame)
    rendered = with_overlay.render(0, value, int(Origin.CONCEALED))
    assert tuple(rendered.overlay[0, 0]) == ORIGIN_COLOURS[int(Origin.CONCEALED)]
    without = plain.render(0, value, int(Origin.CONCEALED))
    assert without.overlay is None
    np.testing.assert_array_equal(rendered.image, without.image)  # the overlay changes nothing


def test_a_source_smaller_than_the_model_is_upscaled_with_a_warning(animator_parts):
    renderer = _renderer(animator_parts)
    assert renderer.set_source(clip_frames(1)[0]) is None
    note = renderer.set_source(np.full((1, 1, 3), 90, np.uint8))
    assert note is not None and "the source image of 1x1 pixels is upscaled" in note
