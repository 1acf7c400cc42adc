"""forecaster: the network's Keypoint60 stream -> a full-rate stream, one message per frame.

Topics (relative names, remapped by the graph):
    keypoints       Keypoint60 in, as transmitted (m of every m + n frames, some maybe lost)
    keypoints_full  Keypoint60 out, every frame_index: received frames as DETECTED, withheld
                    frames PREDICTED, frames lost in transit CONCEALED

The schedule logic is kp_motion.forecasting.schedule.Receiver, behind
kp_motion.stream.receiving.KeypointReceiver (one detector's model_id per stream, warnings for
corrected values); this node only converts messages. Forecast frames get a stamp
extrapolated from the last received frame's stamp by the frame period (1 / fps) and that
frame's frame_id and model_id.

Lost frames are concealed when the next frame arrives. With conceal_timeout > 0 a frame whose
message is overdue by that many seconds (past its expected arrival, one period after the
previous frame's) is concealed without waiting; the Receiver caps this at its max_gap frames
past the last received one.
"""

from __future__ import annotations

import time

from kp_motion.msg import Keypoint60
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
from kp_motion.ros.qos import KEYPOINT_QOS
from kp_motion.stream.receiving import KeypointReceiver


class ForecasterNode(KpMotionNode):
    config_key = "forecaster"

    def __init__(self) -> None:
        super().__init__()
        from kp_motion.devices import resolve_device
        from kp_motion.forecasting.named import load_named_forecaster
        from kp_motion.forecasting.schedule import Receiver

        s = self.settings
        configure_torch(s["torch_threads"])
        with startup_errors():
            device = resolve_device(s["device"])
            forecaster = load_named_forecaster(s["forecaster"], s["forecaster_path"], device)
            self.receiver = Receiver(forecaster, s["m"], s["n"])
        self.stream = KeypointReceiver(self.receiver, self.get_logger().warning)
        self.period_ns = round(1e9 / s["fps"])
        self.last_received: Keypoint60 | None = None
        self.last_arrival = 0.0
        self.publisher = self.create_publisher(Keypoint60, "keypoints_full", KEYPOINT_QOS)
        if s["conceal_timeout"] > 0:
            self.create_timer(1.0 / s["fps"], self._conceal_overdue)
        self.get_logger().info(f"forecaster {forecaster.name}, m={s['m']} n={s['n']}")
        self.when_subscribed(self.publisher, s["wait_for_subscribers"], self._subscribe)

    def _subscribe(self) -> None:
        self.create_subscription(Keypoint60, "keypoints", self._on_keypoints, KEYPOINT_QOS)
        self.announce_ready()

    def _on_keypoints(self, message: Keypoint60) -> None:
        try:
            values = message_values(message)
        except MalformedMessageError as error:
            self.reject(error.kind, str(error))
            return
        received = self.stream.receive(message.model_id, int(message.frame_index), values)
        reference = self.last_received  # stamps the frames of a gap before this one
        for emitted in received.frames:
            if emitted.frame_index == message.frame_index:
                # Received and used (not a duplicate or late): the new stamp reference.
                reference = self.last_received = message
                self.last_arrival = time.monotonic()
            self._publish(emitted, reference or message)

    def _conceal_overdue(self) -> None:
        if self.last_received is None:
            return
        overdue_s = time.monotonic() - self.last_arrival - self.settings["conceal_timeout"]
        due_frames = int(overdue_s * 1e9 // self.period_ns)
        if due_frames <= 0:
            return
        last_index = int(self.last_received.frame_index)
        for emitted in self.receiver.predict_until(last_index + due_frames):
            self._publish(emitted, self.last_received)

    def _publish(self, emitted, reference: Keypoint60) -> None:
        """Publish a frame; forecast ones are stamped from `reference`, a received frame."""
        steps = emitted.frame_index - int(reference.frame_index)
        stamp = ns_to_stamp(stamp_to_ns(reference.header.stamp) + steps * self.period_ns)
        self.publisher.publish(
            keypoints_to_message(
                emitted.values,
                frame_index=emitted.frame_index,
                origin=int(emitted.origin),
                model_id=reference.model_id,
                stamp=stamp,
                frame_id=reference.header.frame_id,
            )
        )

    def on_exit(self) -> None:
        self.log_final(self.stream.summary(malformed=sum(self.rejected.values())))


def main(args: list[str] | None = None) -> int:
    return run_node(ForecasterNode, args)


if __name__ == "__main__":
    exit_process(main())
