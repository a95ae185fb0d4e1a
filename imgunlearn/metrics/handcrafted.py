"""Offline feature extractors that need no download and are deterministic.

`StatsFeatures` (the default, `feature="stats"`) describes an image by handcrafted statistics that
respond to what an image-to-image model gets right or wrong: colour (channel means, spreads, histograms),
layout (a 4×4 grid of local brightness and contrast), edges (gradient strength per cell and an orientation
histogram) and sharpness (the share of spectral energy per frequency band). Every group is built to be
roughly zero-centred on natural images, so cosine similarities between two images' vectors spread over
[-1, 1] instead of crowding near 1.

`RandomConvFeatures` (`feature="random_conv"`) is a small convolutional net with fixed, seeded random
weights; its pooled activations are a generic texture descriptor.

Numbers computed with either extractor are NOT comparable to standard Inception FID / KID / IS, or to
CLIP cosines, published elsewhere. They are comparable across models evaluated with the same extractor,
which is what comparing an original model with its unlearned copy needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LUMA = (0.299, 0.587, 0.114)


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"feature extractors take RGB images [B, 3, H, W] in [0, 1], got {tuple(x.shape)}")


class StatsFeatures(nn.Module):
    """Handcrafted image statistics, a 94-dimensional vector per image (at the default settings).

    Args:
        size: Images are resized to `size × size` first, so any input size gives comparable vectors.
        bins: Histogram bins per colour channel and for gradient orientations.
        grid: Cells per side of the local brightness / contrast / edge grid.
        bands: Radial frequency bands of the spectrum.
    """

    def __init__(self, size: int = 64, bins: int = 8, grid: int = 4, bands: int = 8) -> None:
        super().__init__()
        if size < 8 or bins < 2 or grid < 1 or bands < 2:
            raise ValueError(f"invalid StatsFeatures settings: size={size}, bins={bins}, grid={grid}, bands={bands}")
        self.size, self.bins, self.grid, self.bands = size, bins, grid, bands
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
        self.register_buffer("sobel", torch.stack([sobel, sobel.T])[:, None], persistent=False)  # [2, 1, 3, 3]
        fy = torch.fft.fftfreq(size).view(-1, 1)
        fx = torch.fft.rfftfreq(size).view(1, -1)
        radius = torch.sqrt(fx**2 + fy**2) / math.sqrt(0.5)  # [size, size // 2 + 1] in [0, 1]
        band = (radius * bands).long().clamp(max=bands - 1)
        band[0, 0] = -1  # the mean (DC term) is described by the colour statistics
        self.register_buffer("band", band, persistent=False)

    @property
    def dim(self) -> int:
        return 6 + 3 * self.bins + 3 * self.grid**2 + self.bins + self.bands

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x)
        x = x.float().clamp(0.0, 1.0)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        b = x.shape[0]
        luma = (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)  # [B, 1, S, S]

        mean = x.mean(dim=(2, 3)) - 0.5  # [B, 3]
        std = x.std(dim=(2, 3)) * 2.0 - 0.5  # [B, 3]
        index = (x * self.bins).long().clamp(max=self.bins - 1).flatten(2)  # [B, 3, S*S]
        counts = torch.zeros(b, 3, self.bins, device=x.device).scatter_add_(2, index, torch.ones_like(x).flatten(2))
        hist = counts / index.shape[2] - 1.0 / self.bins  # [B, 3, bins]

        cell_mean = F.adaptive_avg_pool2d(luma, self.grid)  # [B, 1, G, G]
        cell_sq = F.adaptive_avg_pool2d(luma * luma, self.grid)
        cell_std = (cell_sq - cell_mean**2).clamp(min=0).sqrt()
        grad = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), self.sobel)  # [B, 2, S, S]
        magnitude = (grad * grad).sum(dim=1, keepdim=True).sqrt()  # [B, 1, S, S]
        cell_edges = F.adaptive_avg_pool2d(magnitude, self.grid)
        layout = torch.cat([cell_mean - 0.5, cell_std * 4.0 - 0.5, cell_edges * 8.0 - 0.5], dim=1).flatten(1)

        angle = torch.atan2(grad[:, 1], grad[:, 0]) % math.pi  # [B, S, S] orientation, sign ignored
        a_index = (angle / math.pi * self.bins).long().clamp(max=self.bins - 1).flatten(1)  # [B, S*S]
        weights = magnitude.flatten(1)
        orient = torch.zeros(b, self.bins, device=x.device).scatter_add_(1, a_index, weights)
        orient = (orient / weights.sum(dim=1, keepdim=True).clamp(min=1e-8) - 1.0 / self.bins) * 4.0  # [B, bins]

        power = torch.fft.rfft2(luma[:, 0] - luma.mean(dim=(2, 3))[:, :1, None], norm="ortho").abs() ** 2
        keep = self.band >= 0
        energy = torch.zeros(b, self.bands, device=x.device).scatter_add_(
            1, self.band[keep].expand(b, -1), power[:, keep])  # [B, bands]
        spectrum = energy / energy.sum(dim=1, keepdim=True).clamp(min=1e-8) - 1.0 / self.bands

        return torch.cat([mean, std, hist.flatten(1), layout, orient, spectrum], dim=1)


class RandomConvFeatures(nn.Module):
    """A fixed random-weight conv net: its globally pooled activations (mean and spread) per image.

    Args:
        seed: Seeds the weights; the same seed gives the same extractor on every machine.
        width: Channels of the first layer (doubled at each further layer).
        depth: Number of stride-2 conv layers.
        size: Images are resized to `size × size` first.
    """

    def __init__(self, seed: int = 0, width: int = 32, depth: int = 3, size: int = 64) -> None:
        super().__init__()
        if width < 1 or depth < 1 or size < 2**depth:
            raise ValueError(f"invalid RandomConvFeatures settings: width={width}, depth={depth}, size={size}")
        self.size = size
        generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        in_ch = 3
        for i in range(depth):
            out_ch = width * 2**i
            conv = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * math.sqrt(2.0 / (9 * in_ch)))
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
            in_ch = out_ch
        self.net = nn.Sequential(*layers).requires_grad_(False).eval()
        self.dim = 2 * in_ch

    def train(self, mode: bool = True) -> RandomConvFeatures:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x)
        x = x.float()
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        h = self.net(x * 2.0 - 1.0)  # [B, C, s, s]
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1)  # [B, 2C]
