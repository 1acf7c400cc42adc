"""Keypoint60 CDR size and stream-rate arithmetic."""

from __future__ import annotations

import pytest

from kp_motion.evaluation.bandwidth import CdrSizer, keypoint60_message_bytes, stream_bandwidth


def test_keypoint60_size_by_hand() -> None:
    # frame_id "camera" (6 chars), model_id "abcdef123456" (12 chars):
    # stamp 8 | frame_id 4+7 -> 19 | pad to 24, frame_index -> 32 | origin -> 33
    # | pad to 36, model_id 4+13 -> 53 | pad to 56, 60 floats -> 296 | + 4 header = 300
    assert keypoint60_message_bytes("camera", "abcdef123456") == 300
    # Empty strings: 8 | 4+1 -> 13 | 16..24 | 25 | 28+5 -> 33 | 36+240 -> 276 | 280
    assert keypoint60_message_bytes("", "") == 280
    # Multi-byte UTF-8 counts bytes, not characters.
    assert keypoint60_message_bytes("é", "") == keypoint60_message_bytes("ab", "")


def test_stream_rates_with_and_without_prediction() -> None:
    rates = stream_bandwidth(
        fps=25, sent_frames=6, withheld_frames=6, frame_id="camera", model_id="abcdef123456"
    )
    assert rates.full_bytes_per_second == 300 * 25
    assert rates.predicted_bytes_per_second == 300 * 25 / 2
    assert rates.ratio == 0.5
    summary = rates.as_dict()
    assert summary["full_kbit_per_second"] == pytest.approx(60.0)
    assert summary["predicted_kbit_per_second"] == pytest.approx(30.0)
    uneven = stream_bandwidth(fps=30, sent_frames=5, withheld_frames=15)
    assert uneven.ratio == pytest.approx(0.25)
    with pytest.raises(ValueError, match="fps"):
        stream_bandwidth(fps=0, sent_frames=1, withheld_frames=1)
    with pytest.raises(ValueError, match="sent frame"):
        stream_bandwidth(fps=25, sent_frames=0, withheld_frames=1)


def test_cdr_sizer_matches_rclpy_serialisation() -> None:
    """The sizer's alignment rules against the real serializer, on standard messages."""
    serialization = pytest.importorskip("rclpy.serialization")
    messages = pytest.importorskip("rcl_interfaces.msg")
    for name in ("", "a", "abc", "abcd", "abcdefg"):
        parameter = messages.Parameter()
        parameter.name = name
        parameter.value.integer_array_value = [1, 2, 3]
        expected = CdrSizer().string(name).primitive(1).primitive(1).primitive(8).primitive(8)
        expected.string("").sequence(1, 0).sequence(1, 0).sequence(8, 3).sequence(8, 0)
        expected.sequence(4, 0)  # string sequence: its count only
        assert len(serialization.serialize_message(parameter)) == 4 + expected.size, name


@pytest.mark.ros
def test_keypoint60_size_matches_rclpy() -> None:
    from rclpy.serialization import serialize_message

    from kp_motion.msg import Keypoint60

    for frame_id, model_id in (("", ""), ("camera", "abcdef123456"), ("cam_optical", "x")):
        message = Keypoint60()
        message.header.frame_id = frame_id
        message.model_id = model_id
        assert len(serialize_message(message)) == keypoint60_message_bytes(frame_id, model_id)
