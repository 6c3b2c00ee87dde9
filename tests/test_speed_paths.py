"""The fast StyleGAN2 path gives the reference path's pixels; the block cache gives uncached pixels exactly."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import fast_stylegan2, upfirdn2d
from models.block_cache import BlockCache
from models.errors import RenderCancelled
from models.loader import load_generator
from models.runtime import tune_cpu
from models.stylegan2 import Generator

SG2_FIXTURES = ["sg2ada_64", "sg3_sg2_64", "tf_sg2_64"]


def _max_diff(a, b):
    return float((a.double() - b.double()).abs().max())


def _random_generator(resolution=128, architecture="skip", conv_clamp=256, channel_base=1024, seed=0):
    """A full-depth StyleGAN2 of the given resolution with few channels and trained-looking weights."""
    torch.manual_seed(seed)
    G = Generator(z_dim=32, c_dim=0, w_dim=32, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=channel_base, channel_max=64, architecture=architecture,
                                        conv_clamp=conv_clamp, num_fp16_res=4))
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.3)
            elif name.endswith(".bias") and ".affine." not in name:
                param.normal_(0, 0.2)
    return G.eval().requires_grad_(False)


def _both_paths(G, ws, **kwargs):
    G.set_reference(True)
    reference = G.synthesis(ws, **kwargs)
    G.set_reference(False)
    fast = G.synthesis(ws, **kwargs)
    return reference, fast


# ----------------------------------------------------------------------------
# Fast path == reference path.


@torch.no_grad()
@pytest.mark.parametrize("name", SG2_FIXTURES)
def test_load_generator_defaults_to_fast_path_with_reference_pixels(fixtures_dir, name):
    fast_G = load_generator(fixtures_dir / f"{name}.pkl")
    reference_G = load_generator(fixtures_dir / f"{name}.pkl", reference=True)
    assert all(m.fast for m in fast_G.modules() if hasattr(m, "fast"))
    assert not any(m.fast for m in reference_G.modules() if hasattr(m, "fast"))
    ref = dict(np.load(fixtures_dir / f"{name}_ref.npz"))
    for seed in ref["seeds"]:
        ws = torch.from_numpy(ref[f"ws_seed{seed}_psi0p7"])
        fast = fast_G.synthesis(ws, noise_mode="const")
        assert _max_diff(fast, reference_G.synthesis(ws, noise_mode="const")) < 1e-4
        # and against NVIDIA's own output
        assert _max_diff(fast, torch.from_numpy(ref[f"img_seed{seed}_psi0p7_const"])) < 1e-4


@torch.no_grad()
@pytest.mark.parametrize("architecture,conv_clamp,resolution", [
    ("skip", 256, 256), ("orig", None, 128), ("resnet", 256, 64), ("skip", 0.5, 64)])
def test_fast_path_matches_reference_on_random_networks(architecture, conv_clamp, resolution):
    G = _random_generator(resolution, architecture, conv_clamp)
    ws = G.mapping(torch.randn([1, G.z_dim]), None, truncation_psi=0.8)
    ws = ws + 0.5 * torch.randn_like(ws)  # different w per layer, as style mixing gives
    for kwargs in (dict(noise_mode="const"), dict(noise_mode="none"),
                   dict(noise_mode="const", noise_strength={"b32.conv0": 3.0, "b64.conv1": 0.0})):
        reference, fast = _both_paths(G, ws, **kwargs)
        assert reference.std() > 0.1
        assert _max_diff(reference, fast) < 1e-4, kwargs
    if conv_clamp == 0.5:
        assert float(fast.abs().max()) > 0  # the clamp is engaged at every layer here
    generator = torch.Generator()
    G.set_reference(True)
    reference = G.synthesis(ws, noise_mode="random", noise_generator=generator.manual_seed(3))
    G.set_reference(False)
    fast = G.synthesis(ws, noise_mode="random", noise_generator=generator.manual_seed(3))
    assert _max_diff(reference, fast) < 1e-4


@torch.no_grad()
def test_clamp_is_applied_on_the_fast_path():
    G = _random_generator(64, conv_clamp=0.05)
    G.set_reference(False)
    outputs = {}
    handle = G.synthesis.b32.conv1.register_forward_hook(lambda m, i, o: outputs.setdefault("x", o))
    G.synthesis(G.mapping(torch.randn([1, G.z_dim]), None), noise_mode="const")
    handle.remove()
    assert float(outputs["x"].abs().max()) == pytest.approx(0.05)


@torch.no_grad()
def test_batches_and_autograd_take_the_reference_path():
    G = _random_generator(64)
    ws = G.mapping(torch.randn([3, G.z_dim]), None)
    reference, fast = _both_paths(G, ws, noise_mode="const")
    assert torch.equal(reference, fast)  # batch 3: the very same code ran
    with torch.enable_grad():
        ws1 = ws[:1].clone().requires_grad_(True)
        G.set_reference(False)
        G.synthesis(ws1, noise_mode="const").square().mean().backward()
    assert ws1.grad is not None and float(ws1.grad.abs().sum()) > 0
    with torch.enable_grad():  # autograd on, nothing to differentiate (a script without no_grad): fast path
        G.set_reference(True)
        reference = G.synthesis(ws[:1], noise_mode="const")
        G.set_reference(False)
        fast = G.synthesis(ws[:1], noise_mode="const")
    assert not torch.equal(reference, fast) and _max_diff(reference, fast) < 1e-4


@torch.no_grad()
def test_prepared_weights_follow_a_weight_change():
    G = _random_generator(64)
    other = _random_generator(64, seed=1)
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    G.set_reference(False)
    before = G.synthesis(ws, noise_mode="const")
    G.load_state_dict(other.state_dict())
    after = G.synthesis(ws, noise_mode="const")
    other.set_reference(True)
    assert not torch.allclose(before, after)
    assert _max_diff(after, other.synthesis(ws, noise_mode="const")) < 1e-4


@torch.no_grad()
def test_packed_weights_banded_epilogue_and_plain_convs_give_the_same_pixels(monkeypatch):
    G = _random_generator(128)
    ws = G.mapping(torch.randn([1, G.z_dim]), None, truncation_psi=0.8)
    reference, fast = _both_paths(G, ws, noise_mode="const")
    packed = [table for m in G.modules() for table in [getattr(m.__dict__.get("_fast_prepared"), "values", None)]
              if table and table["packed"]]
    assert packed  # low-resolution layers modulate their input and use packed weights (oneDNN here)
    assert fast.is_contiguous() and _max_diff(reference, fast) < 1e-4
    monkeypatch.setattr(fast_stylegan2, "_BAND_BYTES", 64)  # a band of one row on every layer
    banded = G.synthesis(ws, noise_mode="const")
    monkeypatch.setattr(fast_stylegan2, "_pack", lambda *args: None)  # where oneDNN is not to be had
    G.load_state_dict(G.state_dict())  # drops the prepared tables
    plain = G.synthesis(ws, noise_mode="const")
    assert torch.equal(banded, fast)  # the same arithmetic in bands
    assert _max_diff(plain, fast) < 1e-4


@torch.no_grad()
def test_a_generator_that_ran_the_fast_path_can_be_copied():
    import copy

    G = _random_generator(64)
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    G.set_reference(False)
    image = G.synthesis(ws, noise_mode="const")
    twin = copy.deepcopy(G)  # training copies G to G_ema; packed oneDNN weights cannot be deep-copied
    assert torch.equal(twin.synthesis(ws, noise_mode="const"), image)


@torch.no_grad()
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_fast_path_and_block_cache_on_cuda(monkeypatch):
    # float32 as on the CPU: cuDNN's default TF32 convolutions round both paths to 10-bit
    # mantissas (they then differ by ~1e-2 from float32 and from each other).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    # cuDNN may pick different algorithms from call to call (the plain path itself then varies by
    # ~2e-6): the cache's exact equality holds with deterministic algorithms.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    G = _random_generator(128).cuda()
    ws = G.mapping(torch.randn([1, G.z_dim], device="cuda"), None, truncation_psi=0.8)
    ws = ws + 0.5 * torch.randn_like(ws)
    for kwargs in (dict(noise_mode="const"), dict(noise_mode="none"), dict(force_fp32=False)):
        reference, fast = _both_paths(G, ws, **kwargs)
        assert fast.is_cuda and fast.is_contiguous() and reference.std() > 0.1
        # fp16 blocks run the reference code on both paths; their half-precision rounding
        # amplifies the fp32 blocks' 1e-6 differences to ~1e-2.
        assert _max_diff(reference, fast) < (5e-2 if "force_fp32" in kwargs else 1e-4), kwargs
    G.set_reference(False)
    cache = BlockCache()
    G.synthesis(ws, noise_mode="const", block_cache=cache)
    for strength in (2.0, 0.5):  # a noise drag: the second step skips b128.conv0's convolution
        img = G.synthesis(ws, noise_mode="const", noise_strength={"b128.conv0": strength}, block_cache=cache)
        assert torch.equal(img, G.synthesis(ws, noise_mode="const", noise_strength={"b128.conv0": strength}))
    assert cache.convs_skipped == 1


@torch.no_grad()
@pytest.mark.parametrize("fir,p0,p1", [([1, 3, 3, 1], 1, 1), ([1, 3, 3, 1], 2, 1), ([1, 2, 5, 3, 1], 0, 3)])
@pytest.mark.parametrize("channels", [3, 32, 51])
def test_fused_fir_equals_a_depthwise_convolution(fir, p0, p1, channels):
    from models import cpu_kernels

    f = upfirdn2d.setup_filter(fir)  # 2-D, as NVIDIA's setup_filter makes it for short filters
    f = f * torch.rand(f.shape)  # and one that no sum of separable terms makes (full rank)
    y = torch.randn([1, channels, 21, 17]).contiguous(memory_format=torch.channels_last)
    scale, bias = torch.rand(channels) + 0.5, torch.randn(channels)
    taps = (f.flip([0, 1]) * scale.reshape(-1, 1, 1)).unsqueeze(1)
    expected = F.conv2d(F.pad(y, [p0, p1, p0, p1]), taps, bias=bias, groups=channels)
    out = torch.full(expected.shape, float("nan")).contiguous(memory_format=torch.channels_last)
    cpu_kernels.FirPlan(f.numpy(), p0, p1).run(y[0].permute(1, 2, 0).numpy(), out[0].permute(1, 2, 0).numpy(),
                                               scale.numpy(), bias.numpy())
    assert _max_diff(out, expected) < 1e-5


@torch.no_grad()
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_fused_epilogue_equals_noise_lrelu_clamp(clamp):
    from models import cpu_kernels

    y = torch.randn([1, 40, 9, 13]).contiguous(memory_format=torch.channels_last)
    noise = torch.randn([9, 13])
    expected = F.leaky_relu(y + noise * 1.7, 0.2)
    if clamp is not None:
        expected = expected.clamp(-clamp, clamp)
    rows = y[0].permute(1, 2, 0).reshape(9, -1).numpy()
    assert np.shares_memory(rows, y.numpy())  # in place, through a view
    cpu_kernels.noise_lrelu_clamp(rows, noise.numpy(), 1.7, 0.2, float("inf") if clamp is None else clamp)
    assert _max_diff(y, expected) < 1e-6


@torch.no_grad()
def test_fast_path_without_numba_gives_the_same_pixels(monkeypatch):
    from models import cpu_kernels

    G = _random_generator(64).set_reference(False)
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    calls = []
    monkeypatch.setattr(cpu_kernels, "noise_lrelu_clamp",
                        lambda *a, f=cpu_kernels.noise_lrelu_clamp: calls.append(1) or f(*a))
    fused = G.synthesis(ws, noise_mode="const")
    assert calls  # the small network ran the numba loops (FUSED_MIN_VALUES is 0 in tests)
    monkeypatch.setattr(cpu_kernels, "numba", None)  # as where numba cannot be installed
    plain = G.synthesis(ws, noise_mode="const")
    reference = G.set_reference(True).synthesis(ws, noise_mode="const")
    assert _max_diff(fused, plain) < 1e-5 and _max_diff(fused, reference) < 1e-4


@torch.no_grad()
def test_small_networks_skip_the_numba_loops(monkeypatch):
    # The embedded default model's first frame must not wait for numba to compile.
    from models import cpu_kernels

    from models import winograd

    monkeypatch.setattr(fast_stylegan2, "FUSED_MIN_VALUES", 1 << 20)
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 48)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 64 * 64)
    monkeypatch.setattr(cpu_kernels, "noise_lrelu_clamp", lambda *a: pytest.fail("numba loop on a small network"))
    monkeypatch.setattr(cpu_kernels, "FirPlan", lambda *a: pytest.fail("numba loop on a small network"))
    monkeypatch.setattr(winograd, "conv3x3_rows", lambda *a, **k: pytest.fail("numba loop on a small network"))
    G = _random_generator(64).set_reference(False)
    G.synthesis(G.mapping(torch.randn([1, G.z_dim]), None), noise_mode="const")


@torch.no_grad()
def test_loops_split_over_threads_give_the_same_pixels(monkeypatch):
    # The numba loops (FIR, epilogue, Winograd's transforms) split their rows over torch's thread
    # count; every output value is computed the same way whatever the split.
    G = _random_generator(128, channel_base=4096).set_reference(False)
    ws = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(3)), None)
    one = G.synthesis(ws, noise_mode="const").clone()
    # Three workers for our loops; torch's own kernels stay on one thread (with more, oneDNN's
    # reductions may round differently, which is not what this test is about).
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    three = G.synthesis(ws, noise_mode="const")
    assert torch.equal(one, three)


def test_image_upsampling_equals_upfirdn2d():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    img = torch.randn([1, 3, 16, 16])
    assert _max_diff(fast_stylegan2.upsample_image(img, f), upfirdn2d.upsample2d(img, f)) < 1e-5


# ----------------------------------------------------------------------------
# Block cache: exactly the uncached pixels, recomputing only from the first changed block.


def _cached_and_plain(G, cache, ws, **kwargs):
    cached = G.synthesis(ws, block_cache=cache, **kwargs)
    plain = G.synthesis(ws, **{k: v for k, v in kwargs.items() if k != "noise_generator"},
                        **({"noise_generator": kwargs["noise_generator"].manual_seed(9)}
                           if "noise_generator" in kwargs else {}))
    return cached, plain


@torch.no_grad()
@pytest.mark.parametrize("reference", [False, True])
def test_cached_rerender_equals_uncached_render(reference):
    G = _random_generator(128).set_reference(reference)
    cache = BlockCache()
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    other = G.mapping(torch.randn([1, G.z_dim]), None)
    first = G.synthesis(ws, noise_mode="const", block_cache=cache)
    assert cache.blocks_run == 6 and torch.equal(first, G.synthesis(ws, noise_mode="const"))

    assert torch.equal(G.synthesis(ws, noise_mode="const", block_cache=cache), first)
    assert cache.blocks_run == 0 and cache.images_run == 0

    mixed = ws.clone()
    mixed[:, 8:] = other[:, 8:]  # a fine mixing range: w8 is b64.conv1, so b64 from conv1, then b128
    assert cache.rerun_from(G.synthesis, ws) is None
    assert cache.rerun_from(G.synthesis, mixed) == 64
    img = G.synthesis(mixed, noise_mode="const", block_cache=cache)
    assert (cache.blocks_run, cache.layers_run) == (1, 1)
    assert torch.equal(img, G.synthesis(mixed, noise_mode="const"))

    mixed[:, 7:] = other[:, 7:]  # now w7 too: b32's ToRGB and b64's conv0
    img = G.synthesis(mixed, noise_mode="const", block_cache=cache)
    assert (cache.images_run, cache.blocks_run, cache.layers_run) == (1, 2, 0)
    assert torch.equal(img, G.synthesis(mixed, noise_mode="const"))

    last = mixed.clone()
    last[:, -1] += 1  # the last ToRGB's w only: no convolution reruns
    img = G.synthesis(last, noise_mode="const", block_cache=cache)
    assert (cache.blocks_run, cache.images_run) == (0, 1)
    assert torch.equal(img, G.synthesis(last, noise_mode="const"))

    strength = {"b128.conv1": 2.5}
    img = G.synthesis(last, noise_mode="const", noise_strength=strength, block_cache=cache)
    assert (cache.blocks_run, cache.layers_run) == (0, 1)
    assert torch.equal(img, G.synthesis(last, noise_mode="const", noise_strength=strength))

    img = G.synthesis(last, noise_mode="none", block_cache=cache)
    assert cache.blocks_run == 6 and torch.equal(img, G.synthesis(last, noise_mode="none"))


@torch.no_grad()
def test_cache_with_seeded_random_noise_replays_skipped_draws():
    G = _random_generator(64).set_reference(False)
    cache = BlockCache()
    generator = torch.Generator()
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    G.synthesis(ws, noise_mode="random", noise_generator=generator.manual_seed(9), block_cache=cache)
    strength = {"b64.conv1": 0.25}
    img = G.synthesis(ws, noise_mode="random", noise_strength=strength, noise_generator=generator.manual_seed(9),
                      block_cache=cache)
    assert (cache.blocks_run, cache.layers_run) == (0, 1)
    plain = G.synthesis(ws, noise_mode="random", noise_strength=strength, noise_generator=generator.manual_seed(9))
    assert torch.equal(img, plain)
    # another seed: everything reruns
    G.synthesis(ws, noise_mode="random", noise_generator=generator.manual_seed(10), block_cache=cache)
    assert cache.blocks_run == 5


def _noise_drag(layer, noise_mode):
    """A 128 px network on the fast path, an empty cache, ws, and settings(strength): the synthesis
    settings of one step of a drag of `layer`'s noise strength (random noise seeded the same each time)."""
    G = _random_generator(128).set_reference(False)
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    generator = torch.Generator()

    def settings(strength):
        kwargs = dict(noise_mode=noise_mode, noise_strength={layer: strength})
        if noise_mode == "random":
            kwargs["noise_generator"] = generator.manual_seed(5)
        return kwargs

    return G, BlockCache(), ws, settings


@torch.no_grad()
@pytest.mark.parametrize("layer", ["b64.conv0", "b64.conv1", "b128.conv0"])
@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_noise_drag_skips_the_dragged_layers_convolution_from_its_second_step(layer, noise_mode):
    G, cache, ws, settings = _noise_drag(layer, noise_mode)

    def render(strength, cached=True):
        return G.synthesis(ws, block_cache=cache if cached else None, **settings(strength))

    render(1.0)
    for step, strength in enumerate([1.5, 2.0, 0.0, 2.0]):  # a drag, then back to a value seen before
        img = render(strength)
        assert cache.convs_skipped == (0 if step == 0 else 1), step
        assert torch.equal(img, render(strength, cached=False)), step
    assert cache.pre_noise is not None and cache.nbytes() > 0
    mixed = ws.clone()
    mixed[:, 2] += 1  # an upstream change: the kept pre-noise output no longer applies
    img = G.synthesis(mixed, noise_mode="const", block_cache=cache)
    assert cache.convs_skipped == 0 and torch.equal(img, G.synthesis(mixed, noise_mode="const"))
    cache.clear()
    assert cache.pre_noise is None


@torch.no_grad()
@pytest.mark.parametrize("layer", ["b64.conv0", "b64.conv1", "b128.conv0", "b128.conv1"])
@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_a_prepared_noise_drag_skips_the_convolution_from_its_first_step(layer, noise_mode):
    G, cache, ws, settings = _noise_drag(layer, noise_mode)
    module = G.synthesis.get_submodule(layer)
    # Nothing to prepare from before a pass of these very inputs.
    assert not cache.prepare_noise_drag(G.synthesis, ws, module, **settings(1.0))
    G.synthesis(ws, block_cache=cache, **settings(1.0))
    other = ws.clone()
    other[:, 1] += 1
    assert not cache.prepare_noise_drag(G.synthesis, other, module, **settings(1.0))
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))  # the layer's own forward: not needed
    assert cache.prepare_noise_drag(G.synthesis, ws, module, **settings(1.0))
    assert cache.pre_noise is not None and not calls
    img = G.synthesis(ws, block_cache=cache, **settings(1.7))  # the drag's first step
    assert cache.convs_skipped == 1
    assert torch.equal(img, G.synthesis(ws, **settings(1.7)))
    assert cache.prepare_noise_drag(G.synthesis, ws, module, **settings(1.7))  # kept already
    # The first layer has no noise-free input kept to start from; ToRGB layers have no noise.
    assert not cache.prepare_noise_drag(G.synthesis, ws, G.synthesis.b4.conv1, **settings(1.7))
    assert not cache.prepare_noise_drag(G.synthesis, ws, G.synthesis.b128.torgb, **settings(1.7))
    # Without noise a strength changes nothing: nothing to prepare.
    G.synthesis(ws, block_cache=cache, noise_mode="none")
    assert not cache.prepare_noise_drag(G.synthesis, ws, module, noise_mode="none")


@torch.no_grad()
def test_cancelled_pass_leaves_no_stale_entries():
    G = _random_generator(128).set_reference(False)
    cache = BlockCache()
    a = G.mapping(torch.randn([1, G.z_dim]), None)
    b = a.clone()
    b[:, 3] += 1  # changes b8 onwards
    G.synthesis(a, noise_mode="const", block_cache=cache)
    calls = []

    def stop_at_b32():
        calls.append(1)
        return len(calls) > 3  # b4, b8, b16 run, then stop
    with pytest.raises(RenderCancelled):
        G.synthesis(b, noise_mode="const", block_cache=cache, should_stop=stop_at_b32)
    # b64/b128 entries from pass a must not be reused behind pass b's new b8..b16
    img = G.synthesis(b, noise_mode="const", block_cache=cache)
    assert torch.equal(img, G.synthesis(b, noise_mode="const"))
    img = G.synthesis(a, noise_mode="const", block_cache=cache)
    assert torch.equal(img, G.synthesis(a, noise_mode="const"))


@torch.no_grad()
def test_cache_returns_an_image_the_caller_may_change():
    G = _random_generator(64).set_reference(False)
    cache = BlockCache()
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    img = G.synthesis(ws, noise_mode="const", block_cache=cache)
    expected = img.clone()
    img.mul_(0)
    assert torch.equal(G.synthesis(ws, noise_mode="const", block_cache=cache), expected)
    assert cache.nbytes() > 0
    lean = BlockCache(keep_layer_outputs=False)
    assert torch.equal(G.synthesis(ws, noise_mode="const", block_cache=lean), expected)
    assert lean.nbytes() < cache.nbytes()


def test_cache_is_skipped_for_batches_and_unseeded_random_noise():
    cache = BlockCache()
    assert not cache.applies(torch.zeros([2, 4, 8]), "const", None)
    assert not cache.applies(torch.zeros([1, 4, 8]), "random", None)
    with torch.no_grad():
        assert cache.applies(torch.zeros([1, 4, 8]), "const", None)


def test_tune_cpu_is_safe_to_call_twice():
    first = tune_cpu()
    second = tune_cpu(num_threads=1)
    assert second["threads"] == 1
    assert first.get("malloc") == second.get("malloc")  # applied once


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_reserve_heap_leaves_touched_pages_for_the_next_big_block():
    import resource

    from models.runtime import reserve_heap

    applied = tune_cpu().get("malloc", {})
    if not applied.get("M_MMAP_MAX"):
        assert reserve_heap(64 << 20) is False  # without the tuned heap it would only mmap and unmap
        return
    pages = (48 << 20) // 4096

    def faults_filling_48_mb():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = torch.empty(12 << 20)  # 48 MB
        block.fill_(1.0)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del block
        return faults

    big = torch.empty(600 << 20 >> 2)  # grow the heap past anything freed so far, then keep it busy
    big.fill_(0.0)
    try:
        assert reserve_heap(64 << 20)
        assert faults_filling_48_mb() < pages // 10, "the reserved pages were not reused"
    finally:
        del big
    assert reserve_heap(0) is False


def test_faithful_cuda_turns_tf32_off_only_where_cuda_is(monkeypatch):
    from models.runtime import faithful_cuda

    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert faithful_cuda() is False
    assert (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        assert faithful_cuda() is True
        assert conv.fp32_precision == "ieee" and torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = before


def test_openmp_waits_are_short_unless_the_user_chose():
    # Read by torch's OpenMP runtime when torch loads: the entry points set it first.
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import os; from models import runtime; ok = runtime.short_openmp_waits(); import torch; "
            "print(ok, os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'])")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "10000", "1"]
    env["GOMP_SPINCOUNT"] = "77"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "77", "1"]
    late = "import torch; from models import runtime; print(runtime.short_openmp_waits())"
    out = subprocess.run([sys.executable, "-c", late], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]  # too late to matter, and it says so


def test_install_step_warms_every_loop():
    # What `make` runs after pip: tiny calls of every numba loop, with the argument types real
    # calls pass (a later frame then finds them compiled in the disk cache).
    from models import cpu_kernels, winograd

    cpu_kernels.warm_up()
    winograd.warm_up()
    if cpu_kernels.numba is None:
        return
    # The loops Python calls (the others are compiled into them), one variant each.
    for loop in (cpu_kernels._filtered_lrelu_rows, cpu_kernels._fir_rows, cpu_kernels.noise_lrelu_clamp,
                 winograd._input_tiles, winograd._output_tiles):
        assert len(loop.signatures) == 1, loop
