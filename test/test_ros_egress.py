"""Keypoints-only egress and namespaces over real DDS: two sender nodes (capture + detection in
one process) in two namespaces. Every topic each offers is listed: none carries pixels, and
each namespace hears only its own keypoints."""

from __future__ import annotations

import time

import pytest
from ros_helpers import child_env, make_checkpoint, write_clip

pytestmark = pytest.mark.ros

MODEL_WAIT_S = 90  # node start-up (torch import, model load) on 2 busy cores
# Topics every rclpy node offers by itself (logging, parameter events).
ROS_OWN_TOPICS = {"/rosout", "/parameter_events"}


def _sender(robot: str, clip, checkpoint, tmp_path, env):
    from kp_motion.graph_config.options import GraphOptions
    from kp_motion.ros.commands import command_line
    from kp_motion.ros.graph import NodeSpec, build_graph
    from kp_motion.ros.processes import NodeProcess

    (spec,) = build_graph("transfer", GraphOptions(
        role="sender", namespace=robot, input=str(clip), checkpoint=str(checkpoint),
        device="cpu", m=1, n=0, fps=20.0))
    # loop: the stream goes on however late the probe starts; frame_id tells the robots apart
    spec = NodeSpec(spec.name, spec.executable, spec.role,
                    {**spec.parameters, "loop": True, "frame_id": f"{robot}_camera"},
                    spec.remappings, spec.namespace)
    folder = tmp_path / robot
    return NodeProcess(spec, command_line(spec, folder / "parameters"), folder / "sender.log",
                       env=env)


def _offered_topics(node, namespace: str) -> dict[str, list[str]]:
    """topic -> types, of every topic that a node named sender in `namespace` publishes."""
    offered = {}
    for topic, types in node.get_topic_names_and_types():
        writers = node.get_publishers_info_by_topic(topic)
        if any(w.node_name == "sender" and w.node_namespace == namespace for w in writers):
            offered[topic] = types
    return offered


def test_senders_offer_no_pixels_and_two_namespaces_stay_apart(tmp_path, ros_env):
    import rclpy

    from kp_motion.msg import Keypoint60
    from kp_motion.ros.qos import KEYPOINT_QOS
    from kp_motion.topics import resolved

    checkpoint = make_checkpoint(tmp_path / "model")
    clip = write_clip(tmp_path / "clip", 6)
    env = child_env(ros_env)
    robots = ("robot1", "robot2")
    processes = [_sender(robot, clip, checkpoint, tmp_path, env) for robot in robots]
    rclpy.init()
    heard: dict[str, list[str]] = {robot: [] for robot in robots}
    try:
        probe = rclpy.create_node("egress_probe")
        for robot in robots:
            probe.create_subscription(
                Keypoint60, resolved("network", robot),
                lambda message, robot=robot: heard[robot].append(message.header.frame_id),
                KEYPOINT_QOS)
        deadline = time.monotonic() + MODEL_WAIT_S
        while min(len(frames) for frames in heard.values()) < 3:
            for process in processes:
                assert process.alive(), "\n".join(process.tail)
            assert time.monotonic() < deadline, {r: len(f) for r, f in heard.items()}
            rclpy.spin_once(probe, timeout_sec=0.1)
        offered = {robot: _offered_topics(probe, f"/{robot}") for robot in robots}
        probe.destroy_node()
    finally:
        rclpy.try_shutdown()
        codes = [process.stop(10.0) for process in processes]
    for robot in robots:
        assert set(heard[robot]) == {f"{robot}_camera"}, "each namespace hears only its own"
        topics = offered[robot]
        assert set(topics) - ROS_OWN_TOPICS == {resolved("network", robot)}, topics
        assert not any("sensor_msgs/msg/Image" in types for types in topics.values()), topics
    assert codes == [0, 0]
