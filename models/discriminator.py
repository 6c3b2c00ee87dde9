"""NVIDIA's StyleGAN2/3 discriminator (resnet, skip or orig), with its parameter names, for projection losses.

Written from the architecture (StyleGAN2 paper, Fig. 7; stylegan2-ada-pytorch's module layout):
blocks from the image resolution down to 8x8, each two 3x3 convolutions (the second halving
the resolution after a [1, 3, 3, 1] low-pass) and a 1x1 residual skip; then an epilogue at
4x4 with minibatch standard deviation, a convolution and two dense layers. `features(img)`
gives the block outputs that the projector compares (renderer/projection.py).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from models import ops
from models.errors import LoadError
from models.filtered_lrelu import upfirdn2d_reference

ARCHITECTURES = ("orig", "skip", "resnet")


def _blur_filter():
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = taps[:, None] * taps[None, :]
    return f / f.sum()


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalised learning rate, optional 2x low-pass downsampling, bias, leaky ReLU, clamp."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", down=1,
                 conv_clamp=None):
        super().__init__()
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = math.sqrt(2) if activation == "lrelu" else 1.0
        self.register_buffer("resample_filter", _blur_filter())
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x, gain=1.0):
        w = self.weight * self.weight_gain
        if self.down > 1:
            # Low-pass first (padding so that the kept samples are centred), then a strided convolution.
            fw = self.resample_filter.shape[-1]
            p0, p1 = self.padding + (fw - self.down + 1) // 2, self.padding + (fw - self.down) // 2
            if w.shape[-1] == 1:
                x = upfirdn2d_reference(x, self.resample_filter, down=self.down, padding=(p0, p1, p0, p1))
                x = F.conv2d(x, w)
            else:
                x = upfirdn2d_reference(x, self.resample_filter, padding=(p0, p1, p0, p1))
                x = F.conv2d(x, w, stride=self.down)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2)
        gain = self.act_gain * gain
        if gain != 1:
            x = x * gain
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain)
        return x


class DiscriminatorBlock(torch.nn.Module):
    """One resolution: (fromRGB), conv0, conv1 with 2x down; resnet adds a 1x1 skip, both at sqrt(1/2)."""

    def __init__(self, in_channels, tmp_channels, out_channels, img_channels, architecture="resnet",
                 conv_clamp=None, **_ignored):
        super().__init__()
        self.in_channels = in_channels
        self.architecture = architecture
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)
        self.register_buffer("resample_filter", _blur_filter())

    def forward(self, x, img):
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = (upfirdn2d_reference(img, self.resample_filter, down=2, padding=(1, 1, 1, 1))
                   if self.architecture == "skip" else None)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            return y + x, img
        return self.conv1(self.conv0(x)), img


class MinibatchStdLayer(torch.nn.Module):
    """Appends the standard deviation over groups of samples, averaged per group of channels."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        group = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        y = x.reshape(group, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4: (fromRGB), minibatch std, 3x3 conv, dense, dense to the logit (or the class-projection map)."""

    def __init__(self, in_channels, cmap_dim, img_channels, resolution=4, architecture="resnet",
                 mbstd_group_size=4, mbstd_num_channels=1, conv_clamp=None, **_ignored):
        super().__init__()
        self.architecture = architecture
        self.cmap_dim = cmap_dim
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation="lrelu")
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = ops.FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = ops.FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap=None):
        if self.architecture == "skip":
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(torch.nn.Module):
    """NVIDIA's Discriminator(c_dim, img_resolution, img_channels, ...): blocks b{res} then the epilogue b4."""

    def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet", channel_base=32768,
                 channel_max=512, num_fp16_res=4, conv_clamp=256, cmap_dim=None, block_kwargs=None,
                 mapping_kwargs=None, epilogue_kwargs=None):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        if c_dim:
            raise ValueError("conditional discriminators are not supported")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(int(np.log2(img_resolution)), 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res],
                                       channels[res // 2], **common, **(block_kwargs or {}))
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=0, **common, **(epilogue_kwargs or {}))

    def blocks(self, img):
        """Yield each block's output, from full resolution down to 8x8 (halved), then the 4x4 input."""
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
            yield x, img

    def forward(self, img, c=None, **_ignored):
        x = last_img = None
        for x, last_img in self.blocks(img.to(torch.float32)):
            pass
        return self.b4(x, last_img)

    def features(self, img):
        """The block outputs the projector compares: every block's, full resolution first."""
        return [x for x, _ in self.blocks(img.to(torch.float32))]


def from_persistent(obj):
    """A Discriminator from a safe_pickle PersistentObject of NVIDIA's Discriminator, weights loaded strictly."""
    from models.stylegan2 import load_state_dict_checked

    if obj.init_args:
        raise LoadError("Discriminator pickled with positional init args is not supported")
    try:
        D = Discriminator(**dict(obj.init_kwargs))
    except (TypeError, ValueError, KeyError) as err:
        raise LoadError(f"cannot build the discriminator from its init kwargs: {err}") from None
    load_state_dict_checked(D, obj.state_dict())
    return D.eval().requires_grad_(False)
