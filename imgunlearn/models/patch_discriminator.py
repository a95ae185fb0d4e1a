"""A small PatchGAN discriminator and the hinge losses of an optional adversarial term.

The discriminator scores overlapping patches of an image (`[B, 3, H, W]` in [0, 1]) as real or generated
(`[B, 1, H / 2^n, W / 2^n]` logits). `adversarial_losses` returns both sides of a hinge GAN as one scalar, so
a single optimiser over all parameters trains the generator and the discriminator together: the generator's
term is computed with detached discriminator weights and the discriminator's term with a detached fake.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


class PatchDiscriminator(nn.Module):
    """Strided 4x4 convolutions with GroupNorm and LeakyReLU, ending in one logit per patch.

    Args:
        channels: Width of the first layer; each of the `layers` strided layers doubles it.
        layers: Number of stride-2 layers (each halves the resolution).
    """

    def __init__(self, channels: int = 32, layers: int = 2) -> None:
        super().__init__()
        if channels < 1 or layers < 1:
            raise ValueError(f"channels and layers must be positive, got {channels} and {layers}")
        modules: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = channels
        for _ in range(layers - 1):
            modules += [
                nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
                nn.GroupNorm(min(8, 2 * width), 2 * width),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        modules.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*modules)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(2.0 * image - 1.0)


def adversarial_losses(discriminator: PatchDiscriminator, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Hinge losses `(generator_loss, discriminator_loss)`.

    The generator loss reaches the generator only (the discriminator's weights are detached for it); the
    discriminator loss reaches the discriminator only (the fake image is detached for it).
    """
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    generator_loss = -functional_call(discriminator, frozen, (fake,)).mean()
    discriminator_loss = F.relu(1.0 - discriminator(real)).mean() + F.relu(1.0 + discriminator(fake.detach())).mean()
    return generator_loss, discriminator_loss
