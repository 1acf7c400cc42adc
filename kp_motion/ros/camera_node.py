"""camera: publishes frames from a V4L2 device, a video file or an image folder.

Topics (relative names, remapped by the graph):
    image          sensor_msgs/Image rgb8, header.stamp = capture time; offered reliable with a
                   short history (sensor-data subscribers get best-effort delivery)
    source_image   sensor_msgs/Image rgb8, latched; the first frame, once (publish_source)

Frames are published at `fps` (a file is paced at that rate, whatever rate it was encoded
with), resized to width x height when given. A device frame is stamped with the time it was
read; a clip's frame k with the first frame's time + k / fps (the clip's own timeline,
so that timer jitter does not blur the frame spacing the detector's frame_index relies on).
At the end of a clip the node loops, exits with status 0 (exit_at_end) or stays alive
without publishing. A missing device or file is a start-up error (exit status 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from kp_motion.ros.common import (
    LATCHED_QOS,
    RELIABLE_IMAGE_QOS,
    KpMotionNode,
    Param,
    StartupError,
    exit_process,
    run_node,
)
from kp_motion.ros.conversions import array_to_image, ns_to_stamp

MAX_SIZE = 8192


class FrameSource:
    """Frames of a video file or image folder (decoded lazily), restartable for looping."""

    def __init__(self, path: Path) -> None:
        from kp_motion.data.video_io import iter_video

        self._iter_video = iter_video
        self.path = path
        self._frames: Iterator[np.ndarray] = iter(())
        self.restart()
        # Decode the first frame now: an unreadable file is a start-up error, not a crash later.
        try:
            first = next(self._frames, None)
        except ValueError as error:
            raise StartupError(str(error)) from None
        if first is None:
            raise StartupError(f"{path}: no frames")
        self._first: np.ndarray | None = first

    def restart(self) -> None:
        self._frames = self._iter_video(self.path)

    def read(self) -> np.ndarray | None:
        """The next frame, None at the end; ValueError for a frame that cannot be decoded."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return next(self._frames, None)

    def close(self) -> None:
        self._frames = iter(())


class DeviceSource:
    """A V4L2 camera through OpenCV."""

    def __init__(self, index: int, width: int, height: int, fps: float) -> None:
        import cv2

        self._cv2 = cv2
        self.capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
        if not self.capture.isOpened():
            raise StartupError(f"cannot open camera /dev/video{index} (missing or busy)")
        if width:
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.capture.set(cv2.CAP_PROP_FPS, fps)

    def restart(self) -> None:  # a live camera has no end to restart from
        pass

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        if not ok:
            return None
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.capture.release()


def open_source(spec: str, width: int, height: int, fps: float) -> FrameSource | DeviceSource:
    """'3' -> /dev/video3; anything else is a video file or a folder of frames."""
    if not spec:
        raise StartupError("parameter input is empty (give a device index, a video or a folder)")
    if spec.isdigit():
        return DeviceSource(int(spec), width, height, fps)
    path = Path(spec).expanduser()
    if not path.exists():
        raise StartupError(f"input not found: {path}")
    return FrameSource(path)


def output_size(frame_shape: tuple[int, ...], width: int, height: int) -> tuple[int, int] | None:
    """(height, width) to resize to, or None to keep the frame; one zero keeps the aspect."""
    if not width and not height:
        return None
    rows, cols = frame_shape[:2]
    if not width:
        width = max(1, round(cols * height / rows))
    if not height:
        height = max(1, round(rows * width / cols))
    return height, width


class CameraNode(KpMotionNode):
    config_key = "camera"
    params = (
        Param("input", str, "V4L2 device index, video file or image folder"),
        Param("fps", float, "publishing rate in frames per second", 0.1, 1000.0),
        Param("width", int, "output width in pixels (0 = keep)", 0, MAX_SIZE),
        Param("height", int, "output height in pixels (0 = keep)", 0, MAX_SIZE),
        Param("crop", bool, "centre-crop to the output aspect ratio instead of stretching"),
        Param("loop", bool, "restart a file or folder at its end"),
        Param("max_frames", int, "stop after this many frames (0 = no limit)", 0, 2**31 - 1),
        Param("exit_at_end", bool, "exit at the end of the clip instead of staying alive"),
        Param("frame_id", str, "header.frame_id of the published images"),
        Param("publish_source", bool, "publish the first frame on source_image (latched)"),
        Param("wait_for_subscribers", int, "hold the stream until this many match", 0, 100),
    )

    def __init__(self) -> None:
        super().__init__()
        s = self.settings
        self.source = open_source(s["input"], s["width"], s["height"], s["fps"])
        self.image_publisher = self.create_publisher(Image, "image", RELIABLE_IMAGE_QOS)
        self.source_publisher = (
            self.create_publisher(Image, "source_image", LATCHED_QOS)
            if s["publish_source"]
            else None
        )
        self.published = 0
        self.first_stamp_ns: int | None = None
        self.timer = None
        self.when_subscribed(self.image_publisher, s["wait_for_subscribers"], self._start)
        self.announce_ready(f"input {s['input']} at {s['fps']:g} fps")

    def _start(self) -> None:
        self.get_logger().info(f"publishing on {self.image_publisher.topic_name}")
        period_s = 1.0 / self.settings["fps"]
        self.timer = self.create_timer(period_s, self._tick)
        # The clip's timeline starts at the first tick's scheduled time: a tick can run late
        # but never early, so no stamp lies in the future.
        self.first_stamp_ns = self.get_clock().now().nanoseconds + round(period_s * 1e9)

    def _next_frame(self) -> np.ndarray | None:
        frame = self.source.read()
        if frame is None and self.settings["loop"] and self.published > 0:
            self.source.restart()
            frame = self.source.read()
        if frame is None:
            return None
        from kp_motion.data.video_io import resize_frame

        size = output_size(frame.shape, self.settings["width"], self.settings["height"])
        if size is not None:
            frame = resize_frame(frame, size, fit="crop" if self.settings["crop"] else "resize")
        return frame

    def _tick(self) -> None:
        limit = self.settings["max_frames"]
        try:
            frame = self._next_frame() if not limit or self.published < limit else None
        except ValueError as error:  # a corrupt frame in the middle of a file
            self.get_logger().error(f"cannot read {self.settings['input']}: {error}")
            self.timer.cancel()
            self.finish(1)
            return
        if frame is None:
            self._end_of_clip()
            return
        message = array_to_image(frame, self._stamp(), self.settings["frame_id"])
        if self.published == 0 and self.source_publisher is not None:
            self.source_publisher.publish(message)
        self.image_publisher.publish(message)
        self.published += 1

    def _stamp(self) -> Time:
        now = self.get_clock().now().nanoseconds
        if isinstance(self.source, DeviceSource) or self.first_stamp_ns is None:
            return ns_to_stamp(now)
        return ns_to_stamp(self.first_stamp_ns + round(self.published * 1e9 / self.settings["fps"]))

    def _end_of_clip(self) -> None:
        self.timer.cancel()
        self.source.close()
        if self.published == 0:
            self.get_logger().error(f"no frames could be read from {self.settings['input']}")
            self.finish(1)
            return
        self.get_logger().info(f"end of clip after {self.published} frames")
        if self.settings["exit_at_end"]:
            self.finish(0)


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == "__main__":
    exit_process(main())
