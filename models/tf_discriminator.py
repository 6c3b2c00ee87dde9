"""Convert the D of an original TensorFlow StyleGAN2 (G, D, Gs) pickle, read as inert data, to our Discriminator."""

import re

import numpy as np
import torch

from models import discriminator, stylegan2
from models.errors import LoadError
from models.tf_stylegan2 import TRANSFORMS, _kwarg, _variables


def _infer_architecture(tf_vars, resolution_log2):
    """'resnet' if skip convs exist, 'skip' if every resolution has a FromRGB, else 'orig' (read off the variables)."""
    if any(re.fullmatch(r"\d+x\d+/Skip/weight", name) for name in tf_vars):
        return "resnet"
    has_fromrgb = [f"{2 ** r}x{2 ** r}/FromRGB/weight" in tf_vars for r in range(2, resolution_log2 + 1)]
    return "skip" if all(has_fromrgb) else "orig"


def tf_init_kwargs(d, tf_vars):
    """Init kwargs of our Discriminator equivalent to a TF D_stylegan2's static kwargs."""
    kwargs = d.static_kwargs
    resolution = int(_kwarg(kwargs, "resolution", 1024))
    resolution_log2 = int(np.log2(resolution))
    if resolution < 8 or 2 ** resolution_log2 != resolution:
        raise LoadError(f"unsupported resolution {resolution}")
    if int(_kwarg(kwargs, "label_size", 0)) > 0:
        raise LoadError("conditional discriminators are not supported")
    if _kwarg(kwargs, "nonlinearity", "lrelu") != "lrelu":
        raise LoadError(f"unsupported TF kwarg nonlinearity={kwargs['nonlinearity']!r}")
    if [float(v) for v in np.asarray(_kwarg(kwargs, "resample_kernel", [1, 3, 3, 1])).ravel()] != [1, 3, 3, 1]:
        raise LoadError("unsupported TF resample_kernel (only [1, 3, 3, 1])")

    # TF: nf(stage) = clip(int(fmap_base / 2**(stage * fmap_decay)), fmap_min, fmap_max), stage = log2(res) - 1;
    # ours: min(channel_base // res, channel_max). They agree with channel_base = 2 * fmap_base when fmap_decay is 1.
    fmap_base = int(_kwarg(kwargs, "fmap_base", 16 << 10))
    fmap_max = int(_kwarg(kwargs, "fmap_max", 512))
    fmap_min = int(_kwarg(kwargs, "fmap_min", 1))
    fmap_decay = float(_kwarg(kwargs, "fmap_decay", 1.0))
    channel_base = fmap_base * 2
    for log2 in range(2, resolution_log2 + 1):
        tf_channels = int(np.clip(int(fmap_base / (2.0 ** ((log2 - 1) * fmap_decay))), fmap_min, fmap_max))
        if tf_channels != min(channel_base // 2 ** log2, fmap_max):
            raise LoadError(f"unsupported channel layout (fmap_decay={fmap_decay}, fmap_min={fmap_min})")

    architecture = _kwarg(kwargs, "architecture", None) or _infer_architecture(tf_vars, resolution_log2)
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
    for pattern, source in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return source(*match.groups())
    raise LoadError(f"no TF variable corresponds to {key!r}")


def _from_tf_stylegan2(d):
    """Our Discriminator with the weights of a TF D_stylegan2 network."""
    tf_vars = _variables(d, "")
    try:
        D = discriminator.Discriminator(**tf_init_kwargs(d, tf_vars))
    except (TypeError, ValueError, KeyError) as err:
        raise LoadError(f"cannot build a discriminator from TF kwargs: {err}") from None
    state = {}
    for key, own in D.state_dict().items():
        source = _tf_source(key)
        if source is None:
            state[key] = own
            continue
        tf_name, transform = source
        if tf_name not in tf_vars:
            raise LoadError(f"missing TF variable {tf_name!r} (needed for {key})")
        state[key] = torch.from_numpy(np.array(TRANSFORMS[transform](tf_vars[tf_name]), dtype=np.float32, order="C"))
    unused = sorted(set(tf_vars) - {s[0] for s in map(_tf_source, state) if s is not None})
    if unused:
        raise LoadError(f"TF variable {unused[0]!r} has no place in the discriminator ({len(unused)} unused)")
    stylegan2.load_state_dict_checked(D, state)
    return D.eval().requires_grad_(False)


BUILDERS = {"D_stylegan2": _from_tf_stylegan2}


def from_tf(d):
    """Our discriminator for a TF D network (a safe_pickle TFNetwork), or None for a kind we do not read."""
    build = BUILDERS.get(d.build_func_name)
    return build(d) if build is not None else None
