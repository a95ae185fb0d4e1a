"""`vqgan`: diffusers' `VQModel` as encoder -> vector quantiser -> decoder for masked-image completion.

The input is the model input (scaled to [-1, 1]) concatenated with the mask: 4 channels, so the encoder
knows which pixels are hidden. The encoder is `VQModel.encoder` plus `quant_conv`; `encode` returns that
pre-quantisation latent `[B, vq_embed_dim, H / 2^(n-1), W / 2^(n-1)]` for `n` blocks. The decoder is the
quantiser (its codebook), `post_quant_conv` and `VQModel.decoder`; a sigmoid maps its output to [0, 1].
The output is the full image (visible pixels are not pasted back), as in the restore task every pixel is
degraded.

Training objective: MSE to the clean image plus the VQ-VAE codebook and commitment terms
(`|sg(z) - e|² + beta · |z - sg(e)|²`, straight-through gradient to the encoder). An optional PatchGAN
(`discriminator_weight > 0`, off by default) adds hinge adversarial terms; its parameters count as decoder
parameters.

Dead-code restart (`code_restart_every > 0`; every 100 steps in `vqgan_small_f2`, off in the other presets): a
codebook trained this way collapses onto few codes (`vqgan_small_f2` without restart picks 50 of its 512 on held-out
tiles after 4,000 steps; with it, all 512, and the face box gains 0.75 dB). Every `code_restart_every` training
steps, the codes no latent picked since the last check are moved onto randomly chosen pre-quantisation latents of
the current batch, so they sit where the encoder puts its outputs. Under DDP the usage counts are summed over ranks
and rank 0's new codebook is broadcast, so every replica keeps the same codes. Only a codebook being trained
(`requires_grad`) is restarted: encoder-only unlearning never moves it. The counts since the last check go into
Lightning checkpoints (`training_state`), so a resumed run restarts codes at the same steps as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import VQModel
from torch import Tensor, nn

from imgunlearn.models.base import ImageToImageModel, Latent
from imgunlearn.models.patch_discriminator import PatchDiscriminator, adversarial_losses
from imgunlearn.registry import MODELS


class VQGAN(ImageToImageModel):
    """VQ autoencoder completing partly hidden images.

    Args:
        block_out_channels: Channels per encoder/decoder block, finest first; each further block halves the size.
        layers_per_block: ResNet layers per block.
        latent_channels: Channels of the encoder output before `quant_conv`.
        vq_embed_dim: Dimension of the codebook vectors (the latent `encode` returns).
        num_vq_embeddings: Codebook size.
        norm_num_groups: GroupNorm groups (must divide every block width).
        mid_block_attention: Self-attention in the mid blocks.
        commitment_beta: Weight of the commitment term.
        discriminator_weight: Weight of the adversarial generator term; 0 disables the discriminator.
        discriminator_channels: Width of the discriminator's first layer.
        code_restart_every: Training steps between dead-code restarts; 0 disables them.
        name: Registry name, stored in the config.
    """

    family = "vqgan"

    def __init__(
        self,
        block_out_channels: Sequence[int] = (32, 64, 64),
        layers_per_block: int = 1,
        latent_channels: int = 4,
        vq_embed_dim: int = 4,
        num_vq_embeddings: int = 256,
        norm_num_groups: int = 8,
        mid_block_attention: bool = True,
        commitment_beta: float = 0.25,
        discriminator_weight: float = 0.0,
        discriminator_channels: int = 32,
        code_restart_every: int = 0,
        name: str = "vqgan",
    ) -> None:
        super().__init__()
        block_out_channels = [int(c) for c in block_out_channels]
        if not block_out_channels or any(c < 1 or c % norm_num_groups for c in block_out_channels):
            raise ValueError(f"block_out_channels must be positive multiples of norm_num_groups={norm_num_groups}, "
                             f"got {block_out_channels}")
        if min(layers_per_block, latent_channels, vq_embed_dim, num_vq_embeddings) < 1:
            raise ValueError(f"layers_per_block, latent_channels, vq_embed_dim and num_vq_embeddings must be positive, "
                             f"got {layers_per_block}, {latent_channels}, {vq_embed_dim}, {num_vq_embeddings}")
        if code_restart_every < 0:
            raise ValueError(f"code_restart_every must be >= 0, got {code_restart_every}")
        if commitment_beta < 0 or discriminator_weight < 0:
            raise ValueError(f"commitment_beta and discriminator_weight must be >= 0, "
                             f"got {commitment_beta} and {discriminator_weight}")
        self.config: dict[str, Any] = {
            "name": name,
            "block_out_channels": block_out_channels,
            "layers_per_block": layers_per_block,
            "latent_channels": latent_channels,
            "vq_embed_dim": vq_embed_dim,
            "num_vq_embeddings": num_vq_embeddings,
            "norm_num_groups": norm_num_groups,
            "mid_block_attention": mid_block_attention,
            "commitment_beta": commitment_beta,
            "discriminator_weight": discriminator_weight,
            "discriminator_channels": discriminator_channels,
            "code_restart_every": code_restart_every,
        }
        blocks = len(block_out_channels)
        self.vq = VQModel(
            in_channels=4,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * blocks,
            up_block_types=("UpDecoderBlock2D",) * blocks,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            latent_channels=latent_channels,
            num_vq_embeddings=num_vq_embeddings,
            norm_num_groups=norm_num_groups,
            vq_embed_dim=vq_embed_dim,
            mid_block_add_attention=mid_block_attention,
        )
        # diffusers' default ("legacy") quantiser loss swaps the two weights; the non-legacy form is the VQ-VAE
        # loss: codebook term + beta · commitment term.
        self.vq.quantize.legacy = False
        self.vq.quantize.beta = commitment_beta
        self.discriminator = PatchDiscriminator(discriminator_channels) if discriminator_weight > 0 else None
        self.register_buffer("code_counts", torch.zeros(num_vq_embeddings), persistent=False)  # picks since check
        self.steps_since_restart = 0

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.config["block_out_channels"]) - 1)

    def encode(self, model_input: Tensor, mask: Tensor, target: Tensor | None = None, seed: int | None = None) -> Latent:
        size = self.downsampling
        if model_input.shape[-1] % size or model_input.shape[-2] % size:
            raise ValueError(f"{self.config['name']} needs sides divisible by {size}, "
                             f"got {tuple(model_input.shape[-2:])}")
        x = torch.cat([2.0 * model_input - 1.0, mask], dim=1)  # [B, 4, H, W]
        return self.vq.quant_conv(self.vq.encoder(x))  # [B, vq_embed_dim, H / size, W / size]

    def quantize_and_decode(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """The image `[B, 3, H, W]` in [0, 1] and the codebook + commitment loss of a pre-quantisation latent."""
        image, vq_loss, _ = self._quantize_and_decode(latent)
        return image, vq_loss

    def _quantize_and_decode(self, latent: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        quantized, vq_loss, (_, _, codes) = self.vq.quantize(latent)  # straight-through: gradients reach the encoder
        image = self.vq.decoder(self.vq.post_quant_conv(quantized))
        return torch.sigmoid(image), vq_loss, codes  # codes: [B * h * w] index of each latent's code

    @torch.no_grad()
    def restart_dead_codes(self, latent: Tensor, codes: Tensor) -> int:
        """Count this step's picks; every `code_restart_every` steps move unpicked codes onto random latents of
        `latent` `[B, D, h, w]`. Returns how many codes were moved."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        counts = torch.bincount(codes.flatten(), minlength=self.code_counts.numel()).to(self.code_counts)
        if distributed:
            torch.distributed.all_reduce(counts)
        self.code_counts += counts
        self.steps_since_restart += 1
        if self.steps_since_restart < self.config["code_restart_every"]:
            return 0
        dead = self.code_counts == 0
        self.code_counts.zero_()
        self.steps_since_restart = 0
        if not dead.any():
            return 0
        vectors = latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])  # [B * h * w, D]
        picks = torch.randint(len(vectors), (int(dead.sum()),), device=vectors.device)
        weight = self.vq.quantize.embedding.weight
        weight[dead] = vectors[picks].to(weight.dtype)
        if distributed:
            torch.distributed.broadcast(weight, src=0)
        return int(dead.sum())

    def training_state(self) -> dict[str, Any]:
        """The code usage counted since the last restart check, so a resumed run restarts at the same steps."""
        return {"code_counts": self.code_counts.detach().cpu().clone(), "steps_since_restart": self.steps_since_restart}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        if not state:  # a checkpoint written before the counts were kept, or by a model without them
            return
        counts = torch.as_tensor(state["code_counts"])
        if counts.shape != self.code_counts.shape:
            raise ValueError(f"{self.config['name']} has {self.code_counts.numel()} codes, the checkpoint counts "
                             f"{counts.numel()}")
        self.code_counts.copy_(counts)
        self.steps_since_restart = int(state["steps_since_restart"])

    def decode(self, latent: Latent, model_input: Tensor, mask: Tensor) -> Tensor:
        if not isinstance(latent, Tensor):
            raise ValueError(f"{self.config['name']} decodes one latent tensor, got a {type(latent).__name__}")
        return self.quantize_and_decode(latent)[0]

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.decode(self.encode(model_input, mask), model_input, mask)

    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        latent = self.encode(model_input, mask)
        output, vq_loss, codes = self._quantize_and_decode(latent)
        if self.training and self.config["code_restart_every"] and self.vq.quantize.embedding.weight.requires_grad:
            self.restart_dead_codes(latent, codes)
        loss = F.mse_loss(output, target) + vq_loss
        if self.discriminator is not None:
            generator_loss, discriminator_loss = adversarial_losses(self.discriminator, target, output)
            loss = loss + self.config["discriminator_weight"] * generator_loss + discriminator_loss
        return loss

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return chain(self.vq.encoder.parameters(), self.vq.quant_conv.parameters())


PRESETS: dict[str, dict[str, Any]] = {
    "vqgan_tiny": {"block_out_channels": [8, 16], "num_vq_embeddings": 32, "latent_channels": 4, "vq_embed_dim": 4,
                   "discriminator_channels": 8},
    "vqgan_small": {"block_out_channels": [32, 64, 64], "num_vq_embeddings": 256},
    "vqgan_small_f2": {"block_out_channels": [32, 64], "num_vq_embeddings": 512, "latent_channels": 8,
                       "vq_embed_dim": 8, "mid_block_attention": False, "code_restart_every": 100},
    "vqgan_base": {"block_out_channels": [64, 128, 256, 256], "layers_per_block": 2, "num_vq_embeddings": 1024,
                   "latent_channels": 8, "vq_embed_dim": 8, "discriminator_channels": 64},
}


def _build(name: str, overrides: dict[str, Any]) -> VQGAN:
    return VQGAN(**{**PRESETS[name], **overrides, "name": overrides.get("name", name)})


@MODELS.register()
def vqgan_tiny(**kwargs: Any) -> VQGAN:
    """8/16 channels, 32 codes, latent at 1/2 resolution: for tests. Keyword arguments override the preset."""
    return _build("vqgan_tiny", kwargs)


@MODELS.register()
def vqgan_small(**kwargs: Any) -> VQGAN:
    """32/64/64 channels, 256 codes, latent at 1/4 resolution: the CPU demo model."""
    return _build("vqgan_small", kwargs)


@MODELS.register()
def vqgan_small_f2(**kwargs: Any) -> VQGAN:
    """32/64 channels, 512 codes of 8 dimensions, latent at 1/2 resolution (four times the latent positions of
    `vqgan_small`, for restoring 10-30 px faces at 64 px), no attention (1,024 latent positions would make it
    the most expensive layer), dead codes restarted every 100 steps. Keyword arguments override the preset."""
    return _build("vqgan_small_f2", kwargs)


@MODELS.register()
def vqgan_base(**kwargs: Any) -> VQGAN:
    """Four blocks up to 256 channels, 1024 codes, latent at 1/8 resolution: a GPU-sized model."""
    return _build("vqgan_base", kwargs)
