"""The stats arithmetic without ROS: rates, index gaps, latencies by origin."""

from __future__ import annotations

import pytest

from kp_motion.keypoints import Origin
from kp_motion.stream.meters import (
    ALL_FRAMES,
    IndexGaps,
    RateMeter,
    StreamStats,
    latency_summary,
)


def test_rate_meter_counts_the_intervals_between_arrivals():
    meter = RateMeter()
    for second in range(5):
        meter.add(300, float(second))
    summary = meter.summary()
    assert summary["bytes_per_second"] == pytest.approx(300.0)
    assert summary["messages_per_second"] == pytest.approx(1.0)
    assert summary["mean_message_bytes"] == 300.0 and summary["messages"] == 5
    assert RateMeter().summary()["bytes_per_second"] == 0.0


def test_index_gaps_count_only_transmitted_frames():
    gaps = IndexGaps(m=2, n=2)
    for index in (0, 1, 5, 8):  # 4 lost (transmitted), 2-3 and 6-7 withheld
        gaps.add(index)
    assert gaps.missing == 1


def test_latency_summary():
    latency = latency_summary([0.010, 0.020, 0.030])
    assert latency["mean_ms"] == pytest.approx(20.0) and latency["count"] == 3
    assert latency["max_ms"] == pytest.approx(30.0)
    assert latency_summary([]) == {"count": 0}


def test_stream_stats_split_latency_by_the_origin_of_each_stamp():
    stats = StreamStats(fps=10.0, m=1, n=1)
    for index in range(4):
        stats.on_network(312, 2 * index, now_s=0.2 * index)
    stamps = {1_000: Origin.DETECTED, 2_000: Origin.PREDICTED, 3_000: Origin.CONCEALED}
    for stamp, origin in stamps.items():
        assert stats.on_full(int(origin), stamp)
    assert not stats.on_full(99, 4_000), "an unknown origin is refused"
    for stamp in stamps:
        stats.on_rendered(stamp, stamp + 5_000_000)  # 5 ms after capture
    summary = stats.summary({"unknown origin": 1})
    assert summary["keypoints_full"] == {"frames": 3, "detected": 1, "predicted": 1,
                                         "concealed": 1}
    assert summary["network"]["bytes_per_second"] == pytest.approx(3 * 312 / 0.6)
    assert summary["network"]["bytes_per_stream_second"] == pytest.approx(4 * 312 / 0.3)
    assert summary["network"]["frames_lost"] == 0
    latency = summary["rendered"]["latency"]
    assert latency[ALL_FRAMES]["count"] == 3 and latency["predicted"]["count"] == 1
    assert latency[ALL_FRAMES]["mean_ms"] == pytest.approx(5.0)
    assert summary["rejected"] == {"unknown origin": 1}
    assert summary["schedule"] == {"m": 1, "n": 1}


def test_the_end_marker_costs_bytes_but_is_no_frame_sent():
    stats = StreamStats(fps=10.0, m=1, n=0, count_gaps=False)
    for index in range(4):
        stats.on_full(int(Origin.DETECTED if index % 2 == 0 else Origin.PREDICTED), index)
    stats.on_network(80, 0, now_s=0.0)
    stats.on_network(80, 2, now_s=0.2)
    stats.on_network(80, 3, now_s=0.3, carries_frame=False)  # the end marker
    network = stats.summary()["network"]
    assert network["messages"] == 3 and network["frames_sent"] == 2
    assert network["frames_sent_share"] == pytest.approx(2 / 4)
    assert network["payload_bytes_per_second"] == pytest.approx(3 * 80 / 0.4)


def test_forecast_frames_negative_latencies_are_named_not_mixed_silently():
    stats = StreamStats(fps=10.0, m=1, n=1)
    assert stats.on_full(int(Origin.DETECTED), 1_000_000_000)
    assert stats.on_full(int(Origin.PREDICTED), 1_100_000_000)  # extrapolated stamp
    stats.on_rendered(1_000_000_000, 1_030_000_000)  # 30 ms after capture
    stats.on_rendered(1_100_000_000, 1_050_000_000)  # rendered before its "capture" time
    rendered = stats.summary()["rendered"]
    latency = rendered["latency"]
    assert "all" not in latency, "an unqualified 'all' hides the forecast frames' stamps"
    assert latency["detected"] == pytest.approx(
        {"count": 1, "negative": 0, "mean_ms": 30.0, "p50_ms": 30.0, "p95_ms": 30.0,
         "max_ms": 30.0})
    assert latency["predicted"]["negative"] == 1
    assert latency[ALL_FRAMES]["count"] == 2 and latency[ALL_FRAMES]["negative"] == 1
    assert latency[ALL_FRAMES]["mean_ms"] == pytest.approx(-10.0)
    assert "negative" in rendered["latency_note"] and ALL_FRAMES in rendered["latency_note"]
