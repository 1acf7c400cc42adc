"""The receiver's last step: full-rate keypoints -> rendered frames and keypoint overlays.

A frame_index lower than the previous one starts a new driving stream (a new reference frame
for relative motion). The overlay is the rendered frame with the driving keypoints drawn on it
and a border coloured by the frame's origin (green detected, amber predicted, red concealed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kp_motion.keypoints import Origin

ORIGIN_COLOURS = {
    int(Origin.DETECTED): (0, 200, 0),
    int(Origin.PREDICTED): (255, 190, 0),
    int(Origin.CONCEALED): (230, 0, 0),
}
UNKNOWN_ORIGIN_COLOUR = (128, 128, 128)
BORDER_PIXELS = 2
# Keypoints are drawn in [-1, 1] image coordinates. A finite but huge position (a forecast
# gone astray, a corrupt message) overflows OpenCV's int32 pixel coordinates; anything beyond
# this bound lies off the canvas anyway, so positions are clipped to it before drawing.
DRAW_LIMIT = 4.0


def overlay_frame(rendered: np.ndarray, positions: np.ndarray, origin: int) -> np.ndarray:
    """The rendered frame with keypoints drawn and a border coloured by the frame's origin."""
    from kp_motion.models.animator import draw_keypoints

    # NaN stays NaN through the clip and draw_keypoints skips it.
    drawable = np.clip(np.asarray(positions, np.float64), -DRAW_LIMIT, DRAW_LIMIT)
    canvas = draw_keypoints(rendered, drawable)
    colour = ORIGIN_COLOURS.get(origin, UNKNOWN_ORIGIN_COLOUR)
    b = BORDER_PIXELS
    canvas[:b], canvas[-b:], canvas[:, :b], canvas[:, -b:] = colour, colour, colour, colour
    return canvas


@dataclass(frozen=True)
class RenderedFrame:
    image: np.ndarray  # uint8 RGB, the animated source
    overlay: np.ndarray | None  # the same with the keypoints and the origin border, if asked


class StreamRenderer:
    """Renders a stream of keypoint frames with an Animator whose source is set."""

    def __init__(self, animator, overlay: bool) -> None:
        self.animator = animator
        self.overlay = overlay
        self.last_frame_index: int | None = None
        self.rendered = 0

    def set_source(self, frame: np.ndarray) -> str | None:
        """A new source image (any size: it is fitted to the model); restarts the stream.
        Returns a warning to log when the image is smaller than the model (upscaled)."""
        from kp_motion.data.video_io import resize_frame, to_tensor
        from kp_motion.stream.sender import upscale_note

        note = upscale_note(frame.shape, self.animator.config.image_size, "the source image")
        frame = resize_frame(frame, self.animator.config.image_size)
        self.animator.set_source(to_tensor(frame))
        self.last_frame_index = None
        return note

    def warm_up(self) -> None:
        """One render of a blank source, so that the first real frame is not the slow one."""
        self.set_source(np.full((*self.animator.config.image_size, 3), 128, np.uint8))
        self.animator.render(self.animator.kp_source)

    def render(self, frame_index: int, values: np.ndarray, origin: int) -> RenderedFrame:
        if self.last_frame_index is not None and frame_index < self.last_frame_index:
            self.animator.reset_driving()  # a new driving stream: new reference frame
        self.last_frame_index = frame_index
        image, positions = self.animator.render_values(values)
        self.rendered += 1
        overlay = overlay_frame(image, positions, origin) if self.overlay else None
        return RenderedFrame(image, overlay)
