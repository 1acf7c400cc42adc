"""Face-centred framing: a fixed square crop around the face, moved only when the face leaves it.

The face models were trained on face-centred squares (VoxCeleb clips cropped the way the FOMM
authors' crop tool does it), so a webcam frame or a phone video must be framed the same way
before the model sees it. `FaceFramer.crop(frame)` returns that square at the frame's own
resolution; the caller resizes it to the model size (video_io.resize_frame).

How the crop is made (the reference crop tool's sizing, kept square by shifting, not clipping):
- the face is found with OpenCV's frontal-face Haar cascade on a grey copy of the frame whose
  longer side is at most DETECT_SIDE pixels (detection cost grows with the pixel count),
  searching faces of at least MIN_FACE_SHARE of that copy's shorter side (a video-call face;
  smaller sizes cost most of the time); of several faces the surest one is taken;
- its box is enlarged by `margin` times its side on every side (the reference's `increase`),
  using the longer of its width and height, so the crop is square;
- a crop that would cross the frame border is shifted back inside; one larger than the frame's
  shorter side shrinks to it (the reference clips the box instead and then stretches it).

When the crop moves: it stays fixed while the face stays inside it. Every `detect_every`-th
frame the face is detected again; the face has LEFT the crop when a side of its box lies
outside the crop by more than `tolerance` times the box side (the slack absorbs the detector's
jitter of a few pixels, so a still face does not make the crop twitch). Then a new crop is made
around the new box. A frame where no face is found keeps the crop as it is (a turned head, a
hand over the face). When several faces are found, the surest one whose centre lies in the
current crop is followed; only when none does is the surest face of the frame taken.

No face in the first frame: with require_face (command lines) that is a NoFaceError naming the
frame; without it (a live camera) the largest centred square is used, `warn` is called once,
and detection goes on: the crop moves to the first face that appears. A video file can look
ahead instead (`framed_video`): the crop is placed on the first of its first SEARCH_FRAMES
frames that shows a face (a clip may start with the head turned), and only a video without a
face in all of them is an error.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from kp_motion.names import FACE, RESIZE

# Profiles of models trained on face crops: their frames are framed around the face unless told
# otherwise (the project's face models are named face-*; vox-256 is the authors' VoxCeleb model).
FACE_PROFILE_PREFIX = "face-"
FACE_REFERENCE_PROFILES = ("vox-256",)

CASCADE_FILE = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 320  # longer side (pixels) of the grey copy the cascade runs on
MIN_FACE_SHARE = 0.2  # smallest face searched for, as a share of the frame's shorter side
MARGIN = 0.3  # face box side added on every side: the training clips measure 0.29 (README)
TOLERANCE = 0.1  # how far (share of the box side) the box may cross the crop before it moves
SEARCH_FRAMES = 25  # a video's face is looked for in this many first frames (1 s at 25 fps)
DETECT_EVERY = 5  # detect again on every this-many-th frame: ~50 ms per detection (README)


def default_fit(profile: str) -> str:
    """The fit a model's frames get by default: face framing for a face model, else resize."""
    is_face_model = profile.startswith(FACE_PROFILE_PREFIX) or profile in FACE_REFERENCE_PROFILES
    return FACE if is_face_model else RESIZE


class NoFaceError(ValueError):
    """No face was found where one is required; the message is one line."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels: left, top, width, height."""

    left: float
    top: float
    width: float
    height: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


@dataclass(frozen=True)
class Crop:
    """A square crop in whole frame pixels: rows top..top+side, columns left..left+side."""

    left: int
    top: int
    side: int

    def cut(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.top : self.top + self.side, self.left : self.left + self.side]

    def fits_in(self, frame_shape: tuple[int, ...]) -> bool:
        rows, cols = frame_shape[:2]
        return self.left + self.side <= cols and self.top + self.side <= rows

    def contains_centre(self, box: Box) -> bool:
        x, y = box.centre
        return self.left <= x < self.left + self.side and self.top <= y < self.top + self.side

    def holds(self, box: Box, tolerance: float) -> bool:
        """Whether the box stays inside, each side allowed `tolerance` x its size outside."""
        slack_x, slack_y = tolerance * box.width, tolerance * box.height
        return (
            box.left >= self.left - slack_x
            and box.right <= self.left + self.side + slack_x
            and box.top >= self.top - slack_y
            and box.bottom <= self.top + self.side + slack_y
        )


@functools.cache
def _cascade():
    import cv2

    path = cv2.data.haarcascades + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load OpenCV's face cascade {path}")
    return cascade


def detect_faces(frame: np.ndarray) -> list[Box]:
    """Every frontal face in a uint8 (H, W, 3) RGB frame, in frame pixels, the one the cascade
    is most sure of first (its last stage's weight: on the astronaut test image a false
    detection beside the face was larger than the face but scored 0.4 against 8)."""
    import cv2

    rows, cols = frame.shape[:2]
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, DETECT_SIDE / max(rows, cols))
    if scale < 1.0:
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    smallest = max(24, round(MIN_FACE_SHARE * min(grey.shape)))  # 24: the cascade's window
    found, _, weights = _cascade().detectMultiScale3(
        grey, scaleFactor=1.15, minNeighbors=5, minSize=(smallest, smallest),
        outputRejectLevels=True,
    )
    order = np.argsort(-np.ravel(weights)) if len(found) else []
    return [Box(*(float(v) / scale for v in found[i])) for i in order]


def square_around(box: Box, frame_shape: tuple[int, ...], margin: float) -> Crop:
    """The square crop around a face box: enlarged by margin, shifted inside the frame."""
    rows, cols = frame_shape[:2]
    side = min(round((1 + 2 * margin) * max(box.width, box.height)), rows, cols)
    x, y = box.centre
    left = min(max(round(x - side / 2), 0), cols - side)
    top = min(max(round(y - side / 2), 0), rows - side)
    return Crop(left, top, side)


def centred_square(frame_shape: tuple[int, ...]) -> Crop:
    """The largest centred square of a frame (what is kept while no face has been seen)."""
    rows, cols = frame_shape[:2]
    side = min(rows, cols)
    return Crop((cols - side) // 2, (rows - side) // 2, side)


class FaceFramer:
    """Square face crops of a stream of frames (one framer per video; see the module doc)."""

    def __init__(
        self,
        margin: float = MARGIN,
        tolerance: float = TOLERANCE,
        detect_every: int = DETECT_EVERY,
        require_face: bool = True,
        warn: Callable[[str], None] | None = None,
        name: str = "the first frame",
    ) -> None:
        if margin < 0 or tolerance < 0:
            raise ValueError(f"margin and tolerance must be >= 0, got {margin}, {tolerance}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.margin, self.tolerance, self.detect_every = margin, tolerance, detect_every
        self.require_face = require_face
        self.warn = warn
        self.name = name  # how an error message names the first frame (e.g. a file)
        self.current: Crop | None = None
        self.face_seen = False  # False while the centred fallback square is in use
        self.moves = 0  # how many times the crop was set (1 = placed once, never moved)
        self.frames = 0

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The square face crop of a uint8 (H, W, 3) RGB frame at the frame's resolution."""
        from kp_motion.data.video_io import as_rgb_frame

        frame = as_rgb_frame(frame)
        if self.current is not None and not self.current.fits_in(frame.shape):
            self.current, self.face_seen = None, False  # a smaller frame (a new input): anew
        if self.current is None or self.frames % self.detect_every == 0:
            self._update(frame)
        self.frames += 1
        return self.current.cut(frame).copy()

    def place(self, frame: np.ndarray) -> bool:
        """Place the crop around the face of this frame; False (crop unchanged) if none."""
        from kp_motion.data.video_io import as_rgb_frame

        frame = as_rgb_frame(frame)
        faces = detect_faces(frame)
        if faces:
            self.current = square_around(faces[0], frame.shape, self.margin)
            self.face_seen = True
            self.moves += 1
        return bool(faces)

    def _update(self, frame: np.ndarray) -> None:
        faces = detect_faces(frame)
        if not faces:
            if self.current is None:
                self._no_first_face(frame)
            return  # no face in this frame: the crop stays where it is
        face = self._followed(faces)
        if not self.face_seen or not self.current.holds(face, self.tolerance):
            self.current = square_around(face, frame.shape, self.margin)
            self.face_seen = True
            self.moves += 1

    def _followed(self, faces: list[Box]) -> Box:
        """The surest face inside the current crop (the person being framed), else the surest
        face of the frame."""
        if self.face_seen:
            inside = [face for face in faces if self.current.contains_centre(face)]
            if inside:
                return inside[0]
        return faces[0]

    def _no_first_face(self, frame: np.ndarray) -> None:
        rows, cols = frame.shape[:2]
        message = (f"no face found in {self.name} ({cols}x{rows}): face framing needs a "
                   "frontal face; use a frame with one, or fit resize or crop")
        if self.require_face:
            raise NoFaceError(message)
        if self.warn is not None:
            self.warn(f"{message}; using the centred square until a face appears")
        self.current = centred_square(frame.shape)


def framed_video(
    frames: Iterator[np.ndarray], framer: FaceFramer, name: str, search: int = SEARCH_FRAMES
) -> Iterator[np.ndarray]:
    """The face crops of a video's frames. The first SEARCH_FRAMES frames are read ahead until
    one shows a face; the crop placed there also frames the frames before it. NoFaceError
    (raised on the first next()) when none of them does."""
    ahead: list[np.ndarray] = []
    for frame in itertools.islice(frames, search):
        ahead.append(frame)
        if framer.place(frame):
            break
    else:
        raise NoFaceError(f"no face found in the first {len(ahead)} frames of {name}: face "
                          "framing needs a frontal face; use --fit resize or crop")
    for frame in itertools.chain(ahead, frames):
        yield framer.crop(frame)
