"""GRU forecaster: trained on the next frame with teacher forcing, autoregressive at prediction.

The network sees each frame with its change since the previous one and predicts the next change
(in motion units, see SequenceModel), not the frame itself: an untrained model is hold-last,
and all its capacity goes to the motion. The MSE is measured in motion units too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kp_motion.forecasting.base import SequenceModel
from kp_motion.forecasting.settings import RnnSettings
from kp_motion.keypoints import NUM_VALUES


@dataclass
class RnnState:
    hidden: torch.Tensor  # (num_layers, B, hidden_size)
    last_frame: torch.Tensor | None  # (B, 60) last input; None before the first frame


class RnnForecastModel(SequenceModel):
    kind = "rnn"

    def __init__(self, settings: RnnSettings) -> None:
        super().__init__()
        if settings.hidden_size < 1 or settings.num_layers < 1:
            raise ValueError(f"rnn: hidden_size and num_layers must be >= 1, got {settings}")
        self.settings = settings
        self.gru = nn.GRU(
            (2 if settings.level_inputs else 1) * NUM_VALUES,
            settings.hidden_size,
            settings.num_layers,
            batch_first=True,
        )
        self.head = nn.Linear(settings.hidden_size, NUM_VALUES)
        # Start as hold-last: a zero change until training says otherwise.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def training_loss(self, windows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        inputs, targets = windows[:, :-1], windows[:, 1:]
        # The first frame of a window has no predecessor: its change counts as zero.
        previous = torch.cat([windows[:, :1], windows[:, :-2]], dim=1)
        outputs, _ = self.gru(self.step_inputs(inputs, previous, self.settings.level_inputs))
        predictions = inputs + self.head(outputs) * self.motion_scale
        # Errors in motion units: every dimension counts by how well its motion is predicted,
        # not by how much its pose varies across videos.
        loss = ((predictions - targets) / self.motion_scale).pow(2).mean()
        return loss, {"mse": float(loss.detach())}

    def initial_state(self, batch_size: int) -> RnnState:
        device = self.head.weight.device
        hidden = torch.zeros(
            self.settings.num_layers, batch_size, self.settings.hidden_size, device=device
        )
        return RnnState(hidden, None)

    def observe_step(self, state: RnnState, frame: torch.Tensor) -> RnnState:
        previous = frame if state.last_frame is None else state.last_frame
        features = self.step_inputs(frame, previous, self.settings.level_inputs).unsqueeze(1)
        _, hidden = self.gru(features, state.hidden)
        return RnnState(hidden, frame)

    def propose(self, state: RnnState, sample: bool) -> tuple[torch.Tensor, None]:
        # Deterministic model: `sample` has nothing to draw. Before any frame: the training mean.
        last = state.last_frame
        if last is None:
            last = torch.zeros(state.hidden.shape[1], NUM_VALUES, device=state.hidden.device)
        return last + self.head(state.hidden[-1]) * self.motion_scale, None

    def advance_predicted(self, state: RnnState, frame: torch.Tensor, pending: None) -> RnnState:
        return self.observe_step(state, frame)
