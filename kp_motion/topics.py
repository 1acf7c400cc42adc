"""Topic names of the kp_motion node graph, ROS-free: the graph description
(kp_motion/ros/graph.py), the runner's recorder, the bag tools and the bag evaluation share them.

The graph's nodes use these names RELATIVE to their namespace (no leading slash), so a graph
started in a namespace (`kp-motion graph --namespace robot1`, `namespace:=robot1`, or
PushRosNamespace in a launch file) keeps all of its traffic under /robot1/kp_motion/..., and
two graphs in two namespaces never see each other's topics. Without a namespace they resolve
to /kp_motion/...: TOPICS holds those absolute names (the defaults of the bag tools).
"""

from __future__ import annotations

import re

GRAPH_TOPICS = {
    "image": "kp_motion/camera/image",
    # std_msgs/Header, latched: the stamp of a clip's last frame (the detector's end marker)
    "clip_end": "kp_motion/camera/clip_end",
    "source_image": "kp_motion/source_image",
    "network": "kp_motion/network/keypoints",  # Keypoint60 (wire float32)
    "network_packets": "kp_motion/network/packets",  # KeypointPacket (wire compact)
    "network_stream": "kp_motion/network/stream",  # KeypointStream: the packets' description
    "keypoints_full": "kp_motion/keypoints",
    "rendered": "kp_motion/rendered",
    "overlay": "kp_motion/overlay",
}
# Topics that carry pixels (sensor_msgs/Image): what keypoints-only egress keeps off the network.
IMAGE_TOPICS = ("image", "source_image", "rendered", "overlay")

# A ROS namespace: name tokens of letters, digits and underscores (not starting with a digit),
# separated by single slashes; an optional leading slash.
_NAMESPACE = re.compile(r"^/?([A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_][A-Za-z0-9_]*)*$")


def check_namespace(namespace: str) -> str:
    """The namespace as an absolute name ('' or '/' -> ''); ValueError naming a bad one."""
    text = namespace.strip().rstrip("/") if namespace.strip() != "/" else ""
    if text and not _NAMESPACE.match(text):
        raise ValueError(f"namespace {namespace!r} is not a ROS namespace (letters, digits and "
                         "underscores, tokens separated by '/', not starting with a digit)")
    return "/" + text.lstrip("/") if text else ""


def resolved(name: str, namespace: str = "") -> str:
    """The absolute topic of graph topic `name` in `namespace` (e.g. /robot1/kp_motion/rendered)."""
    return f"{check_namespace(namespace)}/{GRAPH_TOPICS[name]}"


TOPICS = {name: resolved(name) for name in GRAPH_TOPICS}
