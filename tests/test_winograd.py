"""Winograd F(4x4, 3x3) convolutions: the transforms' identity, exact, and the convolution against float64."""

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import winograd


def correlate(d, g):
    return [sum(d[i + k] * g[k] for k in range(len(g))) for i in range(len(d) - len(g) + 1)]


@pytest.mark.parametrize("m, points", [(4, winograd.POINTS), (2, (0, 1, -1)), (4, (0, 1, -1, 2, -2)),
                                       (3, (0, 1, -1, Fraction(1, 2)))])
def test_transforms_compute_correlation_exactly(m, points):
    a_t, g, b_t = winograd.transforms(m, 3, points)
    assert a_t.shape == (m, m + 2) and g.shape == (m + 2, 3) and b_t.shape == (m + 2, m + 2)
    rng = np.random.default_rng(m)
    for _ in range(5):
        d = [Fraction(int(v)) for v in rng.integers(-9, 10, m + 2)]
        f = [Fraction(int(v)) for v in rng.integers(-9, 10, 3)]
        product = (g @ np.array(f, dtype=object)) * (b_t @ np.array(d, dtype=object))
        assert list(a_t @ product) == correlate(d, f)


def test_transforms_refuse_repeated_points():
    with pytest.raises(ValueError):
        winograd.transforms(4, 3, (0, 1, 1, 2, -2))


def reference_rows(x, weight, row_offset, out_rows, pad_w):
    """float64: output row o reads input rows row_offset + o + (0, 1, 2), zero outside."""
    in_h = x.shape[0]
    pad_top = max(0, -row_offset)
    pad_bottom = max(0, row_offset + out_rows + 2 - in_h)
    xt = torch.from_numpy(x).double().permute(2, 0, 1)[None]
    xt = F.pad(xt, [pad_w, pad_w, pad_top, pad_bottom])
    first = row_offset + pad_top
    y = F.conv2d(xt[:, :, first:first + out_rows + 2], weight.double())
    return y[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("seed", range(16))
def test_convolution_equals_float64_on_random_cases(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    in_h, in_w = (int(v) for v in rng.integers(1, 30, 2))
    in_channels, out_channels = (int(v) for v in rng.integers(1, 40, 2))
    pad_w = int(rng.integers(0, 3))
    if in_w + 2 * pad_w < 3:
        pad_w = 2
    row_offset = int(rng.integers(-3, in_h))
    out_rows = int(rng.integers(1, 25))
    if seed % 2:  # many bands of one tile row, as at 1024 px
        monkeypatch.setattr(winograd, "MIN_BAND_TILES", 1)
        monkeypatch.setattr(winograd, "BAND_VALUES", 1)
    x = (rng.standard_normal([in_h, in_w, in_channels]) * 3).astype(np.float32)
    weight = torch.from_numpy(rng.standard_normal([out_channels, in_channels, 3, 3]).astype(np.float32))
    weight /= 3 * in_channels ** 0.5  # demodulated weights: outputs of the inputs' magnitude
    scale = bias = None
    expected = reference_rows(x, weight, row_offset, out_rows, pad_w)
    if seed % 3 == 0:  # StyleGAN2's demodulation and bias, applied as the outputs are written
        scale, bias = (rng.standard_normal(out_channels).astype(np.float32) for _ in range(2))
        expected = expected * scale + bias
    got = winograd.conv3x3_rows(x, winograd.transform_weight(weight), row_offset, out_rows, pad_w,
                                scale=scale, bias=bias)
    assert got.shape == expected.shape == (out_rows, in_w + 2 * pad_w - 2, out_channels)
    # Float32 with the transforms' rounding: ~1e-6 relative, well inside this.
    assert np.abs(got - expected).max() < 2e-5 * (1 + np.abs(expected).max())


def test_writes_into_the_given_rows_only():
    rng = np.random.default_rng(0)
    x = rng.standard_normal([9, 10, 4]).astype(np.float32)
    weight = torch.from_numpy(rng.standard_normal([5, 4, 3, 3]).astype(np.float32))
    out = np.full([7, 10, 5], np.nan, np.float32)
    result = winograd.conv3x3_rows(x, winograd.transform_weight(weight), -1, 7, 1, out)
    assert result is out and np.isfinite(out).all()
    assert np.abs(out - reference_rows(x, weight, -1, 7, 1)).max() < 1e-4


def test_worthwhile_only_where_it_runs_and_pays(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 48)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 64 * 64)
    big = torch.zeros([1, 64, 80, 80])
    with torch.no_grad():
        assert winograd.worthwhile(big, 64, 3) == winograd.available()
        assert not winograd.worthwhile(big, 64, 1)  # 1x1: a matrix product already
        assert not winograd.worthwhile(big, 32, 3)  # too few output channels
        assert not winograd.worthwhile(torch.zeros([1, 64, 40, 40]), 64, 3)  # too few pixels
        assert not winograd.worthwhile(big.double(), 64, 3)
    assert not winograd.worthwhile(big, 64, 3)  # autograd on: the numba loops do not record it


def test_fixed_conv_and_its_input_gradient_equal_conv2d():
    if not winograd.available():
        pytest.skip("numba not available")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn([1, 48, 66, 70], generator=gen, dtype=torch.float64)
    weight = torch.randn([56, 48, 3, 3], generator=gen, dtype=torch.float64) / 20
    probe = torch.randn([1, 56, 66, 70], generator=gen, dtype=torch.float64)
    assert winograd.differentiable_worthwhile(x.float(), weight.float(), padding=1)
    assert not winograd.differentiable_worthwhile(x.float(), weight.float().requires_grad_(True), padding=1)
    assert not winograd.differentiable_worthwhile(x.float(), weight.float(), padding=0)
    x_var = x.float().requires_grad_(True)
    y = winograd.conv3x3_fixed(x_var, weight.float())
    (y * probe.float()).sum().backward()
    x_ref = x.clone().requires_grad_(True)
    y_ref = F.conv2d(x_ref, weight, padding=1)
    (y_ref * probe).sum().backward()
    assert (y.double() - y_ref).abs().max() < 1e-5 * y_ref.abs().max()
    assert (x_var.grad.double() - x_ref.grad).abs().max() < 1e-5 * x_ref.grad.abs().max()
