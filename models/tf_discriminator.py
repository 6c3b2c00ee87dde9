"""Convert the D of an original TensorFlow StyleGAN 1/2 (G, D, Gs) pickle, read as inert data, to a torch module.

StyleGAN2's D_stylegan2 maps onto our NVIDIA-layout Discriminator (models/discriminator.py) variable by
variable. StyleGAN1's D_basic (progressive-GAN layout) blurs, convolves and then average-pools, each step
zero-padded on its own, which differs from NVIDIA's down-conv at the borders: it gets its own small module here.
"""

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from models import discriminator, stylegan2, tf_stylegan2
from models.errors import LoadError
from models.tf_stylegan2 import TRANSFORMS, _kwarg, _variables


def _resolution(kwargs, default):
    """(resolution, log2) of an unconditional TF D; LoadError unless a power of two of at least 8."""
    resolution = int(_kwarg(kwargs, "resolution", default))
    resolution_log2 = int(np.log2(resolution))
    if resolution < 8 or 2 ** resolution_log2 != resolution:
        raise LoadError(f"unsupported resolution {resolution}")
    if int(_kwarg(kwargs, "label_size", 0)) > 0:
        raise LoadError("conditional discriminators are not supported")
    return resolution, resolution_log2


def tf_init_kwargs(d, tf_vars):
    """Init kwargs of our Discriminator equivalent to a TF D_stylegan2's static kwargs."""
    kwargs = d.static_kwargs
    resolution, resolution_log2 = _resolution(kwargs, 1024)
    if _kwarg(kwargs, "nonlinearity", "lrelu") != "lrelu":
        raise LoadError(f"unsupported TF kwarg nonlinearity={kwargs['nonlinearity']!r}")
    if [float(v) for v in np.asarray(_kwarg(kwargs, "resample_kernel", [1, 3, 3, 1])).ravel()] != [1, 3, 3, 1]:
        raise LoadError("unsupported TF resample_kernel (only [1, 3, 3, 1])")
    channel_base, fmap_max = tf_stylegan2.channel_base(kwargs, resolution_log2)
    architecture = _kwarg(kwargs, "architecture", None) or \
        tf_stylegan2.infer_architecture(tf_vars, resolution_log2, scope="", rgb_layer="FromRGB")
    common = dict(c_dim=0, img_resolution=resolution, img_channels=int(_kwarg(kwargs, "num_channels", 3)),
                  architecture=architecture, channel_base=channel_base, channel_max=fmap_max, num_fp16_res=0,
                  conv_clamp=kwargs.get("conv_clamp"))
    return dict(common, epilogue_kwargs=dict(mbstd_group_size=int(_kwarg(kwargs, "mbstd_group_size", 4)),
                                             mbstd_num_channels=int(_kwarg(kwargs, "mbstd_num_features", 1))))


def _tf_source(key):
    """For one of our state-dict keys: (TF variable name, transform name), or None for design constants."""
    rules = [
        (r".*\.resample_filter", lambda: None),  # the FIR filter is a design constant, not stored by TF
        (r"b(\d+)\.fromrgb\.weight", lambda r: (f"{r}x{r}/FromRGB/weight", "conv")),
        (r"b(\d+)\.fromrgb\.bias", lambda r: (f"{r}x{r}/FromRGB/bias", "as_is")),
        (r"b4\.conv\.weight", lambda: ("4x4/Conv/weight", "conv")),
        (r"b4\.conv\.bias", lambda: ("4x4/Conv/bias", "as_is")),
        (r"b4\.fc\.weight", lambda: ("4x4/Dense0/weight", "transpose")),
        (r"b4\.fc\.bias", lambda: ("4x4/Dense0/bias", "as_is")),
        (r"b4\.out\.weight", lambda: ("Output/weight", "transpose")),
        (r"b4\.out\.bias", lambda: ("Output/bias", "as_is")),
        (r"b(\d+)\.conv0\.weight", lambda r: (f"{r}x{r}/Conv0/weight", "conv")),
        (r"b(\d+)\.conv0\.bias", lambda r: (f"{r}x{r}/Conv0/bias", "as_is")),
        # TF's down-conv filters then strides, as ours does: the kernel needs no flip.
        (r"b(\d+)\.conv1\.weight", lambda r: (f"{r}x{r}/Conv1_down/weight", "conv")),
        (r"b(\d+)\.conv1\.bias", lambda r: (f"{r}x{r}/Conv1_down/bias", "as_is")),
        (r"b(\d+)\.skip\.weight", lambda r: (f"{r}x{r}/Skip/weight", "conv")),
    ]
    return tf_stylegan2.source_by_rules(rules, key)


def _from_tf_stylegan2(d):
    """Our Discriminator with the weights of a TF D_stylegan2 network."""
    tf_vars = _variables(d, "")
    try:
        D = discriminator.Discriminator(**tf_init_kwargs(d, tf_vars))
    except (TypeError, ValueError, KeyError) as err:
        raise LoadError(f"cannot build a discriminator from TF kwargs: {err}") from None
    state = tf_stylegan2.state_from_tf(D, tf_vars, _tf_source)
    unused = sorted(set(tf_vars) - {s[0] for s in map(_tf_source, state) if s is not None})
    if unused:
        raise LoadError(f"TF variable {unused[0]!r} has no place in the discriminator ({len(unused)} unused)")
    stylegan2.load_state_dict_checked(D, state)
    return D.eval().requires_grad_(False)


# ----------------------------------------------------------------------------
# StyleGAN1's D_basic.


class _TFLayer(torch.nn.Module):
    """TF StyleGAN1's conv2d / dense + apply_bias (+ leaky ReLU): weights scaled by gain / sqrt(fan_in) at run time."""

    def __init__(self, weight, bias, gain, activate=True, down=False):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)  # conv [out, in, k, k] or dense [out, in]
        self.bias = torch.nn.Parameter(bias)
        self.weight_gain = gain / math.sqrt(weight[0].numel())
        self.activate = activate
        self.down = down
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("blur_filter", (taps[:, None] * taps[None, :]) / 16)

    def forward(self, x):
        w = self.weight * self.weight_gain
        if w.ndim == 2:
            x = F.linear(x.flatten(1), w)
        else:
            if self.down:  # blur [1, 2, 1] ('SAME'), conv ('SAME'), 2x2 average pool: TF's steps, each padded alone
                channels = x.shape[1]
                x = F.conv2d(x, self.blur_filter.expand(channels, 1, 3, 3), padding=1, groups=channels)
            x = F.conv2d(x, w, padding=w.shape[-1] // 2)
            if self.down:
                x = F.avg_pool2d(x, 2)
        x = x + self.bias.view(1, -1, *([1] * (x.ndim - 2)))
        return F.leaky_relu(x, 0.2) if self.activate else x


class BasicDiscriminator(torch.nn.Module):
    """TF StyleGAN1's D_basic at lod 0: FromRGB, per resolution Conv0 + Conv1_down, then minibatch std,
    4x4 Conv, Dense0, Dense1. `features(img)` gives the block outputs, as our other discriminators do."""

    def __init__(self, layers, resolution, mbstd_group_size, mbstd_num_features):
        super().__init__()
        self.layers = torch.nn.ModuleDict(layers)
        self.block_resolutions = [2 ** i for i in range(int(np.log2(resolution)), 2, -1)]
        self.mbstd = (discriminator.MinibatchStdLayer(mbstd_group_size, mbstd_num_features)
                      if mbstd_group_size > 1 else None)

    def features(self, img):
        """Every block's output, full resolution first (the last is the 4x4 input of the epilogue)."""
        x = self.layers["fromrgb"](img.to(torch.float32))
        out = []
        for res in self.block_resolutions:
            x = self.layers[f"b{res}_conv1"](self.layers[f"b{res}_conv0"](x))
            out.append(x)
        return out

    def forward(self, img, c=None, **_ignored):
        x = self.features(img)[-1]
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.layers["dense1"](self.layers["dense0"](self.layers["conv"](x)))


def _from_tf_basic(d):
    """A BasicDiscriminator with the weights of a TF StyleGAN1 D_basic network."""
    kwargs = d.static_kwargs
    resolution, resolution_log2 = _resolution(kwargs, 32)
    for name, supported in (("nonlinearity", "lrelu"), ("use_wscale", True), ("blur_filter", [1, 2, 1])):
        if name in kwargs and kwargs[name] != supported:
            raise LoadError(f"unsupported TF kwarg {name}={kwargs[name]!r}")
    tf_vars = _variables(d, "")
    if float(tf_vars.get("lod", 0.0)) != 0.0:
        raise LoadError("a discriminator in mid-growth (lod > 0) is not supported")

    # nf(stage) = min(int(fmap_base / 2**(stage * fmap_decay)), fmap_max), as D_basic computes it.
    fmap_base, fmap_max = int(_kwarg(kwargs, "fmap_base", 8192)), int(_kwarg(kwargs, "fmap_max", 512))
    fmap_decay = float(_kwarg(kwargs, "fmap_decay", 1.0))

    def nf(stage):
        return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)

    group_size, num_features = int(_kwarg(kwargs, "mbstd_group_size", 4)), int(_kwarg(kwargs, "mbstd_num_features", 1))
    img_channels = int(_kwarg(kwargs, "num_channels", 3))
    sqrt2 = math.sqrt(2)
    # (our name, TF scope, TF weight shape, gain, activation, down)
    plan = [("fromrgb", "FromRGB_lod0", [1, 1, img_channels, nf(resolution_log2 - 1)], sqrt2, True, False)]
    for log2 in range(resolution_log2, 2, -1):
        r = 2 ** log2
        plan += [(f"b{r}_conv0", f"{r}x{r}/Conv0", [3, 3, nf(log2 - 1), nf(log2 - 1)], sqrt2, True, False),
                 (f"b{r}_conv1", f"{r}x{r}/Conv1_down", [3, 3, nf(log2 - 1), nf(log2 - 2)], sqrt2, True, True)]
    conv_in = nf(1) + (num_features if group_size > 1 else 0)
    plan += [("conv", "4x4/Conv", [3, 3, conv_in, nf(1)], sqrt2, True, False),
             ("dense0", "4x4/Dense0", [nf(1) * 16, nf(0)], sqrt2, True, False),
             ("dense1", "4x4/Dense1", [nf(0), 1], 1.0, False, False)]
    layers, used = {}, {"lod"}
    for name, scope, shape, gain, activate, down in plan:
        weight, bias = _checked(tf_vars, f"{scope}/weight", shape), _checked(tf_vars, f"{scope}/bias", shape[-1:])
        weight = TRANSFORMS["conv" if len(shape) == 4 else "transpose"](weight)
        layers[name] = _TFLayer(torch.from_numpy(np.array(weight, dtype=np.float32, order="C")),
                                torch.from_numpy(np.array(bias, dtype=np.float32)), gain, activate, down)
        used |= {f"{scope}/weight", f"{scope}/bias"}
    # FromRGB_lod{k > 0} only feed the fade-in while lod > 0; at lod 0 they are unused, as in TF.
    unused = sorted(n for n in set(tf_vars) - used if not re.fullmatch(r"FromRGB_lod\d+/(weight|bias)", n))
    if unused:
        raise LoadError(f"TF variable {unused[0]!r} has no place in the discriminator ({len(unused)} unused)")
    D = BasicDiscriminator(layers, resolution, group_size, num_features)
    return D.eval().requires_grad_(False)


def _checked(tf_vars, name, shape):
    """A TF variable that must exist with this shape."""
    if name not in tf_vars:
        raise LoadError(f"missing TF variable {name!r}")
    if list(tf_vars[name].shape) != list(shape):
        raise LoadError(f"wrong shape for TF variable {name!r}: file has {list(tf_vars[name].shape)}, "
                        f"network expects {list(shape)}")
    return tf_vars[name]


BUILDERS = {"D_stylegan2": _from_tf_stylegan2, "D_basic": _from_tf_basic}


def from_tf(d):
    """Our discriminator for a TF D network (a safe_pickle TFNetwork), or None for a kind we do not read."""
    build = BUILDERS.get(d.build_func_name)
    return build(d) if build is not None else None
