"""camera: publishes frames from a V4L2 device, a video file or an image folder.

Topics (relative names, remapped by the graph):
    image          sensor_msgs/Image rgb8, header.stamp = capture time; a live camera offers it
                   reliable with a short history (sensor-data subscribers get best-effort
                   delivery), a clip keeps its last frames for late readers (kp_motion.ros.qos)
    source_image   sensor_msgs/Image rgb8, latched; the first frame, once (publish_source)
    clip_end       std_msgs/Header, latched: at the end of a clip, once, the stamp and frame_id
                   of its last frame, so that the keypoint_detector (another process) ends its
                   stream after that frame (kp_motion.stream.ending)

Frames are published at `fps` (a file is paced at that rate, whatever rate it was encoded
with), fitted (parameter fit: by default the fixed square around the face) and resized to
width x height when given (kp_motion.stream.sources.Frames). A device frame
is stamped with the time it was read; a clip's frame k with the first frame's time + k / fps
(the clip's own timeline, so that timer jitter does not blur the frame spacing the detector's
frame_index relies on). At the end of a clip the node loops, exits with status 0 (exit_at_end)
or stays alive without publishing. A missing device or file is a start-up error (status 2).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from kp_motion.ros.common import (
    KpMotionNode,
    exit_process,
    run_node,
    startup_errors,
)
from kp_motion.ros.conversions import array_to_image, ns_to_stamp
from kp_motion.ros.graph import END_OF_CLIP_MARKER
from kp_motion.ros.qos import CLIP_IMAGE_QOS, LATCHED_QOS, RELIABLE_IMAGE_QOS
from kp_motion.stream.sources import Frames, open_source

ACK_WAIT_S = 5.0  # at most, per publisher, at the end of a clip with exit_at_end


class CameraNode(KpMotionNode):
    config_key = "camera"
    # Whether the end of a clip is announced on clip_end for a detector in another process
    # (the sender detects in this one and ends its stream itself).
    announces_clip_end = True

    def __init__(self) -> None:
        super().__init__()
        s = self.settings
        with startup_errors():
            source = open_source(s["input"], s["width"], s["height"], s["fps"])
        fit = "crop" if s["crop"] else s["fit"]  # the deprecated crop parameter still counts
        self.frames = Frames(source, s["width"], s["height"], fit, s["loop"],
                             s["max_frames"], warn=self.get_logger().warning)
        # A clip keeps its last frames for readers that join late (kp_motion.ros.qos).
        image_qos = RELIABLE_IMAGE_QOS if self.frames.live else CLIP_IMAGE_QOS
        self.image_publisher = (self.create_publisher(Image, "image", image_qos)
                                if self.publishes_images() else None)
        self.source_publisher = (
            self.create_publisher(Image, "source_image", LATCHED_QOS)
            if s["publish_source"]
            else None
        )
        self.clip_end_publisher = (self.create_publisher(Header, "clip_end", LATCHED_QOS)
                                   if self.announces_clip_end else None)
        self.published = 0
        self.last_stamp: Time | None = None  # of the last frame delivered
        self.first_stamp_ns: int | None = None
        self.timer = None
        self.prepare()
        self.when_subscribed(self.image_publisher, s.get("wait_for_subscribers", 0), self._start)
        self.announce_ready(f"input {s['input']} at {s['fps']:g} fps")

    def publishes_images(self) -> bool:
        """Whether the captured frames become the image topic (always, for the camera)."""
        return True

    def prepare(self) -> None:
        """Work a subclass does before the stream starts (the sender loads its detector)."""

    def _start(self) -> None:
        topic = self.image_publisher.topic_name if self.image_publisher else "no image topic"
        self.get_logger().info(f"capturing ({topic})")
        period_s = 1.0 / self.settings["fps"]
        self.timer = self.create_timer(period_s, self._tick)
        # The clip's timeline starts at the first tick's scheduled time: a tick can run late
        # but never early, so no stamp lies in the future.
        self.first_stamp_ns = self.get_clock().now().nanoseconds + round(period_s * 1e9)

    def _tick(self) -> None:
        try:
            frame = self.frames.next()
        except ValueError as error:  # a corrupt frame in the middle of a file
            self.get_logger().error(f"cannot read {self.settings['input']}: {error}")
            self.timer.cancel()
            self.finish(1)
            return
        if frame is None:
            self._end_of_clip()
            return
        stamp = self._stamp()
        if self.published == 0 and self.source_publisher is not None:
            self.source_publisher.publish(array_to_image(frame, stamp, self.settings["frame_id"]))
        self.deliver(frame, stamp)
        self.published += 1
        self.last_stamp = stamp

    def deliver(self, frame: np.ndarray, stamp: Time) -> None:
        """Hand one captured frame on: the camera publishes it on the image topic."""
        self.image_publisher.publish(array_to_image(frame, stamp, self.settings["frame_id"]))

    def _stamp(self) -> Time:
        now = self.get_clock().now().nanoseconds
        if self.frames.live or self.first_stamp_ns is None:
            return ns_to_stamp(now)
        return ns_to_stamp(self.first_stamp_ns + round(self.published * 1e9 / self.settings["fps"]))

    def _end_of_clip(self) -> None:
        self.timer.cancel()
        self.frames.close()
        if self.published == 0:
            self.get_logger().error(f"no frames could be read from {self.settings['input']}")
            self.finish(1)
            return
        self.get_logger().info(f"{END_OF_CLIP_MARKER} {self.published} frames")
        if self.clip_end_publisher is not None:
            self.clip_end_publisher.publish(Header(stamp=self.last_stamp,
                                                   frame_id=self.settings["frame_id"]))
        if self.settings["exit_at_end"]:
            # Reliable samples not yet acknowledged die with the process: let every reader
            # that matched have them first.
            for publisher in self.outputs():
                publisher.wait_for_all_acked(Duration(seconds=ACK_WAIT_S))
            self.finish(0)

    def outputs(self) -> list:
        """The publishers whose last samples must reach their readers before an exit."""
        return [p for p in (self.image_publisher, self.source_publisher,
                            self.clip_end_publisher) if p is not None]


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == "__main__":
    exit_process(main())
