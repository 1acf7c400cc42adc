"""Inception-I3D (Carreira & Zisserman 2017, "Quo Vadis, Action Recognition?") for FVD features.

The network is the Inception-v1 backbone inflated to 3-D. Parameter names follow the widely
used PyTorch port's state dict (e.g. `Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_mean`,
`logits.conv3d.bias`), so a Kinetics-400 RGB checkpoint saved from that port loads here with a
strict key and shape check. No weights ship with kp_motion: the user gives the file.

Convolutions and max-pools use TensorFlow "SAME" padding (the original model was trained in
TensorFlow): output size ceil(in / stride), total padding max((out - 1) * stride + kernel - in, 0),
the smaller half in front.

Features for FVD (`I3DFeatureExtractor`): clips (B, T, 3, H, W) in [0, 1] are resized to 224 x 224
and scaled to [-1, 1] as the Kinetics model expects. Two feature kinds are offered:
  - "logits" (default, 400-d): the Kinetics-400 class logits averaged over time; this is the
    feature of the original FVD (Unterthiner et al. 2018, which uses the I3D logits).
  - "pre_logits" (1024-d): the spatio-temporally averaged Mixed_5c activations.
The final average pool uses a (2, h, w) window with stride 1 like the reference model (at 224 px
the last feature map is 7 x 7); at other input sizes the window adapts to the feature map so small
test inputs work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kp_motion.state_dicts import compare_state_dict

KINETICS_CLASSES = 400
FEATURE_KINDS = ("logits", "pre_logits")
I3D_INPUT_SIZE = 224
BN_EPS = 1e-3
BN_MOMENTUM = 0.01

Triple = tuple[int, int, int]


def _same_padding(sizes: Sequence[int], kernel: Triple, stride: Triple) -> list[int]:
    """F.pad argument (last dimension first) for TensorFlow SAME padding of (T, H, W)."""
    pads: list[int] = []
    for size, k, s in zip(sizes, kernel, stride, strict=True):
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        pads.append(total // 2)
        pads.append(total - total // 2)
    # F.pad lists the last dimension first: (w_front, w_back, h_front, h_back, t_front, t_back).
    return pads[4:6] + pads[2:4] + pads[0:2]


class SamePadMaxPool3d(nn.Module):
    """3-D max-pool with TensorFlow SAME padding (zero padding: inputs are post-ReLU, >= 0)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + optional BatchNorm + optional ReLU; parameter names conv3d / bn."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        batch_norm: bool = True,
        relu: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=bias)
        self.bn = (
            nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM) if batch_norm else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3 | pool->1x1.

    `widths` = (b0, b1a, b1b, b2a, b2b, b3b) output channels, as in the Inception-v1 tables.
    """

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, kernel=(3, 3, 3))
        self.b3a = SamePadMaxPool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.b0(x),
            self.b1b(self.b1a(x)),
            self.b2b(self.b2a(x)),
            self.b3b(self.b3a(x)),
        ]
        return torch.cat(branches, dim=1)


# (name, in_channels, branch widths) of the Inception blocks, from the Inception-v1 paper.
_INCEPTION_BLOCKS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
PRE_LOGITS_CHANNELS = 1024


class InceptionI3d(nn.Module):
    """The RGB Inception-I3D; forward returns pre-logit features and time-averaged logits."""

    def __init__(self, num_classes: int = KINETICS_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        # Stem: attribute names are the state-dict prefixes of the reference port.
        self.Conv3d_1a_7x7 = Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = SamePadMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = SamePadMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_3b"])
        self.Mixed_3c = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = SamePadMaxPool3d((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_4b"])
        self.Mixed_4c = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_4c"])
        self.Mixed_4d = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_4d"])
        self.Mixed_4e = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_4e"])
        self.Mixed_4f = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_4f"])
        self.MaxPool3d_5a_2x2 = SamePadMaxPool3d((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_5b"])
        self.Mixed_5c = InceptionBlock(*_INCEPTION_BLOCKS["Mixed_5c"])
        self.logits = Unit3D(
            PRE_LOGITS_CHANNELS, num_classes, batch_norm=False, relu=False, bias=True
        )
        self._backbone = [
            self.Conv3d_1a_7x7, self.MaxPool3d_2a_3x3, self.Conv3d_2b_1x1, self.Conv3d_2c_3x3,
            self.MaxPool3d_3a_3x3, self.Mixed_3b, self.Mixed_3c, self.MaxPool3d_4a_3x3,
            self.Mixed_4b, self.Mixed_4c, self.Mixed_4d, self.Mixed_4e, self.Mixed_4f,
            self.MaxPool3d_5a_2x2, self.Mixed_5b, self.Mixed_5c,
        ]  # fmt: skip

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, T, H, W) in [-1, 1] -> {"pre_logits": (B, 1024), "logits": (B, classes)}."""
        if clips.dim() != 5 or clips.shape[1] != 3:
            raise ValueError(f"I3D expects (B, 3, T, H, W) RGB clips, got {tuple(clips.shape)}")
        x = clips
        for layer in self._backbone:
            x = layer(x)
        # Reference head: average over a (2, 7, 7) window, stride 1 (7 x 7 at 224 px input).
        window = (min(2, x.shape[2]), x.shape[3], x.shape[4])
        pooled = F.avg_pool3d(x, window, stride=1)  # (B, 1024, T', 1, 1)
        logits = self.logits(pooled)  # dropout of the reference is a no-op in eval mode
        return {
            "pre_logits": pooled.mean(dim=(2, 3, 4)),
            "logits": logits.mean(dim=(2, 3, 4)),
        }


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state dict, {"state_dict": ...}, and DataParallel "module." prefixes."""
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    is_tensor_map = isinstance(loaded, dict) and all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    )
    if not is_tensor_map:
        raise ValueError(f"{path}: not an I3D state dict (expected a mapping of names to tensors)")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key[len("module.") :]: value for key, value in loaded.items()}
    return loaded


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict key and shape comparison with a readable error listing what differs.

    `num_batches_tracked` buffers may be absent: checkpoints saved by old PyTorch versions have
    none, and they do not affect inference.
    """
    diff = compare_state_dict(model.state_dict(), state)
    mismatched = [f"{key} {got} != {want}" for key, got, want in diff.mismatched]
    problems = []
    for label, items in (("missing", diff.missing), ("unexpected", diff.unexpected),
                         ("shape", mismatched)):
        if items:
            shown = ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise ValueError(f"{source}: does not match Inception-I3D RGB ({'; '.join(problems)})")


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> InceptionI3d:
    """Load Kinetics-400 RGB I3D weights (a PyTorch state dict file) into an eval-mode model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"I3D weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or non-tensor files
        raise ValueError(f"{path}: cannot be read as PyTorch weights ({error})") from None
    state = _unwrap_state_dict(loaded, path)
    logits_weight = state.get("logits.conv3d.weight")
    num_classes = int(logits_weight.shape[0]) if logits_weight is not None else KINETICS_CLASSES
    if num_classes != KINETICS_CLASSES:
        raise ValueError(
            f"{path}: has {num_classes} output classes; FVD needs the Kinetics-400 I3D "
            f"({KINETICS_CLASSES} classes)"
        )
    model = InceptionI3d(num_classes)
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=False)  # strictness was checked above, with clear errors
    return model.to(device).eval()


class I3DFeatureExtractor:
    """Clips in [0, 1] -> I3D features for the Fréchet distance."""

    def __init__(
        self,
        model: InceptionI3d,
        feature: str = "logits",
        input_size: int = I3D_INPUT_SIZE,
        batch_size: int = 4,
    ) -> None:
        if feature not in FEATURE_KINDS:
            raise ValueError(f"unknown I3D feature {feature!r}; choose one of {FEATURE_KINDS}")
        self.model = model.eval()
        self.feature = feature
        self.input_size = input_size
        self.batch_size = batch_size
        self.device = next(model.parameters()).device

    def preprocess(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> (B, 3, T, S, S) in [-1, 1], S = input_size."""
        if clips.dim() != 5 or clips.shape[2] != 3:
            raise ValueError(f"expected (B, T, 3, H, W) clips, got {tuple(clips.shape)}")
        batch, frames = clips.shape[:2]
        flat = clips.reshape(batch * frames, *clips.shape[2:]).float()
        resized = F.interpolate(
            flat, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
        )
        scaled = resized.clamp(0.0, 1.0) * 2.0 - 1.0
        return scaled.reshape(batch, frames, 3, self.input_size, self.input_size).transpose(1, 2)

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) in [0, 1] -> (N, D) float64 features."""
        features = []
        for start in range(0, clips.shape[0], self.batch_size):
            batch = self.preprocess(clips[start : start + self.batch_size]).to(self.device)
            features.append(self.model(batch)[self.feature].double().cpu())
        return torch.cat(features)
