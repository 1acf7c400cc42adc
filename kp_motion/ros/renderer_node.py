"""renderer: source image + full-rate Keypoint60 -> rendered frames (and a keypoint overlay).

Topics (relative names, remapped by the graph):
    keypoints      Keypoint60 in (the forecaster's full-rate stream)
    source_image   sensor_msgs/Image in, latched (used when the source_image parameter is empty)
    rendered       sensor_msgs/Image rgb8 out, header copied from the keypoints (capture stamp)
    overlay        sensor_msgs/Image rgb8 out: the rendered frame with the driving keypoints
                   drawn on it and a border coloured by origin (green detected, amber
                   predicted, red concealed)

mode transfer animates any source with the motion relative to the first driving frame;
reconstruction drives the source (a frame of the same video) with the absolute keypoints. The
rendering itself (new driving stream when frame_index goes back, overlay) is
kp_motion.stream.rendering.StreamRenderer; this node converts messages. A source_image file is
framed like the camera's frames (parameter fit: by default the square around the face, or the
centred square with a warning when it has no face); one on the topic comes framed already.
Keypoints from another detector (model_id differs from this checkpoint's) are refused: logged
once per distinct id and counted. Keypoints that arrive before the source image are held
(up to PENDING_LIMIT) and rendered once it arrives. The keypoints are subscribed to at once;
the deprecated wait_for_subscribers / wait_for_overlay_subscribers (0 by default) still hold
them until that many readers match on rendered / overlay.
"""

from __future__ import annotations

from collections import deque
from functools import partial

import numpy as np
from sensor_msgs.msg import Image

from kp_motion.msg import Keypoint60
from kp_motion.names import CROP, FACE, TRANSFER
from kp_motion.ros.common import (
    KpMotionNode,
    StartupError,
    configure_torch,
    exit_process,
    run_node,
    startup_errors,
)
from kp_motion.ros.conversions import (
    MalformedMessageError,
    array_to_image,
    image_to_array,
    message_values,
)
from kp_motion.ros.qos import KEYPOINT_QOS, LATCHED_QOS, RENDERED_QOS
from kp_motion.stream.rendering import StreamRenderer

PENDING_LIMIT = 100


class RendererNode(KpMotionNode):
    config_key = "renderer"

    def __init__(self) -> None:
        super().__init__()
        s = self.settings
        configure_torch(s["torch_threads"])
        with startup_errors():
            self.stream = self._load_renderer(s["checkpoint"], s["device"])
        self.has_source = False
        self.pending: deque[Keypoint60] = deque(maxlen=PENDING_LIMIT)
        self.foreign_model_ids: dict[str, int] = {}
        self.publisher = self.create_publisher(Image, "rendered", RENDERED_QOS)
        self.overlay_publisher = (
            self.create_publisher(Image, "overlay", RENDERED_QOS) if s["overlay"] else None
        )
        if s["source_image"]:
            self._set_source_file(s["source_image"])
        else:
            self.create_subscription(Image, "source_image", self._on_source, LATCHED_QOS)
        # Only the deprecated wait parameters delay the subscription (0 = at once).
        then = self._subscribe
        if self.overlay_publisher is not None:
            then = partial(self.when_subscribed, self.overlay_publisher,
                           s["wait_for_overlay_subscribers"], self._subscribe)
        self.when_subscribed(self.publisher, s["wait_for_subscribers"], then)

    def _subscribe(self) -> None:
        self.create_subscription(Keypoint60, "keypoints", self._on_keypoints, KEYPOINT_QOS)
        self.announce_ready(f"mode {self.settings['mode']}, model_id {self.model_id}")

    def _load_renderer(self, checkpoint: str, device_name: str) -> StreamRenderer:
        from kp_motion.devices import resolve_device
        from kp_motion.models import checkpoint as checkpoints
        from kp_motion.models.animator import Animator
        from kp_motion.models.normalization import MotionMode

        folder = checkpoints.resolve_checkpoint(checkpoint)
        device = resolve_device(device_name)
        config, kp_detector, generator = checkpoints.load_model(folder, device)
        self.model_id = checkpoints.model_id(config, kp_detector)
        mode = MotionMode.RELATIVE if self.settings["mode"] == TRANSFER else MotionMode.ABSOLUTE
        animator = Animator(kp_detector, generator, config, mode=mode,
                            variant=self.settings["render_variant"])  # fmt: skip
        stream = StreamRenderer(animator, overlay=self.settings["overlay"])
        self.get_logger().info(
            f"generator {folder} (model_id {self.model_id}) on {device}, "
            f"render variant {self.settings['render_variant']}"
        )
        stream.warm_up()
        return stream

    def _set_source_file(self, path: str) -> None:
        from kp_motion.data.video_io import read_image

        try:
            self._set_source(self._framed(read_image(path), path))
        except (ValueError, FileNotFoundError) as error:
            raise StartupError(f"source_image: {error}") from None

    def _framed(self, image: np.ndarray, path: str) -> np.ndarray:
        """A source image file framed like the camera's frames (fit); an image on the
        source_image topic comes from the camera, framed already."""
        from kp_motion.data.face_framing import FaceFramer
        from kp_motion.data.video_io import resize_frame

        if self.settings["fit"] == FACE:
            framer = FaceFramer(require_face=False, warn=self.get_logger().warning, name=path)
            return framer.crop(image)
        if self.settings["fit"] == CROP:
            side = min(image.shape[:2])
            return resize_frame(image, side, fit=CROP)
        return image  # resize: the renderer stretches it to the model size

    def _set_source(self, frame: np.ndarray) -> None:
        note = self.stream.set_source(frame)
        if note:
            self.get_logger().warning(note)
        self.has_source = True
        self.get_logger().info(f"source image set ({frame.shape[1]}x{frame.shape[0]})")

    def _on_source(self, image: Image) -> None:
        try:
            self._set_source(image_to_array(image))
        except MalformedMessageError as error:
            self.reject(f"source image: {error.kind}", str(error))
            return
        while self.pending:
            self._render(self.pending.popleft())

    def _on_keypoints(self, message: Keypoint60) -> None:
        if message.model_id != self.model_id:
            self._refuse_model_id(message.model_id)
            return
        if not self.has_source:
            if len(self.pending) == self.pending.maxlen:
                self.reject("no source image yet", "the oldest held keypoint frame was dropped")
            self.pending.append(message)
            return
        self._render(message)

    def _refuse_model_id(self, model_id: str) -> None:
        count = self.foreign_model_ids.get(model_id, 0) + 1
        self.foreign_model_ids[model_id] = count
        if count == 1:
            self.get_logger().warning(
                f"refusing keypoints with model_id {model_id!r}: this renderer pairs with "
                f"detector {self.model_id!r}"
            )

    def _render(self, message: Keypoint60) -> None:
        try:
            values = message_values(message)
        except MalformedMessageError as error:
            self.reject(error.kind, str(error))
            return
        frame = self.stream.render(int(message.frame_index), values, int(message.origin))
        header = message.header
        self.publisher.publish(array_to_image(frame.image, header.stamp, header.frame_id))
        if self.overlay_publisher is not None:
            self.overlay_publisher.publish(
                array_to_image(frame.overlay, header.stamp, header.frame_id))

    def on_exit(self) -> None:
        refused = sum(self.foreign_model_ids.values())
        self.log_final(
            f"rendered {self.stream.rendered} frames; refused {refused} with a foreign "
            f"model_id; skipped {sum(self.rejected.values())} malformed inputs"
        )


def main(args: list[str] | None = None) -> int:
    return run_node(RendererNode, args)


if __name__ == "__main__":
    exit_process(main())
