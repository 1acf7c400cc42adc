"""Strict comparison of a state dict with a model's, shared by every weights loader (project
and reference FOMM checkpoints, VGG19, I3D): nothing is ever loaded partially, and each loader
words its own error from the differences found here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

# BatchNorm's batch counters: absent from checkpoints of old PyTorch versions, and they do not
# change any output.
OPTIONAL_SUFFIX = "num_batches_tracked"


@dataclass
class StateDictDiff:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    # (key, shape in the state dict, shape in the model)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)


def compare_state_dict(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> StateDictDiff:
    """What differs between a model's state dict (`expected`) and a loaded one, in model order."""
    return StateDictDiff(
        missing=[k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)],
        unexpected=[k for k in state if k not in expected],
        mismatched=[
            (k, tuple(state[k].shape), tuple(expected[k].shape))
            for k in expected
            if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
        ],
    )
