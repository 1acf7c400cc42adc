"""Frames for the sender: a video file, an image folder or a V4L2 camera, resized on the way.

`open_source('3')` is /dev/video3; anything else is a file or folder. `Frames` adds what a
camera node offers on top: a maximum frame count, looping a clip, and fitting to width x height
(one of them 0 keeps the aspect ratio, both 0 keep the frame's size): fit "resize" stretches
the frame, "crop" cuts its centred part of the output's aspect ratio, "face" cuts the fixed
square around the face (kp_motion.data.face_framing; a frame without a face keeps the centred
square and warns once, so a camera keeps streaming until someone sits in front of it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from kp_motion.names import FACE, FITS, RESIZE, spelled


class SourceError(ValueError):
    """A frame source that cannot be opened (missing, unreadable, empty); one line."""


class FrameSource:
    """Frames of a video file or image folder (decoded lazily), restartable for looping."""

    def __init__(self, path: Path) -> None:
        from kp_motion.data.video_io import iter_video

        self._iter_video = iter_video
        self.path = path
        self._frames: Iterator[np.ndarray] = iter(())
        self.restart()
        # Decode the first frame now: an unreadable file fails at start-up, not later.
        try:
            first = next(self._frames, None)
        except ValueError as error:
            raise SourceError(str(error)) from None
        if first is None:
            raise SourceError(f"{path}: no frames")
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
            raise SourceError(f"cannot open camera /dev/video{index} (missing or busy)")
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
        raise SourceError("input is empty (give a device index, a video or a folder)")
    if spec.isdigit():
        return DeviceSource(int(spec), width, height, fps)
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"input not found: {path}")
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


class Frames:
    """The frames a camera publishes: at most max_frames (0 = no limit), looped, fitted."""

    def __init__(self, source: FrameSource | DeviceSource, width: int = 0, height: int = 0,
                 fit: str = RESIZE, loop: bool = False, max_frames: int = 0,
                 warn: Callable[[str], None] | None = None) -> None:
        from kp_motion.data.face_framing import FaceFramer

        if fit not in FITS:
            raise SourceError(f"fit must be {spelled(FITS)}, got {fit!r}")
        self.source = source
        self.width, self.height, self.fit = width, height, fit
        # One framer for the whole stream: the crop stays put while the face stays in it.
        self.framer = FaceFramer(require_face=False, warn=warn) if fit == FACE else None
        self.loop = loop
        self.max_frames = max_frames
        self.count = 0

    @property
    def live(self) -> bool:
        """A camera device (stamped at read time) rather than a clip (stamped on its timeline)."""
        return isinstance(self.source, DeviceSource)

    def next(self) -> np.ndarray | None:
        """The next frame, None at the end; ValueError for a frame that cannot be decoded."""
        if self.max_frames and self.count >= self.max_frames:
            return None
        frame = self.source.read()
        if frame is None and self.loop and self.count > 0:
            self.source.restart()
            frame = self.source.read()
        if frame is None:
            return None
        self.count += 1
        return self._resized(frame)

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        from kp_motion.data.video_io import resize_frame

        fit = self.fit
        if self.framer is not None:
            # The face square at the frame's resolution; a non-square output is then cut
            # from its middle rather than stretched.
            frame, fit = self.framer.crop(frame), "crop"
        size = output_size(frame.shape, self.width, self.height)
        if size is None:
            return frame
        return resize_frame(frame, size, fit=fit)

    def close(self) -> None:
        self.source.close()
