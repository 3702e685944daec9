"""Shared building blocks. Every conv+BN pair in the zoo is a ConvNormAct so one pass can fold them all."""

from .conv import ChannelAffine, ConvNormAct, fuse_conv_bn, make_divisible
from .reparam import Reparameterizable

__all__ = ["ChannelAffine", "ConvNormAct", "Reparameterizable", "fuse_conv_bn", "make_divisible"]
