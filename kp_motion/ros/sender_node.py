"""sender: capture and detection in one process, for role sender (keypoints-only egress).

Topics (relative names, remapped by the graph):
    keypoints      Keypoint60 out, reliable: the network topic, only the transmitted frames
    packets, stream  instead of keypoints with wire compact: KeypointPacket and its latched
                   KeypointStream description (kp_motion.ros.keypoint_detector_node)
    image          sensor_msgs/Image rgb8 out, ONLY with publish_images (default false)
    source_image   sensor_msgs/Image out, latched, the first frame, only with publish_source
                   (the reconstruction graph: its receiver animates that frame)

The camera's frames go straight from capture (kp_motion.ros.camera_node, whose parameters
this node shares) to the detector and the transmit gate (kp_motion.stream.sender) inside
this process: no image topic exists unless publish_images asks for it, so no pixel is
offered to the network. What reaches the network per frame is the detector node's message.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time

from kp_motion.ros.camera_node import CameraNode
from kp_motion.ros.common import exit_process, run_node
from kp_motion.ros.keypoint_detector_node import KeypointLink, sender_from_settings, transmit


class SenderNode(CameraNode):
    config_key = "sender"
    announces_clip_end = False  # its own end marker ends the stream (_end_of_clip)

    def publishes_images(self) -> bool:
        return self.settings["publish_images"]

    def prepare(self) -> None:
        self.sender = sender_from_settings(self)
        self.link = KeypointLink(self, self.settings["wire"], self.settings["fps"])

    def deliver(self, frame: np.ndarray, stamp: Time) -> None:
        if self.image_publisher is not None:
            super().deliver(frame, stamp)
        transmit(self, self.link, self.sender, frame, stamp,
                 self.settings["frame_id"])

    def _end_of_clip(self) -> None:
        self.link.end(self.sender)  # before the camera's end waits for acknowledgements
        super()._end_of_clip()

    def outputs(self) -> list:
        return [*super().outputs(), *self.link.publishers()]

    def on_exit(self) -> None:
        self.log_final(self.sender.summary())


def main(args: list[str] | None = None) -> int:
    return run_node(SenderNode, args)


if __name__ == "__main__":
    exit_process(main())
