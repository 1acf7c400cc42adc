"""Reports of graph runs: report.json and report.md of one run, or of a run with prediction
compared with one without. ROS-free (the numbers come from the stats node's summary and the
recorder's frames.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kp_motion.ros.graph import GraphOptions
from kp_motion.stream.meters import ALL_FRAMES


@dataclass
class RunResult:
    graph: str
    output_dir: Path
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    wall_s: float = 0.0


def run_summary(result: RunResult, options: GraphOptions) -> dict[str, Any]:
    """The numbers of one run that a report shows."""
    stats = result.stats or {}
    network = stats.get("network", {})
    full = stats.get("keypoints_full", {})
    latency = stats.get("rendered", {}).get("latency", {})
    return {
        "graph": result.graph,
        "options": {k: v for k, v in asdict(options).items() if v is not None},
        "schedule": stats.get("schedule"),
        "frames_captured": len(result.frames.get("captured_stamps_ns", [])),
        "frames_rendered": len(result.frames.get("rendered_stamps_ns", [])),
        "frames_detected": full.get("detected"),
        "frames_predicted": full.get("predicted"),
        "frames_concealed": full.get("concealed"),
        "network_messages": network.get("messages"),
        "network_frames_lost": network.get("frames_lost"),
        "network_bytes_per_second": network.get("bytes_per_second"),
        "network_bytes_per_stream_second": network.get("bytes_per_stream_second"),
        "network_mean_message_bytes": network.get("mean_message_bytes"),
        **_rates_per_captured_second(stats, len(result.frames.get("captured_stamps_ns", []))),
        "latency_ms": latency,
        "exit_codes": result.exit_codes,
        "wall_s": result.wall_s,
    }


def _rates_per_captured_second(stats: dict[str, Any], captured: int) -> dict[str, Any]:
    """Payload and wire bytes per second of the captured video, and the share of captured
    frames sent. The stats node counts seconds of the full-rate stream, which a predictive
    receiver extends past the clip's end when the end marker is lost; the runner knows how
    many frames were captured. Without a capture record the stats node's numbers stay."""
    network = stats.get("network", {})
    keys = ("payload_bytes_per_second", "wire_bytes_per_second", "frames_sent_share")
    if not captured or not stats.get("fps") or "messages" not in network:
        return {key: network.get(key) for key in keys}
    seconds = captured / stats["fps"]
    wire_bytes = network["bytes"] + network["messages"] * network["overhead_bytes_per_message"]
    return {"payload_bytes_per_second": network["bytes"] / seconds,
            "wire_bytes_per_second": wire_bytes / seconds,
            # frames_sent leaves out the end marker (absent from older stats: every message).
            "frames_sent_share": network.get("frames_sent", network["messages"]) / captured}


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _markdown_rows(summary: dict[str, Any]) -> list[str]:
    latency = summary.get("latency_ms", {})
    detected = latency.get("detected", {})
    every = latency.get(ALL_FRAMES, {})
    return [
        f"| frames captured / rendered | {summary['frames_captured']} / "
        f"{summary['frames_rendered']} |",
        f"| frames detected / predicted / concealed | {_number(summary['frames_detected'])} / "
        f"{_number(summary['frames_predicted'])} / {_number(summary['frames_concealed'])} |",
        f"| network messages (frames lost) | {_number(summary['network_messages'])} "
        f"({_number(summary['network_frames_lost'])}) |",
        f"| network bytes/s (wall clock) | {_number(summary['network_bytes_per_second'])} |",
        f"| network bytes per second of video | "
        f"{_number(summary['network_bytes_per_stream_second'])} |",
        f"| mean message size (bytes) | {_number(summary['network_mean_message_bytes'])} |",
        f"| payload bytes per second of captured video | "
        f"{_number(summary['payload_bytes_per_second'])} |",
        f"| wire bytes per second of captured video (payload + transport overhead per message) "
        f"| {_number(summary['wire_bytes_per_second'])} |",
        f"| share of captured frames sent | {_number(summary['frames_sent_share'], 3)} |",
        f"| latency, detected frames: mean / p95 (ms) | {_number(detected.get('mean_ms'))} / "
        f"{_number(detected.get('p95_ms'))} |",
        f"| latency, all frames incl. forecast ones (extrapolated stamps, "
        f"{_number(every.get('negative'))} negative): mean / p95 (ms) | "
        f"{_number(every.get('mean_ms'))} / "
        f"{_number(every.get('p95_ms'))} |",
    ]


def _policy_line(options: GraphOptions, schedule: dict[str, Any]) -> str:
    """What the sender transmitted and how, as the report's first line."""
    from kp_motion.graph_config.options import OPTIONS_BY_NAME
    from kp_motion.names import PREDICTIVE

    def chosen(name: str) -> Any:
        value = getattr(options, name)
        return OPTIONS_BY_NAME[name].config_default() if value is None else value

    forecaster = f"forecaster {chosen('forecaster')}"
    wire = f"wire {chosen('wire')}"
    if chosen("policy") == PREDICTIVE:
        return (f"Policy predictive: a frame is sent when the receiver's forecast of it is off by "
                f"more than {chosen('threshold')} (mean squared), and every "
                f"{chosen('max_gap')}-th frame; {forecaster}; {wire}.")
    return (f"Schedule: m={schedule.get('m')} transmitted, n={schedule.get('n')} withheld per "
            f"cycle; {forecaster}; {wire}.")


def write_report(result: RunResult, options: GraphOptions, output_dir: Path) -> dict[str, Any]:
    summary = run_summary(result, options)
    (output_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    schedule = summary.get("schedule") or {}
    lines = [
        f"# kp_motion {result.graph} graph",
        "",
        _policy_line(options, schedule),
        "",
        "| | |",
        "|---|---|",
        *_markdown_rows(summary),
        "",
        "Latency is the rendered frame's arrival at the stats node minus its header stamp (the "
        "capture time for detected frames; forecast frames carry an extrapolated stamp).",
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines))
    return summary


def _side_by_side(first: dict[str, Any], second: dict[str, Any], first_label: str,
                  second_label: str) -> list[str]:
    """The report rows of two runs as one Markdown table, a column per run."""
    table = [f"| | {first_label} | {second_label} |", "|---|---|---|"]
    for row_first, row_second in zip(_markdown_rows(first), _markdown_rows(second),
                                     strict=True):
        label, value_first = row_first.strip("|").split("|", 1)
        _, value_second = row_second.strip("|").split("|", 1)
        table.append(f"|{label}|{value_first.strip()} |{value_second.strip()} |")
    return table


def write_policy_comparison(fixed: dict[str, Any], predictive: dict[str, Any],
                            output_dir: Path) -> dict[str, Any]:
    """report.json / report.md: the same clip with the fixed schedule and with predictive
    transmission, side by side."""
    def ratio(key: str) -> float | None:
        a, b = predictive.get(key), fixed.get(key)
        return a / b if a and b else None

    comparison = {"fixed": fixed, "predictive": predictive,
                  "payload_bytes_per_second_ratio": ratio("payload_bytes_per_second"),
                  "wire_bytes_per_second_ratio": ratio("wire_bytes_per_second")}
    (output_dir / "report.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
    options = {name: fixed["options"].get(name) for name in ("forecaster", "wire")}
    predictive_options = predictive["options"]
    lines = [
        f"# kp_motion {fixed['graph']} graph: fixed schedule and predictive transmission",
        "",
        f"fixed: the m/n schedule over wire {options['wire'] or 'float32 (default)'}; "
        f"predictive: threshold {predictive_options.get('threshold', 'default')}, max_gap "
        f"{predictive_options.get('max_gap', 'default')}, over wire "
        f"{predictive_options.get('wire')} (config/nodes.yaml holds the defaults).",
        "",
        *_side_by_side(fixed, predictive, "fixed", "predictive"),
        "",
        f"Payload / wire bytes per second of video, predictive / fixed: "
        f"{_number(comparison['payload_bytes_per_second_ratio'], 3)} / "
        f"{_number(comparison['wire_bytes_per_second_ratio'], 3)}. The sender's end marker "
        "(one more message, counted in the bytes but not as a frame sent) stops the predictive "
        "receiver at the last captured frame; without it (a lost last frame) the receiver "
        "forecasts up to 2 x max_gap further frames. The rates per second of video here are "
        "over the captured frames. Predictive frames whose message came after the receiver's "
        "wait budget are shown forecast (predicted, or concealed after a late refresh).",
        "",
        "Videos: rendered.mp4 and overlay.mp4 of each run (predictive/ holds the second).",
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines))
    return comparison


def write_comparison(with_prediction: dict[str, Any], without: dict[str, Any],
                     output_dir: Path) -> dict[str, Any]:
    """report.json / report.md comparing a run with prediction to one that sends every frame."""
    def ratio(key: str) -> float | None:
        a, b = with_prediction.get(key), without.get(key)
        return a / b if a and b else None

    comparison = {
        "with_prediction": with_prediction,
        "without_prediction": without,
        "bytes_per_second_ratio": ratio("network_bytes_per_second"),
        "bytes_per_stream_second_ratio": ratio("network_bytes_per_stream_second"),
    }
    (output_dir / "report.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
    schedule = with_prediction.get("schedule") or {}
    table = _side_by_side(with_prediction, without, "with prediction", "without prediction")
    lines = [
        f"# kp_motion {with_prediction['graph']} graph: with and without prediction",
        "",
        f"With prediction the sender transmits m={schedule.get('m')} of every "
        f"m+n={_sum_schedule(schedule)} frames and the receiver forecasts the rest; without "
        "prediction it transmits every frame (n=0).",
        "",
        *table,
        "",
        f"Network bytes/s with / without prediction: "
        f"{_number(comparison['bytes_per_second_ratio'], 3)} (wall clock), "
        f"{_number(comparison['bytes_per_stream_second_ratio'], 3)} (per second of video).",
        "",
        "Videos: rendered.mp4 (the animated source) and overlay.mp4 (driving keypoints; border "
        "green = detected, amber = predicted, red = concealed), from the run with prediction.",
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines))
    return comparison


def _sum_schedule(schedule: dict[str, Any]) -> str:
    m, n = schedule.get("m"), schedule.get("n")
    return str(m + n) if isinstance(m, int) and isinstance(n, int) else "?"
