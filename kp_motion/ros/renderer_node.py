"""renderer: source image + full-rate Keypoint60 -> rendered frames (and a keypoint overlay).

Topics (relative names, remapped by the graph):
    keypoints      Keypoint60 in (the forecaster's full-rate stream)
    source_image   sensor_msgs/Image in, latched (used when the source_image parameter is empty)
    rendered       sensor_msgs/Image rgb8 out, header copied from the keypoints (capture stamp)
    overlay        sensor_msgs/Image rgb8 out: the rendered frame with the driving keypoints
                   drawn on it and a border coloured by origin (green detected, amber
                   predicted, red concealed)

mode transfer animates any source with the motion relative to the first driving frame;
reconstruction drives the source (a frame of the same video) with the absolute keypoints.
Keypoints from another detector (model_id differs from this checkpoint's) are refused: logged
once per distinct id and counted. Keypoints that arrive before the source image are held
(up to PENDING_LIMIT) and rendered once it arrives. A frame_index lower than the previous one
starts a new driving stream (a new reference frame in transfer mode). With
wait_for_subscribers / wait_for_overlay_subscribers set (the graph sets them to its stats and
recorder nodes), the keypoints are subscribed to only once that many consumers match on
rendered / overlay, so no frame is rendered before they can receive it.
"""

from __future__ import annotations

from collections import deque
from functools import partial

import numpy as np
from sensor_msgs.msg import Image

from kp_motion.keypoints import Origin
from kp_motion.msg import Keypoint60
from kp_motion.ros.common import (
    KEYPOINT_QOS,
    LATCHED_QOS,
    RENDERED_QOS,
    TORCH_THREADS,
    KpMotionNode,
    Param,
    StartupError,
    configure_torch,
    exit_process,
    resolve_checkpoint,
    resolve_device,
    run_node,
)
from kp_motion.ros.conversions import (
    MalformedMessageError,
    array_to_image,
    image_to_array,
    message_values,
)

PENDING_LIMIT = 100
MODES = ("transfer", "reconstruction")
ORIGIN_COLOURS = {
    int(Origin.DETECTED): (0, 200, 0),
    int(Origin.PREDICTED): (255, 190, 0),
    int(Origin.CONCEALED): (230, 0, 0),
}
BORDER_PIXELS = 2


def overlay_frame(rendered: np.ndarray, positions: np.ndarray, origin: int) -> np.ndarray:
    """The rendered frame with keypoints drawn and a border coloured by the frame's origin."""
    from kp_motion.models.animator import draw_keypoints

    canvas = draw_keypoints(rendered, positions)
    colour = ORIGIN_COLOURS.get(origin, (128, 128, 128))
    b = BORDER_PIXELS
    canvas[:b], canvas[-b:], canvas[:, :b], canvas[:, -b:] = colour, colour, colour, colour
    return canvas


class RendererNode(KpMotionNode):
    config_key = "renderer"
    params = (
        Param("checkpoint", str, "FOMM checkpoint folder (empty = embedded default model)"),
        Param("device", str, "torch device: auto, cpu, cuda, cuda:N"),
        TORCH_THREADS,
        Param("mode", str, "transfer (relative motion) or reconstruction (absolute)",
              choices=MODES),
        Param("source_image", str, "source image file (empty = the source_image topic)"),
        Param("overlay", bool, "also publish the keypoint overlay image"),
        Param("wait_for_subscribers", int,
              "subscribe to keypoints once this many match on rendered", 0, 100),
        Param("wait_for_overlay_subscribers", int,
              "and once this many match on overlay (when it is published)", 0, 100),
    )

    def __init__(self) -> None:
        super().__init__()
        s = self.settings
        configure_torch(s["torch_threads"])
        self._load_model(resolve_checkpoint(s["checkpoint"]), resolve_device(s["device"]))
        self.has_source = False
        self.pending: deque[Keypoint60] = deque(maxlen=PENDING_LIMIT)
        self.foreign_model_ids: dict[str, int] = {}
        self.last_frame_index: int | None = None
        self.rendered = 0
        self.publisher = self.create_publisher(Image, "rendered", RENDERED_QOS)
        self.overlay_publisher = (
            self.create_publisher(Image, "overlay", RENDERED_QOS) if s["overlay"] else None
        )
        if s["source_image"]:
            self._set_source_file(s["source_image"])
        else:
            self.create_subscription(Image, "source_image", self._on_source, LATCHED_QOS)
        # Frames rendered before a consumer matches are lost to it (volatile durability), so
        # the keypoints are taken only once the consumers of both outputs are there.
        then = self._subscribe
        if self.overlay_publisher is not None:
            then = partial(self.when_subscribed, self.overlay_publisher,
                           s["wait_for_overlay_subscribers"], self._subscribe)
        self.when_subscribed(self.publisher, s["wait_for_subscribers"], then)

    def _subscribe(self) -> None:
        self.create_subscription(Keypoint60, "keypoints", self._on_keypoints, KEYPOINT_QOS)
        self.announce_ready(f"mode {self.settings['mode']}, model_id {self.model_id}")

    def _load_model(self, folder, device: str) -> None:
        from kp_motion.models import checkpoint
        from kp_motion.models.animator import Animator
        from kp_motion.models.normalization import MotionMode

        try:
            config, kp_detector, generator = checkpoint.load_model(folder, device)
        except (ValueError, FileNotFoundError) as error:
            raise StartupError(str(error)) from None
        self.config = config
        self.model_id = checkpoint.model_id(config, kp_detector)
        mode = MotionMode.RELATIVE if self.settings["mode"] == "transfer" else MotionMode.ABSOLUTE
        self.animator = Animator(kp_detector, generator, config, mode=mode)
        self.get_logger().info(f"generator {folder} (model_id {self.model_id}) on {device}")
        self._warm_up()

    def _warm_up(self) -> None:
        """One render with a blank source, so that the first real frame is not the slow one."""
        from kp_motion.data.video_io import to_tensor

        blank = np.full((*self.config.image_size, 3), 128, np.uint8)
        self.animator.set_source(to_tensor(blank))
        self.animator.render(self.animator.kp_source)

    def _set_source_file(self, path: str) -> None:
        from kp_motion.data.video_io import read_image

        try:
            self._set_source(read_image(path))
        except (ValueError, FileNotFoundError) as error:
            raise StartupError(f"source_image: {error}") from None

    def _set_source(self, frame: np.ndarray) -> None:
        from kp_motion.data.video_io import resize_frame, to_tensor

        frame = resize_frame(frame, self.config.image_size)
        self.animator.set_source(to_tensor(frame))
        self.has_source = True
        self.last_frame_index = None
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
        from kp_motion.data.video_io import from_tensor
        from kp_motion.models.animator import keypoints_from_values

        try:
            values = message_values(message)
        except MalformedMessageError as error:
            self.reject(error.kind, str(error))
            return
        frame_index = int(message.frame_index)
        if self.last_frame_index is not None and frame_index < self.last_frame_index:
            self.animator.reset_driving()  # a new driving stream: new reference frame
        self.last_frame_index = frame_index
        kp_norm = self.animator.normalized(keypoints_from_values(values, self.animator.device))
        prediction = self.animator.render_normalized(kp_norm)["prediction"]
        rendered = from_tensor(prediction)[0]
        self.publisher.publish(array_to_image(rendered, message.header.stamp,
                                              message.header.frame_id))
        if self.overlay_publisher is not None:
            positions = kp_norm["value"][0].detach().cpu().numpy()
            overlay = overlay_frame(rendered, positions, int(message.origin))
            self.overlay_publisher.publish(
                array_to_image(overlay, message.header.stamp, message.header.frame_id)
            )
        self.rendered += 1

    def on_exit(self) -> None:
        refused = sum(self.foreign_model_ids.values())
        self.log_final(
            f"rendered {self.rendered} frames; refused {refused} with a foreign model_id; "
            f"skipped {sum(self.rejected.values())} malformed inputs"
        )


def main(args: list[str] | None = None) -> int:
    return run_node(RendererNode, args)


if __name__ == "__main__":
    exit_process(main())
