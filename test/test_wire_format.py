"""The compact wire format: its pinned size, the quantisation round trip within the documented
step, the header fields and bad packets."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.keypoints import NUM_VALUES, POSITION_VALUES
from kp_motion.stream import wire


def test_compact_message_size_is_pinned():
    # 4 header bytes + 20 positions x 10 bits + 40 Jacobian entries x 9 bits = 74 bytes;
    # as a ROS message: + the 4-byte CDR encapsulation header, no length for a fixed array.
    assert wire.PACKET_BYTES == 74
    assert len(wire.encode(0, 0, np.zeros(NUM_VALUES))) == 74
    assert wire.payload_bytes(wire.COMPACT) == 80  # 4 + 74, padded to a multiple of 4


def test_round_trip_error_is_within_half_a_step():
    rng = np.random.default_rng(3)
    positions = rng.uniform(-1.0, 1.0 - wire.POSITION_STEP, size=(500, POSITION_VALUES))
    jacobians = rng.uniform(-4.0, 4.0 - wire.JACOBIAN_STEP, size=(500, NUM_VALUES - 20))
    values = np.concatenate([positions, jacobians], axis=1)
    error = np.abs(wire.quantized(values).astype(np.float64) - values)
    assert (error[:, :POSITION_VALUES] <= wire.POSITION_STEP / 2 + 1e-7).all()
    assert (error[:, POSITION_VALUES:] <= wire.JACOBIAN_STEP / 2 + 1e-7).all()
    # The step is used, not a finer one: some errors come close to half of it.
    assert error[:, POSITION_VALUES:].max() > 0.4 * wire.JACOBIAN_STEP


def test_packet_round_trip_keeps_fields_and_quantised_values():
    values = np.random.default_rng(5).uniform(-0.9, 0.9, NUM_VALUES).astype(np.float32)
    packet = wire.decode(wire.encode(7, 70_000, values))
    assert packet.stream_id == 7
    assert packet.frame_index == 70_000 % wire.INDEX_MODULUS
    assert np.array_equal(packet.values, wire.quantized(values))
    # Quantised values are fixed points of the quantiser: re-sending changes nothing.
    assert np.array_equal(wire.quantized(packet.values), packet.values)


def test_out_of_range_values_are_clamped_to_the_range():
    values = np.zeros(NUM_VALUES)
    values[0], values[POSITION_VALUES] = 5.0, -9.0
    decoded = wire.quantized(values)
    assert decoded[0] == pytest.approx(1.0 - wire.POSITION_STEP)
    assert decoded[POSITION_VALUES] == pytest.approx(-4.0)


def test_frame_index_unwraps_across_the_modulus():
    last = wire.INDEX_MODULUS - 2
    assert wire.unwrap_index(1, last) == wire.INDEX_MODULUS + 1
    assert wire.unwrap_index(last - 3, last) == last - 3  # a late packet stays in the past
    assert wire.unwrap_index(9, None) == 9


def test_bad_packets_and_fields_are_one_line_errors():
    with pytest.raises(ValueError, match="must be 74 bytes"):
        wire.decode(b"\x10\x00")
    with pytest.raises(ValueError, match="format 3"):
        wire.decode(bytes([0x30]) + bytes(73))
    with pytest.raises(ValueError, match="stream id"):
        wire.encode(256, 0, np.zeros(NUM_VALUES))
    with pytest.raises(ValueError, match="finite"):
        wire.quantize(np.full(NUM_VALUES, np.nan))
    with pytest.raises(ValueError, match="unknown wire format"):
        wire.payload_bytes("float16")


def test_the_end_marker_is_a_flagged_packet_of_the_last_index():
    packet = wire.end_marker(7, 70_000)
    decoded = wire.decode(packet)
    assert len(packet) == wire.PACKET_BYTES and packet[0] == wire.FORMAT_VERSION << 4 | 1
    assert (decoded.stream_id, decoded.frame_index, decoded.end) == (7, 70_000 % 65_536, True)
    assert not wire.decode(wire.encode(7, 3, np.zeros(60))).end
