"""The one inference interface every forecaster (learned or baseline) offers.

A forecaster follows a single stream of raw 60-value frames (kp_motion.keypoints layout; no
standardisation outside, it happens inside):

    observe(frame)            a true frame, the one right after the last observed/predicted one
    predict(n, sample=False)  the next n frames, as a float32 numpy array (n, 60)
    reset()                   forget the stream (a new video / a new stream)

`predict` COMMITS its frames: the state advances through them as if they had been observed, so
the frame after the n-th predicted one is the next to observe. This is what lets a stream
alternate observe M / predict N indefinitely, and resume after a gap: predict the missing
frames (to fill them), then observe the next true frame. A forecaster that has observed nothing
yet predicts from its neutral state (the training mean for learned models, a rest pose for the
baselines).

Every frame that enters (observe) or leaves (predict) goes through a Sanitizer: outputs are
never NaN/Inf and never carry Jacobians more singular than the renderer's guard accepts, and a
corrupt input cannot poison the recurrent state. `corrections` counts every repair.

Learned models plug in through `SequenceModel` (a torch module with step functions and a
training loss) wrapped by `LearnedForecaster`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from kp_motion.forecasting.normalization import Standardizer
from kp_motion.forecasting.sanitize import Sanitizer
from kp_motion.keypoints import NUM_VALUES


def as_frame(frame: Any) -> np.ndarray:
    """A single frame as a float32 (60,) array, or a ValueError naming the problem."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    array = np.asarray(frame, dtype=np.float32)
    if array.shape != (NUM_VALUES,):
        raise ValueError(f"a keypoint frame has shape ({NUM_VALUES},), got {array.shape}")
    return array


class Forecaster(ABC):
    """observe / predict / reset over raw frames; see the module docstring."""

    name: str = "forecaster"
    # model_id of the detector whose keypoints it learned from (set by the checkpoint loader)
    detector_model_id: str | None = None

    def __init__(self) -> None:
        self.sanitizer = Sanitizer()

    @property
    def corrections(self) -> int:
        """Keypoint positions + Jacobians repaired so far (inputs and outputs, across resets)."""
        return self.sanitizer.total

    def observe(self, frame: Any) -> None:
        """Advance the state by one true frame (60 raw values)."""
        self._observe(self.sanitizer(as_frame(frame)))

    def predict(self, n: int, sample: bool = False) -> np.ndarray:
        """The next n frames as float32 (n, 60); the state advances through them.

        sample=False gives the model's mean forecast (deterministic); sample=True draws from
        the model's latent distribution where it has one (VRNN, VAE) and is ignored otherwise.
        """
        if int(n) != n or n < 0:
            raise ValueError(f"number of frames to predict must be a non-negative integer, got {n}")
        frames = np.empty((int(n), NUM_VALUES), dtype=np.float32)
        for step in range(int(n)):
            frames[step] = self._predict_next(sample)
        return frames

    def reset(self) -> None:
        """Forget the stream; the next observed frame starts a new one."""
        self._reset()

    @abstractmethod
    def _observe(self, frame: np.ndarray) -> None:
        """Consume one sanitised true frame."""

    @abstractmethod
    def _predict_next(self, sample: bool) -> np.ndarray:
        """Return the next frame, sanitised, and advance the state through it."""

    @abstractmethod
    def _reset(self) -> None:
        """Clear the stream state."""


class SequenceModel(nn.Module, ABC):
    """What a learned forecaster provides; all tensors are standardised, batch-first.

    Models see a frame together with its change since the previous frame and predict changes
    (scaled by `motion_scale`); an untrained model predicts no change, i.e. hold-last.
    The state is model-specific (an opaque object). Prediction is split in two so that the
    wrapper can sanitise a proposed frame before the model advances through it:
    `propose(state, sample) -> (frame, pending)` then `advance_predicted(state, frame, pending)`.
    """

    kind: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        # Per-dimension RMS of frame-to-frame changes in standardised units (set from the
        # training data, saved with the weights): the unit of the motion features and outputs.
        self.register_buffer("motion_scale", torch.ones(NUM_VALUES))

    def set_motion_scale(self, scale: np.ndarray | torch.Tensor) -> None:
        scale = torch.as_tensor(scale, dtype=torch.float32)
        if scale.shape != (NUM_VALUES,) or not bool((scale > 0).all()):
            raise ValueError(f"motion scale must be ({NUM_VALUES},) and positive")
        self.motion_scale.copy_(scale)

    def motion_features(self, frame: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(..., 120): the frame and its change since `previous`, in motion units."""
        return torch.cat([frame, (frame - previous) / self.motion_scale], dim=-1)

    def step_inputs(
        self, frame: torch.Tensor, previous: torch.Tensor, level_inputs: bool
    ) -> torch.Tensor:
        """What a recurrent model reads per frame: motion_features (..., 120), or only the
        change (..., 60) when level_inputs is off. Levels (where each keypoint sits) identify
        the person: on real faces, models fed them forecast worse on people they were not
        trained on; the change alone is the same for everyone, and the recurrence can still
        sum changes into the displacement since the stream began."""
        if level_inputs:
            return self.motion_features(frame, previous)
        return (frame - previous) / self.motion_scale

    @abstractmethod
    def training_loss(self, windows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss on (B, L, 60) standardised windows, plus named parts for logging."""

    def schedule_loss(self, step: int, kl_warmup_steps: int, free_bits: float) -> None:
        """Called by the trainer before each step; models with a KL term use it (VRNN)."""

    def repeat_state(self, state: Any, copies: int) -> Any:
        """The batch-1 `state` repeated `copies` times along the batch (for sampled rollouts)."""
        raise NotImplementedError(f"{self.kind} cannot repeat its state")

    @abstractmethod
    def initial_state(self, batch_size: int) -> Any:
        """The state before any frame of a stream."""

    @abstractmethod
    def observe_step(self, state: Any, frame: torch.Tensor) -> Any:
        """State after a true (B, 60) frame."""

    @abstractmethod
    def propose(self, state: Any, sample: bool) -> tuple[torch.Tensor, Any]:
        """Forecast of the next (B, 60) frame and whatever advance_predicted needs."""

    @abstractmethod
    def advance_predicted(self, state: Any, frame: torch.Tensor, pending: Any) -> Any:
        """State after the (sanitised) predicted frame."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class LearnedForecaster(Forecaster):
    """Wraps a SequenceModel and its Standardizer in the raw-frame Forecaster interface."""

    def __init__(self, model: SequenceModel, standardizer: Standardizer) -> None:
        super().__init__()
        self.model = model.eval()
        self.standardizer = standardizer
        self.name = model.kind
        self._state = model.initial_state(1)

    def _to_model(self, frame: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(self.standardizer.normalize(frame)).to(self.model.device)
        return tensor.unsqueeze(0)

    def _observe(self, frame: np.ndarray) -> None:
        with torch.inference_mode():
            self._state = self.model.observe_step(self._state, self._to_model(frame))

    def _predict_next(self, sample: bool) -> np.ndarray:
        with torch.inference_mode():
            proposal, pending = self.model.propose(self._state, sample)
            raw = self.standardizer.denormalize(proposal[0].float().cpu().numpy())
            safe = self.sanitizer(raw)
            self._state = self.model.advance_predicted(self._state, self._to_model(safe), pending)
        return safe

    def _reset(self) -> None:
        self._state = self.model.initial_state(1)

    def predict_sample_mean(self, n: int, samples: int) -> np.ndarray:
        """The mean of `samples` sampled rollouts of n frames, as float32 (n, 60).

        Each rollout draws its own latents and feeds its own frames back; the stream then
        advances through the mean frames as if they had been observed (the rollouts disagree
        on latents, so there is no single latent path to commit).
        """
        if int(n) != n or n < 0 or samples < 1:
            raise ValueError(f"need n >= 0 frames and samples >= 1, got {n} and {samples}")
        with torch.inference_mode():
            state = self.model.repeat_state(self._state, samples)
            rollouts = np.empty((int(n), samples, NUM_VALUES), dtype=np.float32)
            for step in range(int(n)):
                proposal, pending = self.model.propose(state, sample=True)
                raw = self.standardizer.denormalize(proposal.float().cpu().numpy())
                rollouts[step] = self.sanitizer(raw)
                state = self.model.advance_predicted(
                    state, torch.from_numpy(self.standardizer.normalize(rollouts[step])), pending
                )
        mean = self.sanitizer(rollouts.mean(axis=1))
        for frame in mean:
            self._observe(frame)
        return mean
