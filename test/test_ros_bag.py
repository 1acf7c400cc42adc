"""Bags: `kp-motion bag record` -> rosbag2 folder (rosbags) -> `kp-motion bag play` -> the same
messages, over real DDS; and the bag carries the type hashes ROS 2 itself computes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from ros_helpers import child_env, run_cli

from conftest import REPO_ROOT

pytestmark = pytest.mark.ros

KEYPOINT_TOPIC = "/bagtest/keypoints"
IMAGE_TOPIC = "/bagtest/image"
KEYPOINT_COUNT = 12
IMAGE_COUNT = 3

PUBLISHER = textwrap.dedent(
    f"""
    import time
    import numpy as np
    import rclpy
    from rclpy.duration import Duration
    from sensor_msgs.msg import Image
    from kp_motion.msg import Keypoint60
    from kp_motion.ros.qos import RELIABLE_IMAGE_QOS, KEYPOINT_QOS
    from kp_motion.ros.conversions import array_to_image, keypoints_to_message, ns_to_stamp

    rclpy.init()
    node = rclpy.create_node("bag_source")
    keypoints = node.create_publisher(Keypoint60, "{KEYPOINT_TOPIC}", KEYPOINT_QOS)
    images = node.create_publisher(Image, "{IMAGE_TOPIC}", RELIABLE_IMAGE_QOS)
    deadline = time.monotonic() + 60
    while min(keypoints.get_subscription_count(), images.get_subscription_count()) < 1:
        assert time.monotonic() < deadline, "no recorder"
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)
    for i in range({KEYPOINT_COUNT}):
        values = np.arange(60, dtype=np.float32) * 0.01 + i
        keypoints.publish(keypoints_to_message(values, frame_index=i, origin=i % 3,
                          model_id="bagtest", stamp=ns_to_stamp(10**18 + i), frame_id="cam"))
        if i < {IMAGE_COUNT}:
            pixels = np.full((4, 5, 3), i * 40, np.uint8)
            images.publish(array_to_image(pixels, ns_to_stamp(10**18 + i), "cam"))
        time.sleep(0.02)
    for publisher in (keypoints, images):
        publisher.wait_for_all_acked(Duration(seconds=10))
    node.destroy_node()
    rclpy.shutdown()
    """
)


def _check_bag_contents(bag_path):
    from rosbags.rosbag2 import Reader

    from kp_motion.ros.bag import make_typestore

    store = make_typestore()
    with Reader(bag_path) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert topics[KEYPOINT_TOPIC].msgtype == "kp_motion/msg/Keypoint60"
        assert topics[IMAGE_TOPIC].msgtype == "sensor_msgs/msg/Image"
        assert topics[KEYPOINT_TOPIC].ext.offered_qos_profiles[0].reliability.name == "RELIABLE"
        decoded = [store.deserialize_cdr(data, c.msgtype)
                   for c, _, data in reader.messages([topics[KEYPOINT_TOPIC]])]
    assert [m.frame_index for m in decoded] == list(range(KEYPOINT_COUNT))
    np.testing.assert_allclose(decoded[5].values, np.arange(60) * 0.01 + 5, rtol=1e-6)
    return {topic: connection.digest for topic, connection in topics.items()}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_record_then_play_gives_the_same_messages(tmp_path, ros_env, storage):
    import rclpy
    from sensor_msgs.msg import Image

    from kp_motion.msg import Keypoint60
    from kp_motion.ros.qos import KEYPOINT_QOS, RELIABLE_IMAGE_QOS

    env = child_env(ros_env)
    bag_path = tmp_path / "bag"
    source = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env, cwd=REPO_ROOT,
                              stderr=subprocess.PIPE, text=True)
    recorded = run_cli(["bag", "record", str(bag_path), "--topic", KEYPOINT_TOPIC, "--topic",
                        IMAGE_TOPIC, "--max-messages", str(KEYPOINT_COUNT + IMAGE_COUNT),
                        "--storage", storage, "--discovery-timeout", "60"],
                       env, REPO_ROOT, timeout=120)
    assert source.wait(60) == 0, source.stderr.read()
    assert recorded.returncode == 0, recorded.stderr
    suffix = {"mcap": "*.mcap", "sqlite3": "*.db3"}[storage]
    assert (bag_path / "metadata.yaml").is_file() and list(bag_path.glob(suffix))
    digests = _check_bag_contents(bag_path)
    info = run_cli(["bag", "info", str(bag_path)], env, REPO_ROOT, timeout=60)
    assert json.loads(info.stdout)["topics"][KEYPOINT_TOPIC]["messages"] == KEYPOINT_COUNT

    received: dict[str, list] = {KEYPOINT_TOPIC: [], IMAGE_TOPIC: []}
    rclpy.init()
    try:
        node = rclpy.create_node("bag_sink")
        node.create_subscription(Keypoint60, KEYPOINT_TOPIC, received[KEYPOINT_TOPIC].append,
                                 KEYPOINT_QOS)
        node.create_subscription(Image, IMAGE_TOPIC, received[IMAGE_TOPIC].append,
                                 RELIABLE_IMAGE_QOS)
        player = subprocess.Popen(
            [sys.executable, "-m", "kp_motion.cli.main", "bag", "play", str(bag_path),
             "--rate", "4", "--wait-for-subscribers", "1", "--wait-timeout", "60"],
            env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
        hashes = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and player.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            for topic in received:  # the type hash ROS 2 itself computed for the player's types
                for info in node.get_publishers_info_by_topic(topic):
                    hashes[topic] = str(info.topic_type_hash)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    assert player.wait(30) == 0, player.stderr.read()

    keypoints = received[KEYPOINT_TOPIC]
    assert [m.frame_index for m in keypoints] == list(range(KEYPOINT_COUNT))
    assert [m.origin for m in keypoints] == [i % 3 for i in range(KEYPOINT_COUNT)]
    assert [m.header.stamp.nanosec for m in keypoints] == list(range(KEYPOINT_COUNT))
    assert all(m.model_id == "bagtest" for m in keypoints)
    np.testing.assert_array_equal(keypoints[7].values, np.arange(60, dtype=np.float32) * 0.01 + 7)
    images = received[IMAGE_TOPIC]
    assert [bytes(m.data)[0] for m in images] == [i * 40 for i in range(IMAGE_COUNT)]
    assert hashes == digests, "the bag's RIHS01 type hashes are the ones ROS 2 computes"


def test_bag_commands_refuse_bad_paths_in_one_line(tmp_path, ros_env):
    existing = tmp_path / "exists"
    existing.mkdir()
    for args, complaint in (
        (["bag", "play", str(tmp_path / "missing")], "not a rosbag2 folder"),
        (["bag", "info", str(tmp_path)], "not a rosbag2 folder"),
        (["bag", "record", str(existing), "--topic", "/x"], "exists already"),
    ):
        result = run_cli(args, child_env(ros_env), REPO_ROOT, timeout=60)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and complaint in result.stderr
