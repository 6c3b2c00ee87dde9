"""The default model's residual StyleGAN2 discriminator: trained with it (training/), shipped beside it for projection losses."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LRELU_GAIN = math.sqrt(2)


class EqualConv2d(nn.Module):
    """Conv with weights stored at unit variance and scaled at run time (equalised learning rate)."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.activate = activate

    def forward(self, x):
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activate else x


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate."""

    def __init__(self, in_features, out_features, activate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = 1 / math.sqrt(in_features)
        self.activate = activate

    def forward(self, x):
        x = F.linear(x, self.weight * self.weight_gain, self.bias)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activate else x


class BlurDown(nn.Module):
    """Low-pass with the [1, 3, 3, 1] binomial filter and halve the resolution (anti-aliased)."""

    def __init__(self):
        super().__init__()
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)

    def forward(self, x):
        channels = x.shape[1]
        return F.conv2d(x, self.kernel.expand(channels, 1, 4, 4), stride=2, padding=1, groups=channels)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs and a 1x1 skip, both halving the resolution; outputs summed at unit variance."""

    def __init__(self, in_channels, mid_channels, out_channels):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, mid_channels, 3)
        self.down = BlurDown()
        # Blurring before the conv lets the second conv run at the lower resolution (cheaper on CPU).
        self.conv1 = EqualConv2d(mid_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, activate=False)

    def forward(self, x):
        skip = self.skip(self.down(x))
        x = self.conv1(self.down(self.conv0(x)))
        return (x + skip) * math.sqrt(0.5)


class MinibatchStd(nn.Module):
    """Append the average standard deviation across a small group: lets D spot a collapsed batch."""

    def __init__(self, group_size=4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x):
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group:
            group = 1
        y = x.reshape(group, -1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()
        y = y.mean(dim=[1, 2, 3]).reshape(-1, 1, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """Residual D (StyleGAN2 config E/F): fromRGB at full resolution, blocks down to 4x4, epilogue."""

    def __init__(self, img_resolution=64, img_channels=3, channel_base=4096, channel_max=128, mbstd_group_size=4):
        super().__init__()
        self.init_kwargs = dict(img_resolution=img_resolution, img_channels=img_channels,
                                channel_base=channel_base, channel_max=channel_max,
                                mbstd_group_size=mbstd_group_size)

        def channels(res):
            return min(channel_base // res, channel_max)

        self.from_rgb = EqualConv2d(img_channels, channels(img_resolution), 1)
        blocks = []
        res = img_resolution
        while res > 4:
            blocks.append(DiscriminatorBlock(channels(res), channels(res), channels(res // 2)))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        top = channels(4)
        self.mbstd = MinibatchStd(mbstd_group_size)
        self.conv = EqualConv2d(top + 1, top, 3)
        self.fc = EqualLinear(top * 16, top)
        self.out = EqualLinear(top, 1, activate=False)

    def forward(self, img):
        x = self.from_rgb(img)
        for block in self.blocks:
            x = block(x)
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).squeeze(1)

    def features(self, img):
        """The block outputs the projector compares (renderer/projection.py), full resolution first."""
        x = self.from_rgb(img)
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out
