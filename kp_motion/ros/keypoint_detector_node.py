"""keypoint_detector: camera images -> Keypoint60 on the network topic, through the transmit gate.

Topics (relative names, remapped by the graph):
    image       sensor_msgs/Image in: sensor-data QoS, or (reliable_images, for a recorded
                clip, where every frame should be rendered) reliable and transient-local with
                the clip's history, so frames sent while the model loaded are not lost
    keypoints   Keypoint60 out, reliable: the network topic, only the transmitted frames
                (wire float32)
    packets     KeypointPacket out, reliable: the same for wire compact (one topic per wire, so
                a reader never meets a type it does not expect)
    stream      KeypointStream out, latched: wire compact's stream description (model_id,
                frame_id, the capture stamp of frame 0 and fps), published before the first
                packet
    clip_end    std_msgs/Header in, latched: the camera's clip ended with the frame of this
                stamp; once that frame is processed, the end marker goes out (KeypointLink.end:
                predictive policy over wire compact). Images may still be queued when it
                arrives: kp_motion.stream.ending.ClipEnd waits for the frame it names

What happens to each image (frame_index from the capture stamps, the policy: the m/n
schedule or the predictive mirror, the simulated loss, detection) is
kp_motion.stream.sender.KeypointSender; this node converts messages. Malformed images do not
count. header.stamp and header.frame_id are copied from the image (wire float32), so the capture
time travels with the keypoints; wire compact sends them once, in the stream description.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from kp_motion.keypoints import Origin
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
    image_to_array,
    keypoints_to_message,
    ns_to_stamp,
    stamp_to_ns,
)
from kp_motion.ros.qos import CLIP_IMAGE_QOS, KEYPOINT_QOS, LATCHED_QOS, SENSOR_QOS
from kp_motion.stream.ending import ClipEnd
from kp_motion.stream.sender import NON_FINITE, FrameDetector, KeypointSender


def load_detector(node: KpMotionNode, checkpoint: str, device_name: str) -> FrameDetector:
    """The detector of `checkpoint` on its device, warmed up; sets node.model_id."""
    from kp_motion.devices import resolve_device
    from kp_motion.models import checkpoint as checkpoints

    folder = checkpoints.resolve_checkpoint(checkpoint)
    device = resolve_device(device_name)
    config, kp_detector, _ = checkpoints.load_model(folder, device)
    node.model_id = checkpoints.model_id(config, kp_detector)
    detect = FrameDetector(kp_detector, config.image_size, device,
                           warn=node.get_logger().warning)
    # The first forward pass is slow (allocations, kernel selection): pay it before the
    # stream starts, not on its first frame.
    detect(np.zeros((*config.image_size, 3), np.uint8))
    node.get_logger().info(f"detector {folder} (model_id {node.model_id}) on {device}")
    return detect


def sender_from_settings(node: KpMotionNode) -> KeypointSender:
    """The node's detector and transmit gate, from its parameters (one-line start-up errors)."""
    s = node.settings
    configure_torch(s["torch_threads"])
    with startup_errors():
        detect = load_detector(node, s["checkpoint"], s["device"])
        return KeypointSender(detect, s["fps"], s["m"], s["n"], s["drop_probability"],
                              s["drop_seed"], predictive_mirror(node), s["wire"])


def predictive_mirror(node: KpMotionNode):
    """policy predictive: the mirror of the receiver's forecaster (same kind, weights and
    device setting as the forecaster node's); None for the fixed schedule."""
    s = node.settings
    if s["policy"] != PREDICTIVE:
        return None
    from kp_motion.devices import resolve_device
    from kp_motion.forecasting.named import load_named_forecaster
    from kp_motion.stream.predictive import PredictiveSender

    forecaster = load_named_forecaster(s["forecaster"], s["forecaster_path"],
                                       resolve_device(s["device"]))
    node.get_logger().info(f"predictive: mirror {forecaster.name}, threshold {s['threshold']}, "
                           f"max_gap {s['max_gap']}")
    return PredictiveSender(forecaster, s["threshold"], s["max_gap"])


# The stream id of a sender's packets: one stream per sender node (a receiver follows one).
STREAM_ID = 0


class KeypointLink:
    """The network side of a sender: Keypoint60 (wire float32) or KeypointPacket plus its
    latched KeypointStream description (wire compact)."""

    def __init__(self, node: KpMotionNode, wire: str, fps: float) -> None:
        self.node, self.fps = node, fps
        self.compact = wire == COMPACT
        self.described = False
        if self.compact:
            self.publisher = node.create_publisher(KeypointPacket, "packets", KEYPOINT_QOS)
            self.stream_publisher = node.create_publisher(KeypointStream, "stream", LATCHED_QOS)
        else:
            self.publisher = node.create_publisher(Keypoint60, "keypoints", KEYPOINT_QOS)

    def publishers(self) -> list:
        return [self.publisher, self.stream_publisher] if self.compact else [self.publisher]

    def describe(self, first_stamp_ns: int, frame_id: str) -> None:
        """The stream description, once, before the first packet."""
        description = KeypointStream(stream_id=STREAM_ID, model_id=self.node.model_id,
                                     fps=float(self.fps))
        description.header.stamp = ns_to_stamp(first_stamp_ns)
        description.header.frame_id = frame_id
        self.stream_publisher.publish(description)
        self.described = True

    def send(self, sender: KeypointSender, frame_index: int, values: np.ndarray, stamp: Time,
             frame_id: str) -> None:
        if not self.compact:
            self.publisher.publish(keypoints_to_message(
                values, frame_index=frame_index, origin=int(Origin.DETECTED),
                model_id=self.node.model_id, stamp=stamp, frame_id=frame_id))
            return
        from kp_motion.stream.wire import encode

        if not self.described:
            self.describe(sender.indexer.first_stamp, frame_id)
        packet = encode(STREAM_ID, frame_index, values)
        self.publisher.publish(KeypointPacket(packet=np.frombuffer(packet, np.uint8)))


    def end(self, sender: KeypointSender) -> None:
        """The end marker of a predictive stream over the compact wire (the receiver then
        forecasts up to the last captured frame and no further). It bypasses the simulated
        loss: it stands for a control message a real link repeats until it is acknowledged."""
        if not self.compact or sender.predictive is None or not self.described:
            return
        last_index = sender.predictive.end()  # every captured frame is offered to its mirror
        if last_index is None:
            return
        from kp_motion.stream.wire import end_marker

        packet = end_marker(STREAM_ID, last_index)
        self.publisher.publish(KeypointPacket(packet=np.frombuffer(packet, np.uint8)))


def transmit(node: KpMotionNode, link: KeypointLink, sender: KeypointSender, frame: np.ndarray,
             stamp: Time, frame_id: str) -> None:
    """One captured frame through the policy; its keypoints on the network if transmitted."""
    capture = sender.capture(stamp_to_ns(stamp), frame)
    if capture.reason == NON_FINITE:
        node.reject(NON_FINITE, f"frame {capture.frame_index}")
    if capture.values is None:
        return
    link.send(sender, capture.frame_index, capture.values, stamp, frame_id)


class KeypointDetectorNode(KpMotionNode):
    config_key = "keypoint_detector"

    def __init__(self) -> None:
        super().__init__()
        self.sender = sender_from_settings(self)
        self.link = KeypointLink(self, self.settings["wire"], self.settings["fps"])
        self.publisher = self.link.publisher
        self.clip_end = ClipEnd()
        self.when_subscribed(self.publisher, self.settings["wait_for_subscribers"],
                             self._subscribe)

    def _subscribe(self) -> None:
        qos = CLIP_IMAGE_QOS if self.settings["reliable_images"] else SENSOR_QOS
        self.create_subscription(Image, "image", self._on_image, qos)
        self.create_subscription(Header, "clip_end", self._on_clip_end, LATCHED_QOS)
        self.announce_ready(f"model_id {self.model_id}")

    def _on_image(self, image: Image) -> None:
        try:
            frame = image_to_array(image)
        except MalformedMessageError as error:
            self.reject(error.kind, str(error))
        else:
            transmit(self, self.link, self.sender, frame, image.header.stamp,
                     image.header.frame_id)
        # A malformed last frame still ends the clip (the marker names the last frame indexed).
        if self.clip_end.seen(stamp_to_ns(image.header.stamp)):
            self.link.end(self.sender)

    def _on_clip_end(self, header: Header) -> None:
        if self.clip_end.clip_ended(stamp_to_ns(header.stamp)):
            self.link.end(self.sender)

    def on_exit(self) -> None:
        self.log_final(self.sender.summary())


def main(args: list[str] | None = None) -> int:
    return run_node(KeypointDetectorNode, args)


if __name__ == "__main__":
    exit_process(main())
