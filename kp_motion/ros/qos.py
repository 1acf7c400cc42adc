"""THE QoS of every topic of the graph, and why: nodes never wait for subscribers.

A ROS publisher does not wait for its readers; what a reader that joins late (or a slow one)
must still get is decided per topic by its QoS. QOS_TABLE is the table the README quotes (a
test keeps the two equal); the profiles below are what the nodes pass to rclpy.

Compatibility (DDS request/offer): a best-effort reader matches a reliable writer, and a
volatile reader matches a transient-local writer; a transient-local reader needs a
transient-local writer. Every kp_motion writer but a live camera keeps its last messages for
late readers (transient local), so the graph's nodes can start in any order; a live camera
does not (its readers want the newest frame, not a backlog), and its readers are volatile.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# Frames a recorded clip keeps for readers that join late: 4 s at 25 fps. Bounds the memory a
# clip's camera holds (100 frames of the clip's size) and a reader's history alike.
CLIP_HISTORY = 100


def _profile(depth: int, reliable: bool = True, latched: bool = False) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


# Camera images of a live device, publisher: reliable with a short history; sensor-data
# (best-effort) readers get best-effort delivery from it.
RELIABLE_IMAGE_QOS = _profile(10)
# ...and a live camera's readers: drop frames rather than queue them.
SENSOR_QOS = qos_profile_sensor_data
# Camera images of a recorded clip, publisher and readers: every frame, also for a reader
# that joins up to CLIP_HISTORY frames late (a detector still loading its model).
CLIP_IMAGE_QOS = _profile(CLIP_HISTORY, latched=True)
# Keypoint60 streams (network and full rate): every frame matters to the forecaster and the
# renderer, and they are tiny; a reader that joins late (a renderer still loading its model)
# gets the last KEYPOINT_HISTORY frames.
KEYPOINT_HISTORY = 100
KEYPOINT_QOS = _profile(KEYPOINT_HISTORY, latched=True)
# The source image: published once, kept for readers that join later ("latched").
LATCHED_QOS = _profile(1, latched=True)
# Rendered and overlay images: reliable, so a recorder keeps every frame, and the last 10 kept
# for a late reader; rqt_image_view's sensor-data (best-effort, volatile) reader is compatible
# and gets best-effort delivery.
RENDERED_QOS = _profile(10, latched=True)
# Readers that must keep every message while their callback is busy (the stats node's rendered
# frames, the runner's recorder): a reliable reader's KEEP_LAST history drops its oldest unread
# samples once full, so a short one loses frames whenever the reader stalls. Transient-local:
# they also take what the writer kept for late readers.
RECORDER_QOS = _profile(1000, latched=True)
# ...the same for a live camera's images, whose writer keeps nothing for late readers (a
# transient-local reader would not match it).
LIVE_RECORDER_QOS = _profile(1000)

# (graph topic, publisher QoS, reader QoS, why) -- the README's QoS table.
QOS_TABLE = (
    ("image (live camera)", "reliable, keep last 10, volatile",
     "best effort (sensor data); recorder: reliable, 1000",
     "a live stream drops frames rather than queue them"),
    ("image (recorded clip)", f"reliable, keep last {CLIP_HISTORY}, transient local",
     f"reliable, keep last {CLIP_HISTORY} (recorder: 1000), transient local",
     "every frame, also for a detector that joins late"),
    ("source_image", "reliable, keep last 1, transient local",
     "reliable, keep last 1, transient local", "published once (latched)"),
    ("camera/clip_end", "reliable, keep last 1, transient local",
     "reliable, keep last 1, transient local",
     "the clip's last frame, published once at its end (latched)"),
    ("network/keypoints, network/packets, keypoints (full rate)",
     f"reliable, keep last {KEYPOINT_HISTORY}, transient local",
     f"reliable, keep last {KEYPOINT_HISTORY} (recorders: 1000), transient local",
     "every frame, also for a reader that joins late; tiny"),
    ("network/stream", "reliable, keep last 1, transient local",
     "reliable, keep last 1, transient local",
     "the compact stream's description, published once (latched)"),
    ("rendered, overlay", "reliable, keep last 10, transient local",
     "rqt: best effort, volatile; stats, recorder: reliable, 1000, transient local",
     "viewers and recorders"),
)


def qos_table_markdown() -> list[str]:
    """QOS_TABLE as the Markdown table rows of the README."""
    rows = ["| topic | publisher | readers | why |", "|---|---|---|---|"]
    rows += [f"| {' | '.join(row)} |" for row in QOS_TABLE]
    return rows
