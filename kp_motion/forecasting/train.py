"""Training loop for the learned forecasters, kept small enough to read in one go.

    statistics  <- training frames (per-dimension mean/std, std floored)
    repeat `steps` times:
        batch   <- random windows of `window_length` consecutive frames, standardised,
                   a share `time_flip` of them played backwards
        loss    <- model.training_loss(batch)     (the whole window, state never detached)
                   + closed_loop_weight * closed_loop_loss(batch, k)   (k drawn per step)
        Adam step after clipping the global gradient norm
        every `eval_interval` steps: loss on fixed validation windows, and the block protocol
        (observe k, predict k) on every block of the validation sequences; a new best by
        `select_by` is written to the checkpoint folder at once; `patience` validations
        without a new best stop early

Why the protocol picks the checkpoint by default: the loss is one-step-ahead (teacher-forced
for the RNN, an ELBO for the VRNN), while the models are used free-running for k frames. The
two disagree: a VRNN chosen by its validation ELBO (best at step 700 of 3000) lost to
hold-last at k = 12 on the embedded detector's keypoints.

Randomness (window draws, latent noise, initial weights) follows `seed`; validation windows
and their latent noise are fixed, so validation losses are comparable across steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from kp_motion.data.keypoint_sequences import KeypointSequence
from kp_motion.forecasting.base import SequenceModel
from kp_motion.forecasting.checkpoint import build_model, save_checkpoint
from kp_motion.forecasting.normalization import Standardizer, motion_scale
from kp_motion.forecasting.protocol import block_windows, contiguous_runs
from kp_motion.forecasting.settings import ForecasterSettings, TrainSettings

# Smallest motion unit (standardised units): keeps dimensions that never move finite.
MOTION_SCALE_FLOOR = 1e-3

# Checkpoint selection: train.select_by -> the history entry it minimises.
SELECTION_SCORES = {"protocol": "val_protocol_mse", "loss": "val_loss"}


@dataclass
class TrainResult:
    kind: str
    checkpoint: Path
    selected_by: str  # a key of SELECTION_SCORES
    best_score: float  # the selection score of the kept checkpoint
    best_step: int
    steps_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def split_sequences(
    sequences: Sequence[KeypointSequence], val_fraction: float, seed: int
) -> tuple[list[KeypointSequence], list[KeypointSequence]]:
    """Hold out round(val_fraction * count) sequences (at least 1) for validation.

    With a single sequence nothing can be held out: validation then uses the training data
    (returned as the same list), which the caller should report.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    sequences = list(sequences)
    if len(sequences) < 2 or val_fraction == 0:
        return sequences, sequences
    order = np.random.default_rng(seed).permutation(len(sequences))
    held_out = min(max(1, round(val_fraction * len(sequences))), len(sequences) - 1)
    val = [sequences[i] for i in sorted(order[:held_out])]
    train = [sequences[i] for i in sorted(order[held_out:])]
    return train, val


def long_enough(runs: Sequence[np.ndarray], length: int) -> list[np.ndarray]:
    return [run for run in runs if len(run) >= length]


def sample_windows(
    rng: np.random.Generator, runs: Sequence[np.ndarray], batch_size: int, length: int
) -> np.ndarray:
    """(batch_size, length, 60) windows, uniform over all window positions of all runs."""
    starts_per_run = np.array([len(run) - length + 1 for run in runs])
    run_choice = rng.choice(len(runs), size=batch_size, p=starts_per_run / starts_per_run.sum())
    starts = rng.integers(0, starts_per_run[run_choice])
    return np.stack([runs[r][s : s + length] for r, s in zip(run_choice, starts, strict=True)])


def time_flip(rng: np.random.Generator, windows: np.ndarray, probability: float) -> np.ndarray:
    """Windows with a random share (`probability`) played backwards.

    Played backwards, the motion of a walking, waving or reaching body is as plausible as
    forwards, and the models see twice as many distinct trajectories; without it they
    overfitted the 180 training videos within a few hundred steps.
    """
    flipped = rng.random(len(windows)) < probability
    windows = windows.copy()
    windows[flipped] = windows[flipped, ::-1]
    return windows


def _validation_loss(
    model: SequenceModel, windows: torch.Tensor, seed: int, batch_size: int
) -> float:
    """Mean training loss over fixed windows, with fixed latent noise (comparable over steps)."""
    model.eval()
    devices = [windows.device] if windows.device.type == "cuda" else []
    total, count = 0.0, 0
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            loss, _ = model.training_loss(chunk)
            total += float(loss) * len(chunk)
            count += len(chunk)
    model.train()
    return total / count


def protocol_blocks(
    val_runs: Sequence[np.ndarray], block_sizes: Sequence[int], device: torch.device
) -> dict[int, torch.Tensor]:
    """k -> (N, 2k, 60) raw validation blocks, for every k that fits some validation run."""
    blocks = {}
    for k in block_sizes:
        windows = block_windows(val_runs, k)
        if len(windows):
            blocks[k] = torch.from_numpy(windows).to(device)
    return blocks


def batched_protocol_mse(
    model: SequenceModel, standardizer: Standardizer, blocks: torch.Tensor
) -> float:
    """Keypoint MSE (raw units) of the mean forecast over (N, 2k, 60) raw blocks, one batch.

    The same numbers as protocol.protocol_mse with a reset per block, except that the
    streaming wrapper's sanitiser (which repairs degenerate Jacobians) is not applied.
    """
    k = blocks.shape[1] // 2
    observed = standardizer.normalize(blocks[:, :k])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        state = model.initial_state(len(blocks))
        for step in range(k):
            state = model.observe_step(state, observed[:, step])
        forecast = []
        for _ in range(k):
            frame, pending = model.propose(state, sample=False)
            state = model.advance_predicted(state, frame, pending)
            forecast.append(frame)
        predicted = standardizer.denormalize(torch.stack(forecast, dim=1))
    model.train(was_training)
    return float(((predicted.double() - blocks[:, k:].double()) ** 2).mean())


def protocol_scores(
    model: SequenceModel, standardizer: Standardizer, blocks: dict[int, torch.Tensor]
) -> dict[str, float]:
    """{"val_mse_k<k>": ..., "val_protocol_mse": geometric mean over k}.

    The geometric mean gives every horizon the same weight in relative terms; an arithmetic
    mean would be decided by the longest k, whose errors are several times larger.
    """
    per_k = {
        f"val_mse_k{k}": batched_protocol_mse(model, standardizer, windows)
        for k, windows in blocks.items()
    }
    if not per_k:
        return {}
    log_mean = np.mean(np.log(np.maximum(list(per_k.values()), 1e-30)))
    return {**per_k, "val_protocol_mse": float(np.exp(log_mean))}


def closed_loop_loss(model: SequenceModel, windows: torch.Tensor, k: int) -> torch.Tensor:
    """MSE (motion units) of the model's mean forecast run like the evaluation: along each
    (B, L, 60) standardised window, observe k true frames, predict k with its own outputs fed
    back, observe the next k true frames (state carried), ... Gradients flow through the fed-back
    predictions, so the model learns to live with its own errors (and, for the VRNN, the prior's
    mean learns to forecast)."""
    length = windows.shape[1]
    if length < 2 * k:
        raise ValueError(f"closed-loop loss: {length}-frame windows are shorter than 2k={2 * k}")
    state = model.initial_state(windows.shape[0])
    errors = []
    for start in range(0, length - 2 * k + 1, 2 * k):
        for t in range(start, start + k):
            state = model.observe_step(state, windows[:, t])
        for t in range(start + k, start + 2 * k):
            frame, pending = model.propose(state, sample=False)
            errors.append(((frame - windows[:, t]) / model.motion_scale).pow(2).mean())
            state = model.advance_predicted(state, frame, pending)
    return torch.stack(errors).mean()


def _check_train_settings(train: TrainSettings) -> None:
    positive = ("steps", "batch_size", "eval_interval", "eval_windows")
    for name in positive:
        if getattr(train, name) < 1:
            raise ValueError(f"train.{name} must be >= 1, got {getattr(train, name)}")
    if train.window_length < 2:
        raise ValueError(f"train.window_length must be >= 2, got {train.window_length}")
    if train.learning_rate <= 0 or train.grad_clip <= 0:
        raise ValueError("train.learning_rate and train.grad_clip must be positive")
    if not 0 <= train.time_flip <= 1:
        raise ValueError(f"train.time_flip is a probability in [0, 1], got {train.time_flip}")
    if train.kl_warmup_steps < 0 or train.free_bits < 0 or train.closed_loop_weight < 0:
        raise ValueError("train.kl_warmup_steps, free_bits and closed_loop_weight must be >= 0")
    if train.closed_loop_weight > 0:
        if not train.closed_loop_k or min(train.closed_loop_k) < 1:
            raise ValueError(f"train.closed_loop_k must list k >= 1, got {train.closed_loop_k}")
        if 2 * max(train.closed_loop_k) > train.window_length:
            raise ValueError(
                f"train.window_length {train.window_length} is shorter than 2 x the largest "
                f"closed_loop_k {max(train.closed_loop_k)}"
            )
    if train.select_by not in SELECTION_SCORES:
        raise ValueError(
            f"train.select_by must be one of {tuple(SELECTION_SCORES)}, got {train.select_by!r}"
        )


def train_forecaster(
    kind: str,
    train_sequences: Sequence[KeypointSequence | np.ndarray],
    val_sequences: Sequence[KeypointSequence | np.ndarray],
    settings: ForecasterSettings,
    out_dir: str | Path,
    progress: bool = True,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a `kind` forecaster; the best checkpoint (by `train.select_by`) ends up in out_dir.

    `record` (e.g. the detector's model_id) is stored in the checkpoint's training record.
    """
    config = settings.train
    _check_train_settings(config)
    length = config.window_length
    train_runs = long_enough(contiguous_runs(train_sequences), length)
    val_runs = long_enough(contiguous_runs(val_sequences), length)
    if not train_runs:
        raise ValueError(f"no training sequence has window_length={length} consecutive frames")
    if not val_runs:
        raise ValueError(f"no validation sequence has window_length={length} consecutive frames")

    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    standardizer = Standardizer.fit(train_runs, config.std_floor)
    train_runs = [standardizer.normalize(run) for run in train_runs]
    val_windows = sample_windows(
        np.random.default_rng(config.seed + 1),
        [standardizer.normalize(run) for run in val_runs],
        config.eval_windows,
        length,
    )
    val_windows = torch.from_numpy(val_windows).to(device)
    val_blocks = protocol_blocks(val_runs, settings.evaluation.block_sizes, device)
    if config.select_by == "protocol" and not val_blocks:
        raise ValueError(
            "train.select_by is 'protocol' but no validation sequence has the 2k consecutive "
            f"frames of any block size k in evaluation.block_sizes "
            f"{list(settings.evaluation.block_sizes)}; use select_by 'loss' or longer sequences"
        )
    score_key = SELECTION_SCORES[config.select_by]

    model = build_model(kind, settings.model_settings(kind))
    model.set_motion_scale(motion_scale(train_runs, MOTION_SCALE_FLOOR))
    model = model.to(device).train()
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    training_record: dict[str, Any] = {
        **(record or {}),
        "seed": config.seed,
        "batch_size": config.batch_size,
        "window_length": length,
        "learning_rate": config.learning_rate,
        "time_flip": config.time_flip,
        "grad_clip": config.grad_clip,
        "kl_warmup_steps": config.kl_warmup_steps,
        "free_bits": config.free_bits,
        "closed_loop_weight": config.closed_loop_weight,
        "closed_loop_k": list(config.closed_loop_k),
        "selected_by": score_key,
        "train_frames": int(sum(len(run) for run in train_runs)),
        "val_frames": int(sum(len(run) for run in val_runs)),
    }
    result = TrainResult(kind, Path(out_dir), config.select_by, math.inf, -1, 0, 0.0)
    validations_without_gain = 0
    started = time.perf_counter()
    bar = tqdm(range(1, config.steps + 1), desc=f"train {kind}", disable=not progress)
    for step in bar:
        windows = sample_windows(rng, train_runs, config.batch_size, length)
        if config.time_flip > 0:
            windows = time_flip(rng, windows, config.time_flip)
        batch = torch.from_numpy(windows).to(device)
        model.schedule_loss(step, config.kl_warmup_steps, config.free_bits)
        loss, parts = model.training_loss(batch)
        if config.closed_loop_weight > 0:
            k = int(rng.choice(config.closed_loop_k))
            closed_loop = closed_loop_loss(model, batch, k)
            loss = loss + config.closed_loop_weight * closed_loop
            parts = {**parts, "closed_loop": float(closed_loop.detach())}
        if not torch.isfinite(loss):
            raise ValueError(f"{kind}: training loss became {float(loss)} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        result.steps_run = step

        if step % config.eval_interval == 0 or step == config.steps:
            entry = {
                "step": step,
                "train_loss": float(loss.detach()),
                "val_loss": _validation_loss(model, val_windows, config.seed, config.batch_size),
                **protocol_scores(model, standardizer, val_blocks),
            }
            result.history.append(entry)
            bar.set_postfix(loss=f"{entry['train_loss']:.4f}", val=f"{entry[score_key]:.4g}")
            if entry[score_key] < result.best_score:
                result.best_score, result.best_step = entry[score_key], step
                validations_without_gain = 0
                record = {**training_record, **entry, **parts}
                save_checkpoint(out_dir, model, standardizer, record)
            else:
                validations_without_gain += 1
                if config.patience and validations_without_gain >= config.patience:
                    break
    bar.close()
    result.seconds = time.perf_counter() - started
    return result
