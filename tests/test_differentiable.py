"""Differentiable synthesis (models/differentiable.py): the same image as the faithful pass, true gradients."""

import types

import numpy as np
import pytest
import torch

from models import stylegan1, stylegan3
from models.differentiable import differentiable_synthesis, needs_graph
from models.loader import load_generator

# (file, ws key, image key): the reference outputs of the original authors' code.
FIXTURE_CASES = [
    ("sg1_64", "dlatents", "images_psi1"),
    ("sg2ada_64", "ws_seed0_psi1p0", "img_seed0_psi1p0_const"),
    ("sg3_sg2_64", "ws_seed0_psi1p0", "img_seed0_psi1p0_const"),
    ("sg3_t_64", "ws_seed0_psi1p0", "img_seed0_psi1p0_const"),
    ("tf_sg2_64", "ws_seed0_psi1p0", "img_seed0_psi1p0_const"),
]


def fixture_case(fixtures_dir, name, ws_key, img_key):
    G = load_generator(fixtures_dir / f"{name}.pkl")
    ref = np.load(fixtures_dir / f"{name}_ref.npz")
    return G, torch.from_numpy(ref[ws_key][:1]), torch.from_numpy(ref[img_key][:1])


@pytest.mark.parametrize("name, ws_key, img_key", FIXTURE_CASES)
def test_gradient_pass_equals_reference_image(fixtures_dir, name, ws_key, img_key):
    G, ws, expected = fixture_case(fixtures_dir, name, ws_key, img_key)
    ws = ws.clone().requires_grad_(True)
    with torch.enable_grad():
        img = G.synthesis(ws, noise_mode="const")
        (img * torch.linspace(-1, 1, img.numel()).view(img.shape)).sum().backward()
    assert (img.detach() - expected).abs().max() < 1e-4
    assert torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0


@pytest.mark.parametrize("name, ws_key, img_key", FIXTURE_CASES)
def test_context_takes_the_graph_path_and_equals_reference(fixtures_dir, name, ws_key, img_key):
    G, ws, expected = fixture_case(fixtures_dir, name, ws_key, img_key)
    with differentiable_synthesis():
        assert needs_graph() and torch.is_grad_enabled()
        img = G.synthesis(ws, noise_mode="const")
    assert not needs_graph()
    assert (img.detach() - expected).abs().max() < 1e-4


def directional_check(G, ws, seed=0, eps=3e-3):
    """(autograd, central finite difference) of a fixed linear function of the image along a random unit ws direction."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(ws.shape, generator=gen).to(ws.dtype)
    direction /= direction.norm()
    with torch.no_grad():
        probe = torch.randn(G.synthesis(ws, noise_mode="const").shape, generator=gen).to(ws.dtype)

    def loss(w):
        return (G.synthesis(w, noise_mode="const") * probe).sum()

    ws_var = ws.clone().requires_grad_(True)
    with differentiable_synthesis():
        loss(ws_var).backward()
    analytic = float((ws_var.grad * direction).sum())
    with torch.no_grad():
        numeric = float(loss(ws + eps * direction) - loss(ws - eps * direction)) / (2 * eps)
    return analytic, numeric


class _Float64Torch(types.ModuleType):
    """torch, except that its float32 is float64: runs a module that casts to float32 in double."""

    def __getattr__(self, name):
        return torch.float64 if name == "float32" else getattr(torch, name)


def test_stylegan1_gradient_matches_finite_difference_in_double(fixtures_dir, monkeypatch):
    # StyleGAN v1 normalises 4x4 feature maps per instance: the image bends too fast along w
    # for a float32 difference quotient (3e-3 steps are already past the tangent), so double.
    monkeypatch.setattr(stylegan1, "torch", _Float64Torch("torch"))
    G = load_generator(fixtures_dir / "sg1_64.pkl").double()
    ws = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(5)).double(), None)
    analytic, numeric = directional_check(G, ws, eps=1e-7)
    assert abs(analytic - numeric) <= 1e-3 * abs(numeric), (analytic, numeric)


@pytest.mark.parametrize("name", ["sg2ada_64", "sg3_t_64"])
def test_gradient_matches_finite_difference_on_fixture(fixtures_dir, name):
    G = load_generator(fixtures_dir / f"{name}.pkl")
    ws = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(5)), None)
    analytic, numeric = directional_check(G, ws)
    assert abs(analytic - numeric) <= 0.02 * abs(numeric) + 1e-3, (analytic, numeric)


@pytest.mark.parametrize("cfg", ["t", "r"])
def test_gradient_matches_finite_difference_on_tiny_stylegan3(cfg):
    from tests.test_stylegan3 import perturbed, tiny_kwargs

    torch.manual_seed(0)
    G = perturbed(stylegan3.build(tiny_kwargs(cfg)))
    ws = G.mapping(torch.randn([1, G.z_dim]), None)
    with torch.no_grad():
        fast = G.synthesis(ws)
    with differentiable_synthesis():
        graph = G.synthesis(ws)
    assert (graph.detach() - fast).abs().max() < 1e-4
    analytic, numeric = directional_check(G, ws)
    assert abs(analytic - numeric) <= 0.02 * abs(numeric) + 1e-3, (analytic, numeric)


def test_needs_graph_only_for_tensors_autograd_follows():
    plain, tracked = torch.zeros(2), torch.zeros(2, requires_grad=True)
    assert not needs_graph(plain) and needs_graph(plain, tracked)
    with torch.no_grad():
        assert not needs_graph(tracked)
    with differentiable_synthesis():
        with differentiable_synthesis():
            assert needs_graph(plain)
        assert needs_graph(plain)
    assert not needs_graph(plain)


def test_unfused_pass_equals_reference_and_fused_gradient(fixtures_dir, monkeypatch):
    # The projection's pass: unfused modulation, whose fixed 3x3 convolutions run by Winograd both
    # ways (here on every layer, thresholds off): the reference image, the fused pass's gradient.
    from models import winograd

    monkeypatch.setattr(winograd, "MIN_CHANNELS", 0)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 0)
    G, ws, expected = fixture_case(fixtures_dir, "sg2ada_64", "ws_seed0_psi1p0", "img_seed0_psi1p0_const")
    probe = torch.linspace(-1, 1, expected.numel()).view(expected.shape)
    grads, calls = [], []
    monkeypatch.setattr(winograd, "_conv3x3_padded", lambda *a, _f=winograd._conv3x3_padded: calls.append(1) or _f(*a))
    for fused in (True, False):
        ws_var = ws.clone().requires_grad_(True)
        with differentiable_synthesis():
            img = G.synthesis(ws_var, noise_mode="const", fused_modconv=fused)
            (img * probe).sum().backward()
        assert (img.detach() - expected).abs().max() < 1e-4
        grads.append(ws_var.grad)
    assert calls  # the unfused pass took the Winograd convolutions
    assert (grads[0] - grads[1]).abs().max() < 1e-3 * grads[0].abs().max()
