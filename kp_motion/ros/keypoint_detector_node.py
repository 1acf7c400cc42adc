"""keypoint_detector: camera images -> Keypoint60 on the network topic, through the transmit gate.

Topics (relative names, remapped by the graph):
    image       sensor_msgs/Image in: sensor-data QoS, or reliable with a 100-frame history
                (reliable_images) for a recorded clip, where every frame should be rendered
    keypoints   Keypoint60 out, reliable: the network topic, only the transmitted frames

frame_index comes from the capture stamps (FrameIndexer): 0 for the first image, then each
image advances it by the number of frame periods (1 / fps) between its stamp and the previous
one's, at least 1. An image lost between camera and detector thus leaves a gap in frame_index
(which the receiver conceals) instead of shifting every later index, and timing jitter below
half a period changes nothing. The camera stamps a clip's frames on the clip's own timeline,
exactly one period apart. Malformed images do not count. header.stamp and header.frame_id are
copied from the image, so the capture time travels with the keypoints.

Transmit gate: of every m + n frames the first m are detected and published, the other n are
withheld (the receiver forecasts them; kp_motion.forecasting.schedule). drop_probability
simulates a lossy network by also dropping that share of the transmitted frames (seeded).
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from kp_motion.keypoints import Origin
from kp_motion.msg import Keypoint60
from kp_motion.ros.common import (
    CLIP_IMAGE_QOS,
    KEYPOINT_QOS,
    SENSOR_QOS,
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
    image_to_array,
    keypoints_to_message,
    stamp_to_ns,
)


class FrameIndexer:
    """Capture stamps (ns) -> frame indices, counting frame periods between consecutive stamps."""

    def __init__(self, fps: float) -> None:
        self.period_ns = 1e9 / fps
        self.last_stamp: int | None = None
        self.last_index = -1

    def index(self, stamp_ns: int) -> int:
        if self.last_stamp is None:
            steps = 1
        else:
            # A stamp that goes backwards (a restarted camera) still advances by one frame.
            steps = max(1, round((stamp_ns - self.last_stamp) / self.period_ns))
        self.last_stamp = stamp_ns
        self.last_index += steps
        return self.last_index


class TransmitGate:
    """Decides per frame_index whether a frame goes on the network (schedule + simulated loss)."""

    def __init__(self, m: int, n: int, drop_probability: float, seed: int) -> None:
        from kp_motion.forecasting.schedule import is_transmitted

        is_transmitted(0, m, n)  # validates the schedule
        self._is_transmitted = is_transmitted
        self.m, self.n = m, n
        self.drop_probability = drop_probability
        self._random = np.random.default_rng(seed)
        self.withheld = 0
        self.dropped = 0
        self.passed = 0

    def scheduled(self, frame_index: int) -> bool:
        """True when the schedule transmits this frame (it must then be detected)."""
        if self._is_transmitted(frame_index, self.m, self.n):
            return True
        self.withheld += 1
        return False

    def survives_network(self) -> bool:
        """The simulated network: False for a transmitted frame that gets lost."""
        if self.drop_probability > 0 and self._random.random() < self.drop_probability:
            self.dropped += 1
            return False
        self.passed += 1
        return True


class KeypointDetectorNode(KpMotionNode):
    config_key = "keypoint_detector"
    params = (
        Param("checkpoint", str, "FOMM checkpoint folder (empty = embedded default model)"),
        Param("device", str, "torch device: auto, cpu, cuda, cuda:N"),
        TORCH_THREADS,
        Param("fps", float, "frame rate: frame_index counts periods between stamps", 0.1, 1000.0),
        Param("m", int, "transmitted frames per cycle", 1, 10_000),
        Param("n", int, "withheld frames per cycle (0 = transmit every frame)", 0, 10_000),
        Param("drop_probability", float, "simulated loss of transmitted frames", 0.0, 1.0),
        Param("drop_seed", int, "seed of the simulated loss", 0, 2**31 - 1),
        Param("reliable_images", bool, "reliable image delivery (recorded clips); "
              "false = sensor-data QoS (live cameras)"),
        Param("wait_for_subscribers", int, "subscribe to images once this many match", 0, 100),
    )

    def __init__(self) -> None:
        super().__init__()
        s = self.settings
        configure_torch(s["torch_threads"])
        self._load_model(resolve_checkpoint(s["checkpoint"]), resolve_device(s["device"]))
        self.gate = TransmitGate(s["m"], s["n"], s["drop_probability"], s["drop_seed"])
        self.indexer = FrameIndexer(s["fps"])
        self.captured = 0
        self.publisher = self.create_publisher(Keypoint60, "keypoints", KEYPOINT_QOS)
        self.when_subscribed(self.publisher, s["wait_for_subscribers"], self._subscribe)

    def _load_model(self, folder, device: str) -> None:
        import torch

        from kp_motion.models import checkpoint

        try:
            self.config, self.kp_detector, _ = checkpoint.load_model(folder, device)
        except (ValueError, FileNotFoundError) as error:
            raise StartupError(str(error)) from None
        self.model_id = checkpoint.model_id(self.config, self.kp_detector)
        self.device = device
        self._torch = torch
        # The first forward pass is slow (allocations, kernel selection): pay it before the
        # stream starts, not on its first frame.
        self._detect(np.zeros((*self.config.image_size, 3), np.uint8))
        self.get_logger().info(f"detector {folder} (model_id {self.model_id}) on {device}")

    def _subscribe(self) -> None:
        qos = CLIP_IMAGE_QOS if self.settings["reliable_images"] else SENSOR_QOS
        self.create_subscription(Image, "image", self._on_image, qos)
        self.announce_ready(f"model_id {self.model_id}")

    def _detect(self, frame: np.ndarray) -> np.ndarray:
        from kp_motion.data.video_io import resize_frame, to_tensor
        from kp_motion.models.animator import keypoints_to_values

        frame = resize_frame(frame, self.config.image_size)
        with self._torch.inference_mode():
            keypoints = self.kp_detector(to_tensor(frame).to(self.device))
        return keypoints_to_values(keypoints)[0]

    def _on_image(self, image: Image) -> None:
        try:
            frame = image_to_array(image)
        except MalformedMessageError as error:
            self.reject(error.kind, str(error))
            return
        frame_index = self.indexer.index(stamp_to_ns(image.header.stamp))
        self.captured += 1
        if not self.gate.scheduled(frame_index):
            return
        values = self._detect(frame)
        if not np.isfinite(values).all():
            self.reject("non-finite detection", f"frame {frame_index}")
            return
        if not self.gate.survives_network():
            return
        self.publisher.publish(
            keypoints_to_message(
                values,
                frame_index=frame_index,
                origin=int(Origin.DETECTED),
                model_id=self.model_id,
                stamp=image.header.stamp,
                frame_id=image.header.frame_id,
            )
        )

    def on_exit(self) -> None:
        self.log_final(
            f"received {self.captured} images (last frame_index {self.indexer.last_index}): "
            f"{self.gate.passed} sent, {self.gate.withheld} withheld, {self.gate.dropped} "
            "dropped by the simulated network"
        )


def main(args: list[str] | None = None) -> int:
    return run_node(KeypointDetectorNode, args)


if __name__ == "__main__":
    exit_process(main())
