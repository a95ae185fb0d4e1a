"""`unet`: a convolutional encoder-decoder with skip connections.

The input is the model input concatenated with the mask (4 channels). The encoder is the stem, the down
path and the bottleneck; `encode` returns every skip and the bottleneck, which is everything the decoder
consumes, so an encoder-only method controls all information that reaches the output.

`skips` says which resolution levels pass a skip connection to the decoder (default: all). Without the
full-resolution skip (`skips=[False, True]` for three levels, registered as `unet_small_noskip0`) the decoder
reads nothing computed from a 5-pixel neighbourhood only: every feature it sees has the receptive field of at
least one downsampling step, at the cost of fine detail. `unet_small_noskip` (`skips=[False, False]`) keeps no
skip at all: the decoder reads the quarter-resolution bottleneck only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imgunlearn.models.base import ImageToImageModel, Latent
from imgunlearn.registry import MODELS


class ConvBlock(nn.Module):
    """Two 3×3 convolutions, each followed by GroupNorm and SiLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 8) -> None:
        super().__init__()
        groups = min(groups, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(x)))


class UNet(ImageToImageModel):
    """Conv U-Net for image-to-image completion.

    Args:
        channels: Feature channels per resolution level, finest first; each further level halves the size.
        name: Registry name, stored in the config.
        skips: One flag per level above the bottleneck (`len(channels) - 1`), finest first: whether that
            level's encoder features reach the decoder as a skip connection. Default: every level. The config
            records it only when some level is off, so the configs of full U-Nets are unchanged.
    """

    family = "unet"

    def __init__(self, channels: Sequence[int] = (16, 32, 64), name: str = "unet",
                 skips: Sequence[bool] | None = None) -> None:
        super().__init__()
        channels = list(channels)
        if len(channels) < 2 or any(c < 1 for c in channels):
            raise ValueError(f"channels must list at least two positive widths, got {channels}")
        skips = [True] * (len(channels) - 1) if skips is None else list(skips)
        if len(skips) != len(channels) - 1 or not all(isinstance(s, bool) for s in skips):
            raise ValueError(f"skips must give one true/false flag per level above the bottleneck "
                             f"({len(channels) - 1} for channels {channels}), got {skips}")
        self.skips = skips
        self.config = {"name": name, "channels": channels, **({} if all(skips) else {"skips": skips})}
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        in_ch = 4
        for i, ch in enumerate(channels[:-1]):
            self.down_blocks.append(ConvBlock(in_ch, ch))
            self.downsamples.append(nn.Conv2d(ch, channels[i + 1], 3, stride=2, padding=1))
            in_ch = channels[i + 1]
        self.mid_block = ConvBlock(in_ch, channels[-1])
        self.upsamples = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            self.upsamples.append(nn.Conv2d(channels[i + 1], channels[i], 3, padding=1))
            self.up_blocks.append(ConvBlock((2 if skips[i] else 1) * channels[i], channels[i]))
        self.head = nn.Conv2d(channels[0], 3, 1)

    @property
    def levels(self) -> int:
        return len(self.down_blocks)

    def encode(self, model_input: Tensor, mask: Tensor, target: Tensor | None = None, seed: int | None = None) -> Latent:
        size = 2**self.levels
        if model_input.shape[-1] % size or model_input.shape[-2] % size:
            raise ValueError(f"{self.config['name']} needs sides divisible by {size}, got {tuple(model_input.shape[-2:])}")
        x = torch.cat([model_input, mask], dim=1)  # [B, 4, H, W]
        skips = []
        for block, down, keep in zip(self.down_blocks, self.downsamples, self.skips, strict=True):
            x = block(x)
            if keep:
                skips.append(x)  # [B, C_i, H / 2^i, W / 2^i]
            x = down(x)
        return [*skips, self.mid_block(x)]

    def decode(self, latent: Latent, model_input: Tensor, mask: Tensor) -> Tensor:
        if len(latent) != sum(self.skips) + 1:
            raise ValueError(f"{self.config['name']} decodes {sum(self.skips)} skips and the bottleneck, "
                             f"got {len(latent)} feature maps")
        *skips, x = latent
        for level, up, block in zip(reversed(range(self.levels)), self.upsamples, self.up_blocks, strict=True):
            x = up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
            if self.skips[level]:
                x = torch.cat([x, skips.pop()], dim=1)  # the deepest remaining skip: this level's
            x = block(x)
        return torch.sigmoid(self.head(x))

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.decode(self.encode(model_input, mask), model_input, mask)

    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(self(model_input, mask), target)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.down_blocks.parameters()
        yield from self.downsamples.parameters()
        yield from self.mid_block.parameters()


@MODELS.register()
def unet_tiny(channels: Sequence[int] = (8, 16), name: str = "unet_tiny",
              skips: Sequence[bool] | None = None) -> UNet:
    """Two levels, 8/16 channels: for tests."""
    return UNet(channels, name=name, skips=skips)


@MODELS.register()
def unet_small(channels: Sequence[int] = (16, 32, 64), name: str = "unet_small",
               skips: Sequence[bool] | None = None) -> UNet:
    """Three levels, 16/32/64 channels (0.18 M parameters): the CPU demo model."""
    return UNet(channels, name=name, skips=skips)


@MODELS.register()
def unet_small_noskip0(channels: Sequence[int] = (16, 32, 64), skips: Sequence[bool] = (False, True),
                       name: str = "unet_small_noskip0") -> UNet:
    """`unet_small` without the full-resolution skip: the decoder sees half-resolution features and deeper."""
    return UNet(channels, name=name, skips=skips)


@MODELS.register()
def unet_small_noskip(channels: Sequence[int] = (16, 32, 64), skips: Sequence[bool] = (False, False),
                      name: str = "unet_small_noskip") -> UNet:
    """`unet_small` without skip connections: the decoder reads only the quarter-resolution bottleneck, as a
    VQ-GAN decoder reads only its latent."""
    return UNet(channels, name=name, skips=skips)


@MODELS.register()
def unet_base(channels: Sequence[int] = (64, 128, 256, 512), name: str = "unet_base",
              skips: Sequence[bool] | None = None) -> UNet:
    """Four levels, 64-512 channels: a GPU-sized model."""
    return UNet(channels, name=name, skips=skips)
