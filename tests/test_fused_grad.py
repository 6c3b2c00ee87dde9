"""models/fused_grad.py: the hand-written backwards against autograd, and the layers against the reference pass."""

import pytest
import torch

from models import fused_grad, stylegan2
from models.differentiable import differentiable_synthesis

LAYOUTS = (torch.contiguous_format, torch.channels_last)


def small(shape, layout, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("threads", (1, 2))
def test_style_scale_gradcheck(layout, threads, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # the loops split their rows this way
    x = small([2, 5, 3, 4], layout, 0).requires_grad_(True)
    s = small([2, 5], torch.contiguous_format, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(fused_grad.style_scale, (x, s))
    y = fused_grad.style_scale(x, s)
    assert torch.equal(y, x * s[:, :, None, None])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("noise_shape", (None, [3, 4], [2, 1, 3, 4]))
@pytest.mark.parametrize("slope, clamp", ((0.2, 0.9), (0.2, None), (1.0, 0.5), (0.0, None)))
def test_epilogue_gradcheck_and_values(layout, noise_shape, slope, clamp, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    x = small([2, 5, 3, 4], layout, 2).requires_grad_(True)
    d = small([2, 5], torch.contiguous_format, 3).abs().add(0.5).requires_grad_(True)
    noise = None if noise_shape is None else small(noise_shape, torch.contiguous_format, 4) * 0.3
    bias = small([5], torch.contiguous_format, 5) * 0.2
    gain = 1.4

    def autograd_way(x, d):  # what ops.modulated_conv2d + ops.bias_act record for the same layer
        z = x * d[:, :, None, None] + (0 if noise is None else noise) + bias[None, :, None, None]
        z = torch.nn.functional.leaky_relu(z * gain, slope)
        return z if clamp is None else z.clamp(-clamp, clamp)

    def fused_way(x, d):
        return fused_grad.epilogue(x, d, noise, bias, gain=gain, slope=slope, clamp=clamp)

    expected = autograd_way(x, d)
    if clamp is not None:
        assert (expected.abs() == clamp).any()  # the clamp's zero gradient is exercised
    assert (fused_way(x, d) - expected).abs().max() < 1e-12
    assert torch.autograd.gradcheck(fused_way, (x, d))
    probe = small(expected.shape, torch.contiguous_format, 6)
    grads = [torch.autograd.grad((f(x, d) * probe).sum(), (x, d)) for f in (autograd_way, fused_way)]
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-12


def tiny_generator(architecture):
    torch.manual_seed(0)
    G = stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                            mapping_kwargs=dict(num_layers=2),
                            synthesis_kwargs=dict(channel_base=64, channel_max=8, num_fp16_res=0, conv_clamp=2,
                                                  architecture=architecture))
    for name, buffer in G.named_buffers():
        if name.endswith("noise_const"):
            buffer.normal_()
    for layer in G.modules():
        if isinstance(layer, stylegan2.SynthesisLayer):
            layer.noise_strength.data.fill_(0.3)
            layer.bias.data.normal_(0, 0.3)
    return G.double().eval().requires_grad_(False)


def recorded_and_fused(monkeypatch, run):
    """run() with the fused layers, then with autograd recording the reference ops; [(outputs, grads)] both."""
    monkeypatch.setattr(fused_grad, "MIN_ELEMENTS", 0)  # every layer of the tiny networks
    calls, results = [], []
    real_layer, real_torgb = fused_grad.synthesis_layer, fused_grad.torgb
    monkeypatch.setattr(fused_grad, "synthesis_layer", lambda *a, **k: calls.append("layer") or real_layer(*a, **k))
    monkeypatch.setattr(fused_grad, "torgb", lambda *a, **k: calls.append("torgb") or real_torgb(*a, **k))
    results.append(run())
    assert calls
    monkeypatch.setattr(fused_grad, "applies", lambda *a: False)
    monkeypatch.setattr(fused_grad, "torgb_applies", lambda *a: False)
    count = len(calls)
    results.append(run())
    assert len(calls) == count
    return results


@pytest.mark.parametrize("block, name", (("b4", "conv1"), ("b8", "conv0"), ("b16", "conv1"), ("b16", "torgb")))
def test_layers_equal_the_recorded_ops_in_double(block, name, monkeypatch):
    # One layer in float64 (the blocks compute in float32): output and both gradients of the op-by-op pass.
    G = tiny_generator("skip")
    layer = getattr(getattr(G.synthesis, block), name)
    res = G.synthesis.block_resolutions[G.synthesis.block_resolutions.index(int(block[1:]))]
    size = res // 2 if getattr(layer, "up", 1) == 2 else res
    x0 = small([1, layer.in_channels, size, size], torch.channels_last, 7)
    w0 = small([1, G.w_dim], torch.contiguous_format, 8)

    def run():
        x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        with differentiable_synthesis():
            if name == "torgb":
                y = layer(x, w, fused_modconv=False)
            else:
                y = layer(x, w, noise_mode="const", fused_modconv=False, gain=0.7)
            probe = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view(y.shape)
            (y * probe).sum().backward()
        return y.detach(), x.grad, w.grad

    fused, recorded = recorded_and_fused(monkeypatch, run)
    for a, b in zip(fused, recorded):
        assert a.dtype == torch.float64
        assert (a - b).abs().max() < 1e-12 * max(1, b.abs().max())


@pytest.mark.parametrize("architecture", ("skip", "resnet", "orig"))
def test_synthesis_equals_the_recorded_pass(architecture, monkeypatch):
    # The whole unfused synthesis (float32): the frame's image, the recorded pass's ws gradient.
    G = tiny_generator(architecture).float()
    ws = torch.randn([1, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(1))

    def run():
        w = ws.clone().requires_grad_(True)
        with differentiable_synthesis():
            img = G.synthesis(w, noise_mode="const", fused_modconv=False)
            (img * torch.linspace(-1, 1, img.numel()).view(img.shape)).sum().backward()
        return img.detach(), w.grad

    (img_a, grad_a), (img_b, grad_b) = recorded_and_fused(monkeypatch, run)
    with torch.no_grad():
        frame = G.synthesis(ws, noise_mode="const")
    assert (img_a - frame).abs().max() < 1e-5
    assert (img_a - img_b).abs().max() < 1e-5
    assert (grad_a - grad_b).abs().max() < 1e-5 * grad_b.abs().max()


def test_layers_stay_out_where_weights_want_gradients(monkeypatch):
    # Fine-tuning (weights requiring grad) keeps autograd's own recording: no gradient is dropped.
    monkeypatch.setattr(fused_grad, "MIN_ELEMENTS", 0)
    G = tiny_generator("skip")
    G.synthesis.b16.conv1.weight.requires_grad_(True)
    ws = torch.zeros([1, G.num_ws, G.w_dim], dtype=torch.float64, requires_grad=True)
    with differentiable_synthesis():
        G.synthesis(ws, noise_mode="const", fused_modconv=False).sum().backward()
    assert G.synthesis.b16.conv1.weight.grad is not None
