"""The compact wire's ROS messages: KeypointPacket holds exactly the packet that
kp_motion.stream.wire describes (its CDR size is the one the bandwidth figures use), and
KeypointStream carries what the packets do not repeat."""

import numpy as np
import pytest

from conftest import REPO_ROOT
from kp_motion.stream import wire

pytestmark = pytest.mark.ros


def _definition_lines(text: str) -> list[str]:
    """A .msg file's field lines, comments and blank lines left out."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line]


def test_packet_msg_file_is_the_wire_modules_definition():
    text = (REPO_ROOT / "msg" / "KeypointPacket.msg").read_text()
    assert _definition_lines(text) == _definition_lines(wire.PACKET_MSG_DEFINITION)


def test_packet_message_size_is_what_the_wire_module_computes():
    from rclpy.serialization import deserialize_message, serialize_message

    from kp_motion.msg import KeypointPacket

    values = np.linspace(-0.9, 3.0, 60).astype(np.float32)
    message = KeypointPacket(packet=np.frombuffer(wire.encode(7, 70_000, values), np.uint8))
    data = serialize_message(message)
    # 4-byte encapsulation header + 74 bytes, padded to a multiple of 4.
    assert len(data) == wire.packet_message_bytes() == 80
    decoded = wire.decode(bytes(deserialize_message(data, KeypointPacket).packet))
    assert (decoded.stream_id, decoded.frame_index) == (7, 70_000 % wire.INDEX_MODULUS)
    np.testing.assert_array_equal(decoded.values, wire.quantized(values))


def test_stream_description_fields():
    from kp_motion.msg import KeypointStream

    assert KeypointStream.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "stream_id": "uint8", "model_id": "string",
        "fps": "double"}
