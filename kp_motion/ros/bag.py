"""Record and play rosbag2 bags with rclpy + the `rosbags` library (no rosbag2 install needed).

Bags are standard rosbag2 folders (metadata.yaml + one .mcap or .db3 file) that `ros2 bag
play` / `ros2 bag info` read. Messages are stored exactly as they travel: a raw rclpy
subscription hands over the serialised CDR bytes (the same bytes
rclpy.serialization.serialize_message produces), and play publishes those bytes unchanged.

The bag's type information (message definition and RIHS01 type hash, which rosbag2 stores
per topic) comes from a rosbags typestore: the ROS 2 Kilted standard messages plus
Keypoint60, registered from msg/Keypoint60.msg. Each topic is recorded with the QoS its
publishers offer (stored in the bag, so a latched topic is replayed latched).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kp_motion.stream.message import make_typestore
from kp_motion.topics import TOPICS

STORAGES = ("mcap", "sqlite3")
# What `kp-motion bag record` records when no topic is named: the keypoint streams.
DEFAULT_TOPICS = (TOPICS["network"], TOPICS["keypoints_full"])


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = type_name.replace("/msg/", "/").partition("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {type_name} is not available in this Python") from None


# --------------------------------------------------------------------------------------------
# QoS between rclpy and rosbags (both use the rmw enum values)
# --------------------------------------------------------------------------------------------


def _bag_time(duration) -> Any:
    from rosbags.interfaces import QosTime

    sec, nsec = divmod(int(duration.nanoseconds), 1_000_000_000)
    return QosTime(sec=sec, nsec=nsec)


def bag_qos(profile) -> Any:
    """rclpy QoSProfile -> rosbags Qos (stored as offered_qos_profiles)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability

    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=_bag_time(profile.deadline),
        lifespan=_bag_time(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_bag_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def subscription_qos(offered: list) -> Any:
    """A subscription QoS that matches every offered profile (as `ros2 bag record` adapts)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = bool(offered) and all(
        p.reliability == ReliabilityPolicy.RELIABLE for p in offered
    )
    latched = bool(offered) and all(
        p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1000,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def publisher_qos(bag_profiles: list) -> Any:
    """The QoS to replay a topic with: the first recorded offer, else reliable depth 10."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    if not bag_profiles:
        return QoSProfile(depth=10)
    first = bag_profiles[0]
    reliability = (ReliabilityPolicy.BEST_EFFORT if first.reliability.name == "BEST_EFFORT"
                   else ReliabilityPolicy.RELIABLE)
    durability = (DurabilityPolicy.TRANSIENT_LOCAL if first.durability.name == "TRANSIENT_LOCAL"
                  else DurabilityPolicy.VOLATILE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(int(first.depth), 10),
                      reliability=reliability, durability=durability)


# --------------------------------------------------------------------------------------------
# Record
# --------------------------------------------------------------------------------------------


def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise ValueError(f"unknown bag storage {storage!r} (expected one of {', '.join(STORAGES)})")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def _discover_types(node, topics: list[str], timeout_s: float) -> dict[str, str]:
    """topic -> type name, waiting until every topic has a publisher (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, str] = {}
    while node.context.ok():  # discovery runs in the middleware: no spinning needed
        known = dict(node.get_topic_names_and_types())
        found = {topic: known[topic][0] for topic in topics if known.get(topic)}
        if len(found) == len(topics) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    missing = [topic for topic in topics if topic not in found]
    if missing:
        raise ValueError(f"no publisher seen within {timeout_s:g} s on {', '.join(missing)}")
    return found


def record(
    output: str | Path,
    topics: list[str],
    storage: str = "mcap",
    duration_s: float | None = None,
    max_messages: int | None = None,
    discovery_timeout_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Record `topics` into the new bag folder `output` until Ctrl-C, the duration or the count.

    Returns the number of messages recorded per topic.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosbags.rosbag2 import Writer

    from kp_motion.ros.common import spin_once

    output = Path(output)
    if output.exists():
        raise ValueError(f"{output} exists already; bags are never overwritten")
    if not topics:
        raise ValueError("no topics to record")
    plugin = _storage_plugin(storage)
    store = make_typestore()
    counts = {topic: 0 for topic in topics}
    rclpy.init()
    try:
        node = rclpy.create_node("kp_motion_bag_recorder")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        types = _discover_types(node, topics, discovery_timeout_s)
        unknown = [f"{t} ({types[t]})" for t in topics if types[t] not in store.fielddefs]
        if unknown:
            raise ValueError(f"cannot record unknown message types: {', '.join(unknown)}")
        with Writer(output, version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
            for topic in topics:
                offered = [info.qos_profile for info in node.get_publishers_info_by_topic(topic)]
                connection = writer.add_connection(
                    topic, types[topic], typestore=store,
                    offered_qos_profiles=[bag_qos(profile) for profile in offered],
                )

                def write(data: bytes, topic=topic, connection=connection) -> None:
                    writer.write(connection, node.get_clock().now().nanoseconds, data)
                    counts[topic] += 1

                node.create_subscription(message_class(types[topic]), topic, write,
                                         subscription_qos(offered), raw=True)
            log(f"recording {', '.join(topics)} into {output}")
            started = time.monotonic()
            try:
                while spin_once(executor, node.context):
                    if max_messages and sum(counts.values()) >= max_messages:
                        break
                    if duration_s and time.monotonic() - started >= duration_s:
                        break
            except KeyboardInterrupt:
                pass  # the bag is closed properly below
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    log(f"recorded {sum(counts.values())} messages: {counts}")
    return counts


# --------------------------------------------------------------------------------------------
# Play
# --------------------------------------------------------------------------------------------


def _wait_for_subscribers(node, publishers: dict, count: int, timeout_s: float,
                          log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout_s
    while node.context.ok() and time.monotonic() < deadline:
        if all(p.get_subscription_count() >= count for p in publishers.values()):
            time.sleep(0.3)  # let discovery finish on the subscribers' side too
            return
        time.sleep(0.05)
    log(f"not every topic has {count} subscriber(s) after {timeout_s:g} s; playing anyway")


def play(
    bag: str | Path,
    rate: float = 1.0,
    topics: list[str] | None = None,
    wait_for_subscribers: int = 0,
    wait_timeout_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Publish a bag's messages with their recorded timing (scaled by 1 / rate).

    Returns the number of messages published per topic.
    """
    import rclpy
    from rclpy.duration import Duration
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    if not (bag / "metadata.yaml").is_file():
        raise FileNotFoundError(f"not a rosbag2 folder (no metadata.yaml): {bag}")
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    counts: dict[str, int] = {}
    rclpy.init()
    try:
        node = rclpy.create_node("kp_motion_bag_player")
        with Reader(bag) as reader:
            connections = [c for c in reader.connections if not topics or c.topic in topics]
            if not connections:
                raise ValueError(f"{bag}: none of the requested topics {topics} is in the bag")
            publishers = {}
            for connection in connections:
                if connection.topic not in publishers:
                    publishers[connection.topic] = node.create_publisher(
                        message_class(connection.msgtype), connection.topic,
                        publisher_qos(connection.ext.offered_qos_profiles),
                    )
                    counts[connection.topic] = 0
            if wait_for_subscribers > 0:
                _wait_for_subscribers(node, publishers, wait_for_subscribers, wait_timeout_s, log)
            log(f"playing {bag} ({sum(c.msgcount for c in connections)} messages) at {rate:g}x")
            started = time.monotonic()
            first_stamp = None
            try:
                for connection, stamp, data in reader.messages(connections=connections):
                    first_stamp = stamp if first_stamp is None else first_stamp
                    due = started + (stamp - first_stamp) / 1e9 / rate
                    while node.context.ok() and (wait := due - time.monotonic()) > 0:
                        time.sleep(min(wait, 0.05))
                    if not node.context.ok():
                        break
                    publishers[connection.topic].publish(bytes(data))
                    counts[connection.topic] += 1
                for publisher in publishers.values():
                    publisher.wait_for_all_acked(Duration(seconds=5))
            except KeyboardInterrupt:
                pass
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    log(f"published {sum(counts.values())} messages: {counts}")
    return counts


def info(bag: str | Path) -> dict[str, Any]:
    """Topics, types, counts and duration of a bag (what `ros2 bag info` shows)."""
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    if not (bag / "metadata.yaml").is_file():
        raise FileNotFoundError(f"not a rosbag2 folder (no metadata.yaml): {bag}")
    with Reader(bag) as reader:
        return {
            "duration_s": reader.duration / 1e9,
            "messages": reader.message_count,
            "topics": {c.topic: {"type": c.msgtype, "messages": c.msgcount}
                       for c in reader.connections},
        }
