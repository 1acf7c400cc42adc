"""The block protocol of the method: per video, observe k true frames, predict the next k,
advance by 2k, until fewer than 2k frames remain.

    frames   0 .. k-1 | k .. 2k-1 | 2k .. 3k-1 | 3k .. 4k-1 | ...
             observe  | predict   | observe    | predict    |

The method resets the forecaster before every block (reset_per_block=True): each block's
forecast starts from the state after its own k true frames. With reset_per_block=False the state
carries on: the predicted frames are committed (see base.py), so the next block's true frames
continue the same stream. Errors are keypoint-space MSE on raw values (all 60, and positions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kp_motion.data.keypoint_sequences import KeypointSequence
from kp_motion.forecasting.base import Forecaster
from kp_motion.keypoints import NUM_VALUES, POSITION_VALUES


def block_indices(num_frames: int, k: int) -> list[tuple[range, range]]:
    """[(observed rows, predicted rows), ...] for a sequence of num_frames frames."""
    if k < 1:
        raise ValueError(f"block size k must be >= 1, got {k}")
    if num_frames < 0:
        raise ValueError(f"number of frames must be >= 0, got {num_frames}")
    return [
        (range(start, start + k), range(start + k, start + 2 * k))
        for start in range(0, num_frames - 2 * k + 1, 2 * k)
    ]


def block_windows(runs: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(N, 2k, 60): the observed + predicted frames of every block of every run, in order.

    With a reset before each block (the method's protocol) blocks are independent, so a model
    can score them all as one batch (see forecasting/train.py's checkpoint selection).
    """
    windows = [
        run[observed.start : predicted.stop]
        for run in runs
        for observed, predicted in block_indices(len(run), k)
    ]
    if not windows:
        return np.empty((0, 2 * k, NUM_VALUES), dtype=np.float32)
    return np.stack(windows).astype(np.float32)


@dataclass
class ProtocolResult:
    """Every predicted slot of one sequence, in order."""

    rows: np.ndarray  # (N,) int64 rows of the sequence that were predicted
    frame_indices: np.ndarray  # (N,) int64 video frame numbers of those rows
    lags: np.ndarray  # (N,) 1..k: how far past the last observed frame
    predicted: np.ndarray  # (N, 60) forecast values
    targets: np.ndarray  # (N, 60) true values

    def squared_errors(self) -> np.ndarray:
        return (self.predicted.astype(np.float64) - self.targets) ** 2


def run_protocol(
    forecaster: Forecaster,
    values: np.ndarray,
    k: int,
    reset_per_block: bool = True,
    sample: bool = False,
    frame_indices: np.ndarray | None = None,
) -> ProtocolResult:
    """Run the block protocol on one contiguous sequence of raw (T, 60) frames."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != NUM_VALUES:
        raise ValueError(f"expected (T, {NUM_VALUES}) values, got shape {values.shape}")
    frame_indices = np.arange(len(values)) if frame_indices is None else np.asarray(frame_indices)
    if frame_indices.shape != (len(values),):
        raise ValueError(f"frame_indices must have shape ({len(values)},)")
    blocks = block_indices(len(values), k)
    forecaster.reset()
    predictions = []
    for observed, _ in blocks:
        if reset_per_block:
            forecaster.reset()
        for row in observed:
            forecaster.observe(values[row])
        predictions.append(forecaster.predict(k, sample=sample))
    rows = np.array([row for _, predicted in blocks for row in predicted], dtype=np.int64)
    return ProtocolResult(
        rows=rows,
        frame_indices=frame_indices[rows].astype(np.int64),
        lags=np.tile(np.arange(1, k + 1, dtype=np.int64), len(blocks)),
        predicted=np.concatenate(predictions) if predictions else np.empty((0, NUM_VALUES)),
        targets=values[rows],
    )


@dataclass
class ProtocolScore:
    mse: float  # over all 60 values of every predicted frame
    position_mse: float  # over the 20 position values only
    frames: int  # predicted frames scored


def contiguous_runs(sequences: Sequence[KeypointSequence | np.ndarray]) -> list[np.ndarray]:
    """Arrays of consecutive frames: KeypointSequences are split at frame-index gaps."""
    runs: list[np.ndarray] = []
    for sequence in sequences:
        if isinstance(sequence, KeypointSequence):
            runs.extend(sequence.segments())
        else:
            runs.append(np.asarray(sequence, dtype=np.float32))
    return runs


def protocol_mse(
    forecaster: Forecaster,
    sequences: Sequence[KeypointSequence | np.ndarray],
    k: int,
    reset_per_block: bool = True,
    sample: bool = False,
) -> ProtocolScore:
    """Keypoint-space MSE of `forecaster` over every predicted slot of every sequence."""
    errors = [
        run_protocol(forecaster, run, k, reset_per_block, sample).squared_errors()
        for run in contiguous_runs(sequences)
    ]
    errors = [error for error in errors if len(error)]
    if not errors:
        raise ValueError(f"no sequence is long enough for one block of k={k} (needs {2 * k})")
    stacked = np.concatenate(errors)
    return ProtocolScore(
        mse=float(stacked.mean()),
        position_mse=float(stacked[:, :POSITION_VALUES].mean()),
        frames=len(stacked),
    )


def compare_forecasters(
    forecasters: Mapping[str, Forecaster],
    sequences: Sequence[KeypointSequence | np.ndarray],
    block_sizes: Sequence[int],
    reset_per_block: bool = True,
) -> list[dict[str, float | int | str]]:
    """One row per (forecaster, k): name, k, mse, position_mse, frames."""
    rows = []
    for k in block_sizes:
        for name, forecaster in forecasters.items():
            score = protocol_mse(forecaster, sequences, k, reset_per_block)
            rows.append(
                {
                    "model": name,
                    "k": k,
                    "mse": score.mse,
                    "position_mse": score.position_mse,
                    "frames": score.frames,
                }
            )
    return rows


def format_table(rows: Sequence[Mapping[str, float | int | str]]) -> str:
    """Plain-text table of compare_forecasters rows."""
    lines = [f"{'model':<18} {'k':>3} {'mse':>11} {'position_mse':>13} {'frames':>7}"]
    for row in rows:
        lines.append(
            f"{row['model']:<18} {row['k']:>3} {row['mse']:>11.3e} "
            f"{row['position_mse']:>13.3e} {row['frames']:>7}"
        )
    return "\n".join(lines)
