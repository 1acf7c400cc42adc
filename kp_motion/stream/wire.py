"""Wire formats of the sender-to-receiver keypoint link, without ROS: float32 Keypoint60 (the
method's message) and a compact packet of quantised values (docs/bandwidth/README.md).

Compact packet (PACKET_BYTES = 74 bytes), all fields big-endian, values bit-packed MSB first:

    byte 0      high nibble: format version (1); low nibble: flags, FLAG_END (bit 0) marks the
                end marker: frame_index is the stream's last frame, the values are not used
                (all zero codes); the other bits are reserved (0)
    byte 1      stream id 0..255: names the detector model_id and frame_id, agreed once when the
                link is set up instead of repeating two strings in every message
    bytes 2-3   frame_index modulo 65536; the receiver unwraps it against the last index it
                received (unambiguous while fewer than 32768 frames pass between two received
                messages, 22 minutes at 25 fps)
    bytes 4-73  the 60 values in the kp_motion.keypoints layout: 20 positions of POSITION_BITS
                bits, then 40 Jacobian entries of JACOBIAN_BITS bits

Quantisation: code = round((value - low) / step), clamped to 0..2^bits - 1; value = low + code
* step. Within [low, low + (2^bits - 1) * step] the error is at most step / 2. The ranges and
steps come from the shared VoxCeleb keypoints (vox-256 detector, 8229 frames): positions lie
in [-0.942, 0.957] and Jacobian entries in [-1.854, 3.449]; their frame-to-frame changes have
RMS 0.018 and 0.034. Steps: positions 2/1024 (0.25 pixel at 256 x 256: a position unit is 128
pixels), Jacobians 8/512 = 1/64 over [-4, 4) (a Jacobian error d moves the warp at distance r
from its keypoint by d * r: at r = 0.2 the largest error 1/128 is 0.2 pixel). Measured on those
frames, the quantisation MSE over the 60 values is 1.37e-5, under 1 % of the keypoint MSE of the
method's fixed M = N = 6 schedule with the best shipped forecaster (1.50e-3).

The payload of a compact packet, like that of a Keypoint60, is its CDR serialisation as a ROS
message (here a message holding the packet as a fixed uint8 array, PACKET_MSG_DEFINITION),
measured with rosbags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kp_motion.keypoints import NUM_VALUES, POSITION_VALUES
from kp_motion.names import COMPACT, FLOAT32, WIRES  # noqa: F401 (the wire names, re-exported)

FORMAT_VERSION = 1
FLAG_END = 0x1
HEADER_BYTES = 4
INDEX_MODULUS = 1 << 16

POSITION_BITS = 10
POSITION_LOW = -1.0
POSITION_STEP = 2.0 / (1 << POSITION_BITS)
JACOBIAN_BITS = 9
JACOBIAN_LOW = -4.0
JACOBIAN_STEP = 8.0 / (1 << JACOBIAN_BITS)
JACOBIAN_VALUES = NUM_VALUES - POSITION_VALUES

# Per value (60,): its bit width, lowest code value and step, in the Keypoint60 layout.
BITS = np.array([POSITION_BITS] * POSITION_VALUES + [JACOBIAN_BITS] * JACOBIAN_VALUES)
LOWS = np.array([POSITION_LOW] * POSITION_VALUES + [JACOBIAN_LOW] * JACOBIAN_VALUES)
STEPS = np.array([POSITION_STEP] * POSITION_VALUES + [JACOBIAN_STEP] * JACOBIAN_VALUES)
VALUE_BITS = int(BITS.sum())
PACKET_BYTES = HEADER_BYTES + (VALUE_BITS + 7) // 8

PACKET_MSG_TYPE = "kp_motion/msg/KeypointPacket"
PACKET_MSG_DEFINITION = f"uint8[{PACKET_BYTES}] packet\n"

# For every packed value bit (MSB first within each value): its value and its bit's shift.
_BIT_VALUE = np.repeat(np.arange(NUM_VALUES), BITS)
_BIT_SHIFT = np.concatenate([np.arange(bits - 1, -1, -1) for bits in BITS])


def quantize(values: np.ndarray) -> np.ndarray:
    """(..., 60) values -> (..., 60) integer codes (clamped to each value's range)."""
    values = np.asarray(values, np.float64)
    if values.shape[-1:] != (NUM_VALUES,) or not np.isfinite(values).all():
        raise ValueError(f"quantize needs finite (..., {NUM_VALUES}) values, got {values.shape}")
    codes = np.rint((values - LOWS) / STEPS)
    return np.clip(codes, 0, (1 << BITS) - 1).astype(np.int64)


def dequantize(codes: np.ndarray) -> np.ndarray:
    """(..., 60) integer codes -> (..., 60) float32 values."""
    return (LOWS + np.asarray(codes, np.float64) * STEPS).astype(np.float32)


def quantized(values: np.ndarray) -> np.ndarray:
    """The values a compact packet delivers for `values` (quantise, then dequantise)."""
    return dequantize(quantize(values))


@dataclass(frozen=True)
class Packet:
    """A decoded compact packet: frame_index is still modulo INDEX_MODULUS."""

    stream_id: int
    frame_index: int
    values: np.ndarray  # (60,) float32, dequantised
    end: bool = False  # the end marker: frame_index was the stream's last frame


def encode(stream_id: int, frame_index: int, values: np.ndarray, end: bool = False) -> bytes:
    """One compact packet (PACKET_BYTES) for a frame, or (end) the stream's end marker."""
    if not 0 <= stream_id <= 255:
        raise ValueError(f"stream id must be 0..255, got {stream_id}")
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    codes = quantize(values)
    bits = ((codes[_BIT_VALUE] >> _BIT_SHIFT) & 1).astype(np.uint8)
    first = FORMAT_VERSION << 4 | (FLAG_END if end else 0)
    index = (frame_index % INDEX_MODULUS).to_bytes(2, "big")
    header = bytes([first, stream_id]) + index
    return header + np.packbits(bits).tobytes()


def decode(packet: bytes) -> Packet:
    """A compact packet -> its fields; a ValueError names a malformed packet."""
    if len(packet) != PACKET_BYTES:
        raise ValueError(f"compact packet must be {PACKET_BYTES} bytes, got {len(packet)}")
    if packet[0] >> 4 != FORMAT_VERSION:
        raise ValueError(f"compact packet format {packet[0] >> 4}, expected {FORMAT_VERSION}")
    bits = np.unpackbits(np.frombuffer(packet[HEADER_BYTES:], np.uint8))[:VALUE_BITS]
    bits = bits.astype(np.int64)
    codes = np.bincount(_BIT_VALUE, weights=bits << _BIT_SHIFT, minlength=NUM_VALUES)
    return Packet(packet[1], int.from_bytes(packet[2:4], "big"), dequantize(codes),
                  end=bool(packet[0] & FLAG_END))


def end_marker(stream_id: int, last_index: int) -> bytes:
    """The packet that tells the receiver frame last_index was the stream's last."""
    return encode(stream_id, last_index, dequantize(np.zeros(NUM_VALUES, np.int64)), end=True)


def unwrap_index(wrapped: int, last_index: int | None) -> int:
    """The full frame_index of a packet's wrapped index: the one nearest after-or-around the
    last received index (the first packet of a stream is taken as is)."""
    if last_index is None:
        return wrapped
    offset = (wrapped - last_index) % INDEX_MODULUS
    if offset >= INDEX_MODULUS // 2:
        offset -= INDEX_MODULUS  # an older (late or reordered) packet
    return last_index + offset


# A serialised ROS message (CDR) is padded to a multiple of 4 bytes, the padding counted in its
# encapsulation header's options: rclpy's serialize_message gives 80 bytes for the 78 of a
# KeypointPacket, which is what the publisher hands to the transport (test_ros_packet_msg.py).
CDR_ALIGNMENT = 4


def packet_message_bytes() -> int:
    """Serialised size of one compact packet as a ROS message holding it in a fixed uint8
    array (msg/KeypointPacket.msg): its CDR (4-byte encapsulation header, measured with
    rosbags), padded to a multiple of CDR_ALIGNMENT as rclpy serialises it."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(PACKET_MSG_DEFINITION, PACKET_MSG_TYPE))
    message = store.types[PACKET_MSG_TYPE](packet=np.zeros(PACKET_BYTES, np.uint8))
    size = len(store.serialize_cdr(message, PACKET_MSG_TYPE))
    return -(-size // CDR_ALIGNMENT) * CDR_ALIGNMENT


def payload_bytes(wire: str) -> int:
    """Serialised bytes of one message of `wire` (a Keypoint60 with the graph's frame_id and a
    detector model_id of the length every model_id has, or a compact packet)."""
    if wire == COMPACT:
        return packet_message_bytes()
    if wire == FLOAT32:
        from kp_motion.models.checkpoint import MODEL_ID_LENGTH
        from kp_motion.stream.message import keypoint60_bytes

        return keypoint60_bytes("0" * MODEL_ID_LENGTH)
    raise ValueError(f"unknown wire format {wire!r} (expected {' or '.join(WIRES)})")


# Per-message transport overhead added to the payload for wire bytes: IPv4 header 20 + UDP
# header 8 + RTPS message header 20 + INFO_TS submessage 12 + DATA submessage header 24, for
# one sample per datagram (DDS's default for a best-effort stream sent as it is produced).
# Link-layer framing (Ethernet 38 bytes with preamble and gap, or Wi-Fi's) is not included.
TRANSPORT_OVERHEAD_BYTES = 20 + 8 + 20 + 12 + 24


def delivered(wire: str, values: np.ndarray) -> np.ndarray:
    """The float32 values the receiver gets when `values` is sent over `wire`."""
    if wire == COMPACT:
        return quantized(values)
    if wire == FLOAT32:
        return np.asarray(values, np.float32)
    raise ValueError(f"unknown wire format {wire!r} (expected {' or '.join(WIRES)})")
