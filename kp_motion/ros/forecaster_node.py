"""forecaster: the network's keypoint stream -> a full-rate Keypoint60 stream, one per frame.

Topics (relative names, remapped by the graph):
    keypoints       Keypoint60 in (wire float32), as transmitted (some maybe lost)
    packets         KeypointPacket in (wire compact), with
    stream          KeypointStream in, latched: the compact stream's description (model_id,
                    frame_id, capture stamp of frame 0, fps), which the packets' stream id names
    keypoints_full  Keypoint60 out, every frame_index: received frames as DETECTED, withheld
                    frames PREDICTED, frames lost in transit CONCEALED (policy predictive: from
                    the frame where the max_gap rule shows a loss to the next arrival; see
                    kp_motion.stream.predictive)

End of stream (policy predictive, wire compact): the sender's end marker packet (the sender
node's, or the keypoint_detector's once the camera's clip_end named the last frame) names the
last frame; the frames up to it are forecast at once and none after it, one output frame per
captured frame. Without it (wire float32, a live camera, a lost marker or a dead sender)
forecasting stops 2 * max_gap frames past the last received message.

The logic is ROS-free: policy fixed, the schedule's Receiver (kp_motion.forecasting.schedule);
policy predictive, kp_motion.stream.predictive.PredictiveReceiver, the same code as the sender's
mirror and as the simulation (kp_motion.stream.receiving.PredictiveStream); both behind
kp_motion.stream.receiving.KeypointReceiver (one detector's model_id per stream, warnings for
corrected values). Compact packets are unpacked by kp_motion.stream.receiving.PacketUnpacker.
This node converts messages and keeps time.

Stamps: with policy fixed over float32, forecast frames get a stamp extrapolated from the last
received frame's stamp by the frame period (1 / fps). Otherwise every frame is stamped on the
stream's frame clock: capture stamp of frame 0 (the description's, or the first Keypoint60's
minus its index in periods) plus frame_index periods.

Timing: policy fixed conceals a lost frame when the next frame arrives, or (conceal_timeout >
0) once its message is overdue by that many seconds. Policy predictive forecasts frame i when
its deadline passes, one period plus wait_budget after its capture time (a timer at the frame
rate); a message for a frame already forecast is replayed into the forecaster's state but not
shown. Output latency is thus the network delay plus wait_budget. Deadlines compare capture
stamps with this node's clock: sender and receiver machines need synchronised clocks (as the
stats node's latency does).
"""

from __future__ import annotations

import time

from kp_motion.msg import Keypoint60, KeypointPacket, KeypointStream
from kp_motion.names import COMPACT, PREDICTIVE
from kp_motion.ros.common import (
    KpMotionNode,
    configure_torch,
    exit_process,
    run_node,
    startup_errors,
)
from kp_motion.ros.conversions import (
    MalformedMessageError,
    keypoints_to_message,
    message_values,
    ns_to_stamp,
    stamp_to_ns,
)
from kp_motion.ros.qos import KEYPOINT_HISTORY, KEYPOINT_QOS, LATCHED_QOS
from kp_motion.stream.receiving import (
    KeypointReceiver,
    PacketUnpacker,
    PredictiveStream,
    StreamDescription,
    due_frame,
    frame_stamp_ns,
)


class ForecasterNode(KpMotionNode):
    config_key = "forecaster"

    def __init__(self) -> None:
        super().__init__()
        from kp_motion.devices import resolve_device
        from kp_motion.forecasting.named import load_named_forecaster
        from kp_motion.forecasting.schedule import Receiver

        s = self.settings
        configure_torch(s["torch_threads"])
        self.predictive = s["policy"] == PREDICTIVE
        with startup_errors():
            device = resolve_device(s["device"])
            forecaster = load_named_forecaster(s["forecaster"], s["forecaster_path"], device)
            if self.predictive:
                self.receiver = PredictiveStream(forecaster, s["max_gap"])
            else:
                self.receiver = Receiver(forecaster, s["m"], s["n"])
        self.stream = KeypointReceiver(self.receiver, self.get_logger().warning,
                                       forecaster=forecaster)
        self.period_ns = round(1e9 / s["fps"])
        self.last_received: Keypoint60 | None = None
        self.last_index: int | None = None  # of the last frame received and used
        self.last_arrival = 0.0
        # The frame clock (capture stamp of frame 0) and the stream's names, once known; None =
        # stamps extrapolated from the last received Keypoint60 (policy fixed, wire float32).
        self.origin_ns: int | None = None
        self.names = ("", "")  # (model_id, frame_id) of the stream
        self.unpacker = PacketUnpacker(KEYPOINT_HISTORY)
        self.publisher = self.create_publisher(Keypoint60, "keypoints_full", KEYPOINT_QOS)
        if self.predictive:
            self.create_timer(1.0 / s["fps"], self._forecast_due)
        elif s["conceal_timeout"] > 0:
            self.create_timer(1.0 / s["fps"], self._conceal_overdue)
        self.get_logger().info(f"forecaster {forecaster.name}, policy {s['policy']}, wire "
                               f"{s['wire']}, m={s['m']} n={s['n']} max_gap={s['max_gap']}")
        self.when_subscribed(self.publisher, s["wait_for_subscribers"], self._subscribe)

    def _subscribe(self) -> None:
        if self.settings["wire"] == COMPACT:
            self.create_subscription(KeypointStream, "stream", self._on_stream, LATCHED_QOS)
            self.create_subscription(KeypointPacket, "packets", self._on_packet, KEYPOINT_QOS)
        else:
            self.create_subscription(Keypoint60, "keypoints", self._on_keypoints, KEYPOINT_QOS)
        self.announce_ready()

    # --- wire compact ---------------------------------------------------------------------
    def _on_stream(self, message: KeypointStream) -> None:
        description = StreamDescription(int(message.stream_id), message.model_id,
                                        message.header.frame_id,
                                        stamp_to_ns(message.header.stamp), float(message.fps))
        if abs(description.fps - self.settings["fps"]) > 1e-6:
            self.get_logger().warning(f"stream at {description.fps} fps, this node's fps is "
                                      f"{self.settings['fps']}: frames are timed by the latter")
        self.origin_ns = description.origin_ns
        self.names = (description.model_id, description.frame_id)
        for frame_index, values in self.unpacker.describe(description):
            self._take(description.model_id, frame_index, values)

    def _end(self, last_index: int) -> None:
        """The sender's end marker (policy fixed has no use for it: its receiver ignores it)."""
        if self.predictive and self.origin_ns is not None:
            for emitted in self.receiver.end(last_index):
                self._publish_on_clock(emitted)

    def _on_packet(self, message: KeypointPacket) -> None:
        try:
            unpacked = self.unpacker.unpack(bytes(message.packet))
        except ValueError as error:
            self.reject("malformed packet", str(error))
            return
        for frame_index, values in unpacked:
            self._take(self.names[0], frame_index, values)

    # --- wire float32 ---------------------------------------------------------------------
    def _on_keypoints(self, message: Keypoint60) -> None:
        try:
            values = message_values(message)
        except MalformedMessageError as error:
            self.reject(error.kind, str(error))
            return
        frame_index = int(message.frame_index)
        if self.predictive and self.origin_ns is None:
            self.origin_ns = stamp_to_ns(message.header.stamp) - frame_index * self.period_ns
            self.names = (message.model_id, message.header.frame_id)
        if self.origin_ns is not None:
            self._take(message.model_id, frame_index, values)
            return
        received = self.stream.receive(message.model_id, frame_index, values)
        reference = self.last_received  # stamps the frames of a gap before this one
        for emitted in received.frames:
            if emitted.frame_index == message.frame_index:
                # Received and used (not a duplicate or late): the new stamp reference.
                reference = self.last_received = message
                self._arrived(frame_index)
            self._publish_extrapolated(emitted, reference or message)

    # --- frame clock (wire compact or policy predictive) ----------------------------------
    def _take(self, model_id: str, frame_index: int, values) -> None:
        if values is None:
            self._end(frame_index)
            return
        for emitted in self.stream.receive(model_id, frame_index, values).frames:
            if emitted.frame_index == frame_index:
                self._arrived(frame_index)
            self._publish_on_clock(emitted)

    def _arrived(self, frame_index: int) -> None:
        self.last_index, self.last_arrival = frame_index, time.monotonic()

    def _forecast_due(self) -> None:
        if self.origin_ns is None:
            return
        wait_ns = round(self.settings["wait_budget"] * 1e9)
        due = due_frame(self.get_clock().now().nanoseconds, self.origin_ns, self.period_ns,
                        wait_ns)
        for emitted in self.receiver.predict_until(due):
            self._publish_on_clock(emitted)

    def _publish_on_clock(self, emitted) -> None:
        stamp_ns = frame_stamp_ns(self.origin_ns, self.period_ns, emitted.frame_index)
        self._publish(emitted, self.names[0], ns_to_stamp(stamp_ns), self.names[1])

    # --- policy fixed, wire float32 -------------------------------------------------------
    def _conceal_overdue(self) -> None:
        if self.last_index is None:
            return
        overdue_s = time.monotonic() - self.last_arrival - self.settings["conceal_timeout"]
        due_frames = int(overdue_s * 1e9 // self.period_ns)
        if due_frames <= 0:
            return
        for emitted in self.receiver.predict_until(self.last_index + due_frames):
            if self.origin_ns is None:
                self._publish_extrapolated(emitted, self.last_received)
            else:
                self._publish_on_clock(emitted)

    def _publish_extrapolated(self, emitted, reference: Keypoint60) -> None:
        """Publish a frame; forecast ones are stamped from `reference`, a received frame."""
        steps = emitted.frame_index - int(reference.frame_index)
        stamp = ns_to_stamp(stamp_to_ns(reference.header.stamp) + steps * self.period_ns)
        self._publish(emitted, reference.model_id, stamp, reference.header.frame_id)

    def _publish(self, emitted, model_id: str, stamp, frame_id: str) -> None:
        self.publisher.publish(
            keypoints_to_message(
                emitted.values,
                frame_index=emitted.frame_index,
                origin=int(emitted.origin),
                model_id=model_id,
                stamp=stamp,
                frame_id=frame_id,
            )
        )

    def on_exit(self) -> None:
        self.log_final(self.stream.summary(malformed=sum(self.rejected.values())))


def main(args: list[str] | None = None) -> int:
    return run_node(ForecasterNode, args)


if __name__ == "__main__":
    exit_process(main())
