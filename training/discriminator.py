"""The default model's discriminator: defined in models/residual_discriminator.py, which also ships it."""

from models.residual_discriminator import BlurDown, Discriminator, DiscriminatorBlock, EqualConv2d, EqualLinear, MinibatchStd

__all__ = ["BlurDown", "Discriminator", "DiscriminatorBlock", "EqualConv2d", "EqualLinear", "MinibatchStd"]
