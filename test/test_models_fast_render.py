"""Fast inference copies (BatchNorm folded, channels_last, bf16) and multi-stream rendering."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from kp_motion.models import Animator, build_models, fast_render, load_profile
from kp_motion.models.animator import StreamBatch, render_streams
from kp_motion.models.model_config import with_widths

torch.set_num_threads(1)
TOLERANCE = 1e-4


def small_models(seed: int = 5, random_statistics: bool = True, **generator_changes):
    """A small vox-like model with random weights and random BatchNorm statistics, so that
    eval-mode BatchNorm is far from the identity and folding it really changes the weights."""
    config = with_widths(
        load_profile("vox-256"),
        kp_detector={"block_expansion": 8, "max_features": 32, "num_blocks": 3},
        dense_motion={"block_expansion": 8, "max_features": 32, "num_blocks": 3},
        generator={"block_expansion": 8, "max_features": 32, "num_bottleneck_blocks": 2,
                   **generator_changes},
    )  # fmt: skip
    config = dataclasses.replace(config, image_size=(64, 64))
    torch.manual_seed(seed)
    kp_detector, generator = build_models(config)
    with torch.no_grad():
        kp_detector.jacobian.weight.normal_(0.0, 0.01)
        for module in [*kp_detector.modules(), *generator.modules()] * random_statistics:
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.3, 3.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return config, kp_detector.eval(), generator.eval()


def frames(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def render(kp_detector, generator, source, driving, variant=fast_render.PLAIN):
    with torch.no_grad(), fast_render.autocast(variant):
        source = fast_render.as_layout(source, variant)
        kp_driving = kp_detector(fast_render.as_layout(driving, variant))
        cache = generator.encode_source(source, kp_detector(source))
        prediction = generator.render(cache, kp_driving, full_outputs=False)["prediction"]
    return kp_driving, prediction.float()


def test_fold_conv_batchnorm_equals_the_pair():
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(5, 7, 3, padding=1), nn.BatchNorm2d(7).eval()
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.2, 4)
        norm.weight.uniform_(-2, 2)
        norm.bias.uniform_(-1, 1)
    inputs = torch.randn(2, 5, 9, 9)
    with torch.no_grad():
        expected = norm(conv(inputs))
        folded = fast_render.fold_conv_batchnorm(conv, norm)(inputs)
    assert (folded - expected).abs().max() < 1e-5
    assert (expected - conv(inputs)).abs().max() > 0.1  # the norm really did something


@pytest.mark.parametrize("warped_skips", [False, True])
def test_folded_models_equal_the_unfolded(warped_skips):
    _, kp_detector, generator = small_models(warped_skips=warped_skips)
    source, driving = frames(1, 1), frames(3, 2)
    kp_plain, plain = render(kp_detector, generator, source, driving)
    for variant in (fast_render.FOLDED, fast_render.FOLDED_CHANNELS_LAST, fast_render.FAST_FP32):
        fast_detector = fast_render.prepare(kp_detector, variant)
        fast_generator = fast_render.prepare(generator, variant)
        remaining = [m for m in fast_generator.modules() if isinstance(m, nn.BatchNorm2d)]
        # Only the residual blocks' first norms (on a sum, after no convolution) remain.
        assert len(remaining) == len(generator.bottleneck)
        kp_fast, fast = render(fast_detector, fast_generator, source, driving, variant)
        for key in ("value", "jacobian"):
            assert (kp_fast[key] - kp_plain[key]).abs().max() < TOLERANCE, (variant.name, key)
        assert (fast - plain).abs().max() < TOLERANCE, variant.name
    # The originals are untouched (prepare works on copies).
    assert sum(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) > len(remaining)


def test_transposed_upsampling_equals_upsample_then_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 4, 3, padding=1)
    inputs = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        expected = conv(nn.functional.interpolate(inputs, scale_factor=2.0, mode="nearest"))
        transposed = fast_render.transposed_upsampling_conv(conv)(inputs)
    assert transposed.shape == expected.shape
    assert (transposed - expected).abs().max() < 1e-5
    with pytest.raises(ValueError, match="3x3 convolution with padding 1"):
        fast_render.transposed_upsampling_conv(nn.Conv2d(6, 4, 5, padding=2))


@pytest.mark.parametrize("size", [(8, 8), (9, 6), (1, 1), (5, 12)])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_convolution_equals_the_direct_one(size, bias):
    torch.manual_seed(2)
    conv = nn.Conv2d(6, 5, 3, padding=1, bias=bias)
    inputs = torch.randn(2, 6, *size)
    winograd = fast_render.WinogradConv3x3(conv)
    with torch.no_grad():
        expected = conv(inputs)
        assert (winograd(inputs) - expected).abs().max() < 1e-5
        layout = winograd.to(memory_format=torch.channels_last)
        channels_last = inputs.contiguous(memory_format=torch.channels_last)
        assert (layout(channels_last) - expected).abs().max() < 1e-5


@pytest.mark.parametrize(
    "conv",
    [nn.Conv2d(4, 4, 5, padding=2), nn.Conv2d(4, 4, 3, padding=1, stride=2),
     nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 4, 3, padding=1, groups=2),
     nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")],
)  # fmt: skip
def test_winograd_refuses_other_convolutions(conv):
    assert not fast_render.winograd_eligible(conv)
    with pytest.raises(ValueError, match="3x3 convolution with stride 1, padding 1"):
        fast_render.WinogradConv3x3(conv)


def test_winograd_variant_converts_the_residual_blocks_only():
    _, kp_detector, generator = small_models()
    source, driving = frames(1, 1), frames(2, 2)
    _, plain = render(kp_detector, generator, source, driving)
    variant = dataclasses.replace(fast_render.FAST_FP32, name="winograd", winograd=True)
    fast_generator = fast_render.prepare(generator, variant)
    converted = [m for m in fast_generator.modules() if isinstance(m, fast_render.WinogradConv3x3)]
    assert len(converted) == 2 * len(generator.bottleneck)
    assert all(isinstance(block.conv1, fast_render.WinogradConv3x3)
               for block in fast_generator.bottleneck)  # fmt: skip
    _, fast = render(kp_detector, fast_generator, source, driving, variant)
    assert (fast - plain).abs().max() < TOLERANCE
    with pytest.raises(ValueError, match="float32 only"):
        dataclasses.replace(fast_render.BF16, winograd=True)


def test_calibrated_random_models_give_unsaturated_frames():
    """With BatchNorm's default statistics random weights render a flat grey frame, on which
    every path's difference would look tiny; calibrated, the frame spans the output range."""
    from kp_motion.models import random_weights

    _, kp_detector, generator = small_models(seed=3, random_statistics=False)
    source, driving = frames(1, 1), frames(1, 2)

    def prediction():
        with torch.no_grad():
            return generator(source, kp_detector(source), kp_detector(driving))["prediction"]

    flat = prediction().std()
    random_weights.calibrate(kp_detector, generator, frames(4, 3))
    assert not generator.training and not kp_detector.training
    calibrated = prediction().std()
    assert calibrated > 0.1 > flat * 5, (float(flat), float(calibrated))


def test_bf16_variant_renders_close_to_float32():
    """bf16 is not exact; its error is measured by `kp-motion bench`, here only bounded."""
    _, kp_detector, generator = small_models()
    source, driving = frames(1, 1), frames(2, 2)
    _, plain = render(kp_detector, generator, source, driving)
    variant = fast_render.BF16
    fast_generator = fast_render.prepare(generator, variant)
    with torch.no_grad():
        kp_source, kp_driving = kp_detector(source), kp_detector(driving)
        with fast_render.autocast(variant):
            cache = fast_generator.encode_source(fast_render.as_layout(source, variant), kp_source)
            bf16 = fast_generator.render(cache, kp_driving, full_outputs=False)["prediction"]
    assert bf16.dtype == torch.bfloat16
    difference = (bf16.float() - plain).abs().max()
    assert 0 < difference < 0.05


def streams_setup(variant: str = "plain"):
    config, kp_detector, generator = small_models(seed=8)
    animators = []
    for index, mode in enumerate(("relative", "absolute", "relative")):
        animator = Animator(kp_detector, generator, config, mode=mode, variant=variant)
        animator.set_source(frames(1, 10 + index))
        animators.append(animator)
    return config, kp_detector, generator, animators


@pytest.mark.parametrize("variant", ["plain", "fast"])
def test_batched_streams_equal_single_renders(variant):
    _, kp_detector, generator, animators = streams_setup(variant)
    # Stream 1 sends two frames in this call, the others one each.
    driving = [animators[0].detect(frames(1, 20)), animators[1].detect(frames(2, 21)),
               animators[2].detect(frames(1, 22))]  # fmt: skip
    batched = render_streams(animators, driving, full_outputs=True)
    for animator in animators:
        animator.reset_driving()  # the single renders start their relative motion afresh
    for index, (animator, kp) in enumerate(zip(animators, driving, strict=True)):
        single = animator.render(kp, full_outputs=True)
        for name in ("prediction", "deformed", "occlusion_map", "mask"):
            assert batched[index][name].shape == single[name].shape
            difference = (batched[index][name] - single[name]).abs().max()
            assert difference < 1e-5, (index, name, float(difference))
    # Each stream warps its own source (the streams did not get mixed up).
    assert (batched[0]["deformed"] - batched[2]["deformed"]).abs().max() > 0.1


def test_a_stream_batch_batches_the_sources_once_until_one_changes(monkeypatch):
    from kp_motion.models import animator as animator_module

    _, _, _, animators = streams_setup("fast")
    made = []
    original = animator_module.batched_cache
    def counted(caches, counts):
        made.append(counts)
        return original(caches, counts)

    monkeypatch.setattr(animator_module, "batched_cache", counted)
    batch = StreamBatch(animators)
    one_each = [animator.detect(frames(1, 30 + i)) for i, animator in enumerate(animators)]
    first = batch.render(one_each, full_outputs=True)
    second = batch.render(one_each, full_outputs=True)
    assert made == [[1, 1, 1]]  # the second frame reused the sources' batched cache
    for before, after in zip(first, second, strict=True):
        assert torch.equal(before["prediction"], after["prediction"])
    batch.render([one_each[0], torch_cat_frames(one_each[1], one_each[1]), one_each[2]])
    assert made[-1] == [1, 2, 1]  # another number of frames per stream: batched again
    animators[1].set_source(frames(1, 40))  # a new patient on stream 1
    renewed = batch.render(one_each, full_outputs=True)
    assert made[-1] == [1, 1, 1] and len(made) == 3
    animators[1].reset_driving()
    single = animators[1].render(one_each[1], full_outputs=True)
    for name in ("prediction", "deformed"):
        assert (renewed[1][name] - single[name]).abs().max() < TOLERANCE
    # The new source is what stream 1 now warps (its warped source changed).
    assert (renewed[1]["deformed"] - first[1]["deformed"]).abs().max() > 0.1


def torch_cat_frames(*keypoints):
    return {name: torch.cat([kp[name] for kp in keypoints]) for name in ("value", "jacobian")}


def test_batched_streams_refuse_bad_calls():
    config, kp_detector, _, animators = streams_setup()
    kp = animators[0].detect(frames(1, 20))
    with pytest.raises(ValueError, match="one keypoint batch per animator"):
        render_streams(animators, [kp])
    other_generator = build_models(config)[1].eval()
    stranger = Animator(kp_detector, other_generator, config)
    stranger.set_source(frames(1, 3))
    with pytest.raises(ValueError, match="share one generator and variant"):
        render_streams([animators[0], stranger], [kp, kp])
    faster = Animator(kp_detector, animators[0].base_generator, config, variant="fast")
    faster.set_source(frames(1, 3))
    with pytest.raises(ValueError, match="share one generator and variant"):
        render_streams([animators[0], faster], [kp, kp])


def claim_native_bf16(monkeypatch, native: bool) -> None:
    """Make the CPU look as if it had (or lacked) bfloat16 instructions."""
    for name in fast_render._CPU_BF16_CHECKS:
        monkeypatch.setattr(torch.cpu, name, lambda native=native: native, raising=False)


def test_bench_render_section_reports_every_variant(capsys, monkeypatch):
    import importlib.util

    from kp_motion.cli.main import main

    claim_native_bf16(monkeypatch, True)  # at 32 px even emulated bf16 takes no time

    options = ["--profiles", "compact-64", "--size", "32", "--repeats", "1", "--warmup", "0",
               "--streams", "2", "--device", "cpu"]  # fmt: skip
    status = main(["bench", "--only", "render", *options])
    assert status == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("compact")]
    assert all(line.startswith("compact-64 32x32") for line in rows)
    stages = [line.split("  ")[1].strip() for line in rows]
    for variant in fast_render.VARIANTS:
        assert any(stage.startswith(f"render cached, {variant.name} (max diff") for stage in stages)
    with_onnx = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
    assert any("onnxruntime" in stage for stage in stages) == with_onnx
    assert any(stage.startswith("2 streams in one call") for stage in stages)
    for line in rows:
        if "max diff" in line and "bf16" not in line:  # the exact variants stay within 1e-4
            assert float(line.split("max diff ")[1].split(")")[0]) < TOLERANCE, line


def test_bench_does_not_time_bf16_where_the_cpu_would_emulate_it(capsys, monkeypatch):
    from kp_motion.cli.main import main

    claim_native_bf16(monkeypatch, False)
    options = ["--profiles", "compact-64", "--size", "32", "--repeats", "1", "--warmup", "0",
               "--streams", "1", "--device", "cpu"]  # fmt: skip
    assert main(["bench", "--only", "render", *options]) == 0
    captured = capsys.readouterr()
    assert "bf16 variants not timed" in captured.err and "AVX512-BF16 or AMX" in captured.err
    assert "render cached, fp32, folded + channels_last" in captured.out
    assert "bf16" not in captured.out


@pytest.mark.parametrize("native", [True, False])
def test_native_bf16_follows_the_cpu_and_the_animator_warns_without_it(
    native, monkeypatch, caplog
):
    claim_native_bf16(monkeypatch, native)
    assert fast_render.native_bf16("cpu") is native
    assert fast_render.bf16_slowdown(fast_render.FAST_FP32, "cpu") is None
    config, kp_detector, generator = small_models()
    with caplog.at_level("WARNING", logger="kp_motion.models.animator"):
        Animator(kp_detector, generator, config, variant="fast")
        Animator(kp_detector, generator, config, variant="bf16")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ([] if native else [fast_render.bf16_slowdown(fast_render.BF16, "cpu")])
    if not native:
        assert "emulated" in warnings[0]


@pytest.mark.parametrize(
    "variant", [v for v in fast_render.COMPILED_VARIANTS if not v.bf16], ids=lambda v: v.name
)
def test_compiled_render_equals_eager(variant):
    """torch.compile with freezing (optional path; needs inductor's C++ compiler)."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile's CPU backend needs a C++ compiler")
    _, kp_detector, generator = small_models()
    fast_generator = fast_render.prepare(generator, variant)
    source, driving = frames(1, 1), frames(2, 2)
    _, plain = render(kp_detector, generator, source, driving)
    with torch.no_grad():
        kp_driving = kp_detector(driving)
        cache = fast_generator.encode_source(
            fast_render.as_layout(source, variant), kp_detector(source)
        )
        compiled = fast_render.compile_render(fast_generator, cache, kp_driving)
        prediction = compiled(cache, kp_driving)["prediction"]
        # The guard still runs, outside the compiled graph, on the generator's own counter.
        singular = torch.zeros_like(kp_driving["jacobian"])
        broken = {"value": kp_driving["value"], "jacobian": singular}
        assert torch.isfinite(compiled(cache, broken)["prediction"]).all()
    assert (prediction - plain).abs().max() < TOLERANCE
    assert fast_generator.guard.jacobians > 0


def animator_frames(variant, seed: int = 6):
    config, kp_detector, generator = small_models(seed=seed)
    animator = Animator(kp_detector, generator, config, mode="relative", variant=variant)
    animator.set_source(frames(1, 1))
    driving = frames(3, 2)
    # The prepared copies are the animator's own; the models it was given are untouched.
    assert not any(isinstance(m, fast_render.TransposedUpBlock) for m in generator.modules())
    return animator, animator.render(animator.detect(driving))["prediction"]


@pytest.mark.parametrize("name", ["fast", "bf16"])
def test_animator_runs_a_named_variant(name):
    _, plain = animator_frames("plain")
    animator, rendered = animator_frames(name)
    assert animator.variant is fast_render.variant_named(name)
    assert rendered.dtype == torch.float32 and rendered.shape == plain.shape
    assert any(isinstance(m, fast_render.TransposedUpBlock) for m in animator.generator.modules())
    difference = (rendered - plain).abs().max()
    if name == "fast":
        assert difference < TOLERANCE
    else:
        assert 0 < difference < 0.05  # bf16 is lossy; bench measures how much


def test_animator_refuses_an_unknown_variant():
    config, kp_detector, generator = small_models()
    with pytest.raises(ValueError, match="unknown render variant 'turbo'"):
        Animator(kp_detector, generator, config, variant="turbo")


def test_animator_compiles_the_cached_render_at_the_first_frame():
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile's CPU backend needs a C++ compiler")
    _, plain = animator_frames("plain")
    animator, compiled = animator_frames("compiled")
    assert animator._compiled_render is not None
    assert (compiled - plain).abs().max() < TOLERANCE
    # Full outputs (masks, flows) come from the eager path of the same prepared models.
    assert "mask" in animator.render(animator.detect(frames(1, 4)), full_outputs=True)
