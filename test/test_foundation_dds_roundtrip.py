"""A Keypoint60 crosses a process boundary over real DDS (Fast DDS, loopback) intact."""

import json
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from kp_motion.msg import Keypoint60

    rclpy.init()
    node = rclpy.create_node("roundtrip_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher = node.create_publisher(Keypoint60, "roundtrip_keypoints", qos)
    message = Keypoint60()
    message.header.stamp.sec = 1764000000
    message.header.stamp.nanosec = 123456789
    message.header.frame_id = "camera_optical"
    message.frame_index = 2**40 + 7
    message.origin = Keypoint60.ORIGIN_CONCEALED
    message.model_id = "f00dcafe1234"
    message.values = [float(i) * 0.25 - 7.5 for i in range(60)]
    publisher.publish(message)
    # Stay until the subscriber has taken the (transient-local) sample, or give up.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sys.stdin.readline().strip() != "done":
        pass
    node.destroy_node()
    rclpy.shutdown()
    """
)


def test_keypoint60_roundtrip_between_processes(ros_env, python_exe):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from kp_motion.msg import Keypoint60

    publisher = subprocess.Popen(
        [python_exe, "-c", PUBLISHER], env=ros_env, stdin=subprocess.PIPE, text=True
    )
    received = []
    rclpy.init()
    try:
        node = rclpy.create_node("roundtrip_subscriber")
        qos = QoSProfile(
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        node.create_subscription(Keypoint60, "roundtrip_keypoints", received.append, qos)
        for _ in range(300):  # up to ~30 s
            rclpy.spin_once(node, timeout_sec=0.1)
            if received:
                break
        node.destroy_node()
    finally:
        rclpy.shutdown()
        publisher.communicate("done\n", timeout=30)

    assert publisher.returncode == 0
    assert len(received) == 1, "no Keypoint60 arrived from the other process"
    message = received[0]
    assert message.header.stamp.sec == 1764000000
    assert message.header.stamp.nanosec == 123456789
    assert message.header.frame_id == "camera_optical"
    assert message.frame_index == 2**40 + 7
    assert message.origin == Keypoint60.ORIGIN_CONCEALED
    assert message.model_id == "f00dcafe1234"
    expected = [float(i) * 0.25 - 7.5 for i in range(60)]
    assert json.dumps([float(v) for v in message.values]) == json.dumps(expected)
