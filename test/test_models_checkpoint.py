"""Checkpoints: project round trip, model id, and the FOMM reference state-dict layout."""

from __future__ import annotations

import pytest
import torch
from model_helpers import NARROW_WIDTHS, tiny_model_config

from kp_motion.models import (
    build_models,
    load_model,
    load_profile,
    load_reference_checkpoint,
    model_id,
    save_checkpoint,
)
from kp_motion.models.checkpoint import read_checkpoint_meta
from kp_motion.models.model_config import with_widths

torch.set_num_threads(1)

CONV = ("conv.weight", "conv.bias")
NORM = ("norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
        "norm.num_batches_tracked")  # fmt: skip


def hourglass_keys(prefix: str, num_blocks: int) -> set[str]:
    """Keys of the reference Hourglass: encoder.down_blocks.i / decoder.up_blocks.i."""
    keys = set()
    for index in range(num_blocks):
        for part in CONV + NORM:
            keys.add(f"{prefix}encoder.down_blocks.{index}.{part}")
            keys.add(f"{prefix}decoder.up_blocks.{index}.{part}")
    return keys


def reference_detector_keys() -> set[str]:
    keys = hourglass_keys("predictor.", 5)
    return keys | {"kp.weight", "kp.bias", "jacobian.weight", "jacobian.bias", "down.weight"}


def reference_generator_keys() -> set[str]:
    dense = "dense_motion_network."
    keys = hourglass_keys(dense + "hourglass.", 5)
    keys |= {dense + name for name in ("mask.weight", "mask.bias", "occlusion.weight",
                                       "occlusion.bias", "down.weight")}  # fmt: skip
    keys |= {f"first.{part}" for part in CONV + NORM}
    for index in range(2):
        keys |= {f"down_blocks.{index}.{part}" for part in CONV + NORM}
        keys |= {f"up_blocks.{index}.{part}" for part in CONV + NORM}
    for index in range(6):
        for layer in ("conv1", "conv2"):
            keys |= {f"bottleneck.r{index}.{layer}.weight", f"bottleneck.r{index}.{layer}.bias"}
        for layer in ("norm1", "norm2"):
            norm_parts = [part.replace("norm.", f"{layer}.") for part in NORM]
            keys |= {f"bottleneck.r{index}.{part}" for part in norm_parts}
    return keys | {"final.weight", "final.bias"}


# Shapes implied by the reference vox-256 configuration (channels 32 * 2^i capped at 1024 in
# the detector, 64 * 2^i capped at 1024/512 in dense motion/generator, (10 + 1) * (3 + 1) = 44
# dense-motion input channels, hourglass outputs 32 + 3 = 35 and 64 + 44 = 108 channels).
VOX_DETECTOR_SHAPES = {
    "predictor.encoder.down_blocks.0.conv.weight": (64, 3, 3, 3),
    "predictor.encoder.down_blocks.4.conv.weight": (1024, 512, 3, 3),
    "predictor.decoder.up_blocks.0.conv.weight": (512, 1024, 3, 3),
    "predictor.decoder.up_blocks.4.conv.weight": (32, 128, 3, 3),
    "kp.weight": (10, 35, 7, 7),
    "jacobian.weight": (40, 35, 7, 7),
    "jacobian.bias": (40,),
    "down.weight": (3, 1, 13, 13),
}
VOX_GENERATOR_SHAPES = {
    "dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight": (128, 44, 3, 3),
    "dense_motion_network.hourglass.decoder.up_blocks.0.conv.weight": (1024, 1024, 3, 3),
    "dense_motion_network.hourglass.decoder.up_blocks.4.conv.weight": (64, 256, 3, 3),
    "dense_motion_network.mask.weight": (11, 108, 7, 7),
    "dense_motion_network.occlusion.weight": (1, 108, 7, 7),
    "dense_motion_network.down.weight": (3, 1, 13, 13),
    "first.conv.weight": (64, 3, 7, 7),
    "down_blocks.1.conv.weight": (256, 128, 3, 3),
    "up_blocks.0.conv.weight": (128, 256, 3, 3),
    "up_blocks.1.conv.weight": (64, 128, 3, 3),
    "bottleneck.r5.conv2.weight": (256, 256, 3, 3),
    "final.weight": (3, 64, 7, 7),
}


@pytest.fixture(scope="module")
def full_vox_state():
    kp_detector, generator = build_models(load_profile("vox-256"))
    return kp_detector.state_dict(), generator.state_dict()


def test_vox_layout_matches_reference_names_and_shapes(full_vox_state):
    detector_state, generator_state = full_vox_state
    assert set(detector_state) == reference_detector_keys()
    assert set(generator_state) == reference_generator_keys()
    for key, shape in VOX_DETECTOR_SHAPES.items():
        assert tuple(detector_state[key].shape) == shape, key
    for key, shape in VOX_GENERATOR_SHAPES.items():
        assert tuple(generator_state[key].shape) == shape, key
    assert sum(v.numel() for k, v in detector_state.items() if "running" not in k) > 14_000_000


def test_mgif_layout_has_single_jacobian_map():
    kp_detector, generator = build_models(load_profile("mgif-256"))
    detector_state = kp_detector.state_dict()
    assert set(detector_state) == reference_detector_keys()
    assert set(generator.state_dict()) == reference_generator_keys()
    assert tuple(detector_state["jacobian.weight"].shape) == (4, 35, 7, 7)
    assert torch.equal(detector_state["jacobian.bias"], torch.tensor([1.0, 0.0, 0.0, 1.0]))


def tiny(profile: str):
    """A reference profile at tiny widths: same key names, small tensors."""
    return tiny_model_config(profile, size=None, widths=NARROW_WIDTHS, name=profile)


def save_reference_file(path, kp_detector, generator, drop_batch_counters=False):
    """A file in the reference .pth.tar layout (with the extras the authors' files hold)."""
    states = {"kp_detector": kp_detector.state_dict(), "generator": generator.state_dict()}
    if drop_batch_counters:  # checkpoints from old PyTorch versions lack them
        states = {
            part: {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
            for part, state in states.items()
        }
    optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    torch.save({**states, "epoch": 99, "optimizer_generator": optimizer.state_dict()}, path)


def randomise_batch_norm(module: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial running statistics, so that loading them matters."""
    generator = torch.Generator().manual_seed(seed)
    for child in module.modules():
        if isinstance(child, torch.nn.BatchNorm2d):
            child.running_mean.copy_(torch.randn(child.num_features, generator=generator) * 0.1)
            child.running_var.copy_(torch.rand(child.num_features, generator=generator) + 0.5)


@pytest.mark.parametrize("profile", ["vox-256", "mgif-256"])
@pytest.mark.parametrize("drop_batch_counters", [False, True])
def test_reference_checkpoint_loads_strictly(tmp_path, profile, drop_batch_counters):
    config = tiny(profile)
    torch.manual_seed(7)
    kp_detector, generator = build_models(config)
    randomise_batch_norm(kp_detector, 1)
    randomise_batch_norm(generator, 2)
    path = tmp_path / f"{profile}.pth.tar"
    save_reference_file(path, kp_detector, generator, drop_batch_counters)
    _, loaded_detector, loaded_generator = load_reference_checkpoint(path, config)
    assert not loaded_detector.training and not loaded_generator.training
    frames = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        expected_kp = kp_detector.eval()(frames)
        loaded_kp = loaded_detector(frames)
        assert torch.equal(expected_kp["value"], loaded_kp["value"])
        assert torch.equal(expected_kp["jacobian"], loaded_kp["jacobian"])


def test_wrong_profile_is_refused_with_shape_mismatch(tmp_path):
    kp_detector, generator = build_models(tiny("vox-256"))
    path = tmp_path / "vox.pth.tar"
    save_reference_file(path, kp_detector, generator)
    with pytest.raises(ValueError, match=r"shape mismatches \(2\): jacobian.weight"):
        load_reference_checkpoint(path, tiny("mgif-256"))


def test_renamed_keys_are_listed_as_missing_and_unexpected(tmp_path):
    kp_detector, generator = build_models(tiny("vox-256"))
    state = kp_detector.state_dict()
    state["kp_head.weight"] = state.pop("kp.weight")
    path = tmp_path / "renamed.pth.tar"
    torch.save({"kp_detector": state, "generator": generator.state_dict()}, path)
    with pytest.raises(ValueError) as error:
        load_reference_checkpoint(path, tiny("vox-256"))
    message = str(error.value)
    assert "missing keys (1): kp.weight" in message
    assert "unexpected keys (1): kp_head.weight" in message


def test_reference_file_problems_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_reference_checkpoint(tmp_path / "absent.pth.tar", "vox-256")
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint|weights_only"):
        load_reference_checkpoint(broken, "vox-256")
    no_generator = tmp_path / "detector_only.pth.tar"
    torch.save({"kp_detector": {}}, no_generator)
    with pytest.raises(ValueError, match="no 'generator' state dict"):
        load_reference_checkpoint(no_generator, "vox-256")
    with pytest.raises(FileNotFoundError, match="unknown profile"):
        load_reference_checkpoint(no_generator, "vox-1024")


class NotATensor:
    """Any class instance in a pickle: weights_only loading must refuse to build it."""


def test_pickled_objects_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "object.pth.tar"
    torch.save({"kp_detector": NotATensor(), "generator": {}}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_reference_checkpoint(path, "vox-256")


@pytest.fixture(scope="module")
def compact():
    config = load_profile("compact-64")
    torch.manual_seed(8)
    kp_detector, generator = build_models(config)
    randomise_batch_norm(kp_detector, 3)
    randomise_batch_norm(generator, 4)
    return config, kp_detector.eval(), generator.eval()


def test_project_checkpoint_round_trip(tmp_path, compact):
    config, kp_detector, generator = compact
    folder = save_checkpoint(tmp_path / "model", config, kp_detector, generator, {"steps": 12})
    assert (folder / "model.yaml").is_file() and (folder / "weights.safetensors").is_file()
    loaded_config, loaded_detector, loaded_generator = load_model(folder)
    assert loaded_config == config
    assert not loaded_detector.training and not loaded_generator.training
    frames = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        kp_source, kp_driving = kp_detector(frames), kp_detector(frames.flip(0))
        loaded_source = loaded_detector(frames)
        assert torch.equal(kp_source["value"], loaded_source["value"])
        expected = generator(frames, kp_source, kp_driving)["prediction"]
        actual = loaded_generator(frames, kp_source, kp_driving)["prediction"]
    assert torch.equal(expected, actual)
    meta = read_checkpoint_meta(folder / "weights.safetensors")
    assert meta["extra_meta"] == {"steps": 12}
    assert meta["model_id"] == model_id(loaded_config, loaded_detector)


def test_model_id_follows_detector_weights_and_settings(compact):
    config, kp_detector, generator = compact
    original = model_id(config, kp_detector)
    assert len(original) == 16 and int(original, 16) >= 0
    assert model_id(config, kp_detector) == original
    changed_generator_config = with_widths(config, generator={"num_bottleneck_blocks": 1})
    assert model_id(changed_generator_config, kp_detector) == original
    assert model_id(with_widths(config, kp_detector={"temperature": 0.2}), kp_detector) != original
    other_detector, _ = build_models(config)
    with torch.no_grad():
        other_detector.load_state_dict(kp_detector.state_dict())
        other_detector.kp.bias[0] += 1e-3
    assert model_id(config, other_detector) != original


def test_project_checkpoint_errors(tmp_path, compact):
    config, kp_detector, generator = compact
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.yaml is missing"):
        load_model(tmp_path / "empty")
    folder = save_checkpoint(tmp_path / "model", config, kp_detector, generator)
    # Weights of one profile with the settings of another: refused, not partially loaded.
    other = with_widths(config, generator={"num_bottleneck_blocks": 2})
    from kp_motion import config as config_io

    config_io.save(other, folder / "model.yaml")
    with pytest.raises(ValueError, match=r"unexpected keys \(14\): bottleneck.r2"):
        load_model(folder)
    (folder / "weights.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(folder)
