"""Topic names of the kp_motion node graph, ROS-free: the graph description
(kp_motion/ros/graph.py), the bag tools and the bag evaluation (kp_motion/evaluation) share them.
"""

# Absolute topic names; the nodes use the relative names on the left, remapped by the graph.
TOPICS = {
    "image": "/kp_motion/camera/image",
    "source_image": "/kp_motion/source_image",
    "network": "/kp_motion/network/keypoints",
    "keypoints_full": "/kp_motion/keypoints",
    "rendered": "/kp_motion/rendered",
    "overlay": "/kp_motion/overlay",
}
