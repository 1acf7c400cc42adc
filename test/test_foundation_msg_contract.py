"""The Keypoint60 message contract: field sizes, constants, and their core mirrors."""

import numpy as np
import pytest

from kp_motion import keypoints

pytestmark = pytest.mark.ros


def test_constants_match_core_mirror():
    from kp_motion.msg import Keypoint60

    assert Keypoint60.ORIGIN_DETECTED == keypoints.Origin.DETECTED == 0
    assert Keypoint60.ORIGIN_PREDICTED == keypoints.Origin.PREDICTED == 1
    assert Keypoint60.ORIGIN_CONCEALED == keypoints.Origin.CONCEALED == 2
    assert Keypoint60.NUM_KEYPOINTS == keypoints.NUM_KEYPOINTS == 10
    assert Keypoint60.NUM_VALUES == keypoints.NUM_VALUES == 60


def test_fields_and_types():
    from kp_motion.msg import Keypoint60

    types = Keypoint60.get_fields_and_field_types()
    assert types == {
        "header": "std_msgs/Header",
        "frame_index": "uint64",
        "origin": "uint8",
        "model_id": "string",
        "values": "float[60]",
    }
    message = Keypoint60()
    assert len(message.values) == 60
    assert message.values.dtype == np.float32


def test_serialised_size_is_pinned():
    """The wire size is what the bandwidth figures rest on: 4-byte encapsulation header,
    Header (stamp 8 bytes + frame_id string), frame_index, origin, model_id, 60 float32."""
    from rclpy.serialization import serialize_message

    from kp_motion.msg import Keypoint60

    message = Keypoint60()
    message.header.frame_id = "camera"
    message.model_id = "0123456789ab"
    message.values = np.arange(60, dtype=np.float32)
    assert len(serialize_message(message)) == 300
    message.header.frame_id = ""
    message.model_id = ""
    assert len(serialize_message(message)) == 280
