"""`mae`: a masked autoencoder built from timm's ViT blocks, completing the hidden patches.

Patch mask: the image is cut into `patch_size` squares; a patch is *hidden* when more than
`hidden_threshold` of its pixels are hidden (default 0.5: "most of it"; 0 makes any hidden pixel hide the
patch). Student and reference derive it from the same pixel mask, so the same inputs give the same shapes.

Encoder (as in MAE, hidden patches are dropped): the visible patches of the model input concatenated with
the pixel mask (4 channels, so partly hidden visible patches say which pixels are missing) are embedded
by `timm.layers.PatchEmbed`, get fixed 2-D sin-cos position embeddings, and pass with a class token
through `timm` `Block`s. Images of a batch may have different numbers of visible patches: the visible
tokens are packed first, shorter rows are padded and the padding is excluded from attention and zeroed.
`encode` returns the encoder tokens `[B, 1 + V, D]` (class token first; `V` the most visible patches of
any image in the batch). With no hidden pixels (the `restore` task) every patch is visible and the model
is a ViT autoencoder.

Decoder: the tokens are projected to the decoder width, a learned mask token fills every hidden
patch, position embeddings are added and decoder blocks predict the pixels of every patch. The output is
the full image (visible patches are predicted too, not pasted back), trained with MSE on all pixels.

Convolutional head (`conv_head > 0`, off by default): beside the linear map of each token to its patch's pixels,
the decoder tokens are laid out on the patch grid and a transposed convolution (stride = patch size) followed by
two 3×3 convolutions of `conv_head` channels adds a correction to the image (before the sigmoid), so neighbouring
patches share what they predict and patch seams can be smoothed. Its last convolution starts near zero: the model
starts close to the linear one. It reads only the decoder tokens: the encoder still controls everything that reaches
the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from imgunlearn.models.base import ImageToImageModel, Latent
from imgunlearn.registry import MODELS


def sincos_position_embedding(grid_h: int, grid_w: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Fixed 2-D sin-cos embeddings `[grid_h * grid_w, dim]` in row-major patch order (timm's
    `build_sincos2d_pos_embed`): per row then column coordinate, `dim / 4` sines then `dim / 4` cosines."""
    if dim % 4:
        raise ValueError(f"position embedding width must be divisible by 4, got {dim}")
    return build_sincos2d_pos_embed([grid_h, grid_w], dim=dim, interleave_sin_cos=True, device=device)


def key_padding_bias(valid: Tensor, dtype: torch.dtype) -> Tensor | None:
    """Additive attention mask `[B, 1, 1, N]` (0 for tokens to attend, -inf for padding), None without padding.

    An additive float mask means the same to every `timm` version whose `Block` takes `attn_mask`, whether it
    runs fused (`scaled_dot_product_attention`) or adds the mask to the scores itself.
    """
    if bool(valid.all()):
        return None
    return torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(~valid, float("-inf"))[:, None, None, :]


class MaskedAutoencoder(ImageToImageModel):
    """ViT masked autoencoder for image completion.

    Args:
        patch_size: Side of a square patch; image sides must be multiples of it.
        embed_dim: Encoder width (divisible by 4 and by `num_heads`).
        depth: Encoder blocks.
        num_heads: Encoder attention heads.
        decoder_embed_dim: Decoder width (divisible by 4 and by `decoder_num_heads`).
        decoder_depth: Decoder blocks.
        decoder_num_heads: Decoder attention heads.
        mlp_ratio: MLP hidden width as a multiple of the block width.
        hidden_threshold: A patch is hidden when more than this share of its pixels is hidden, in [0, 1).
        conv_head: Channels of the convolutional pixel head; 0 (default) predicts each patch linearly.
        name: Registry name, stored in the config.
    """

    family = "mae"

    def __init__(
        self,
        patch_size: int = 8,
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        decoder_embed_dim: int = 64,
        decoder_depth: int = 2,
        decoder_num_heads: int = 4,
        mlp_ratio: float = 4.0,
        hidden_threshold: float = 0.5,
        conv_head: int = 0,
        name: str = "mae",
    ) -> None:
        super().__init__()
        for width, heads in ((embed_dim, num_heads), (decoder_embed_dim, decoder_num_heads)):
            if width < 4 or width % 4 or heads < 1 or width % heads:
                raise ValueError(f"width {width} must be a positive multiple of 4 and of its {heads} heads")
        if patch_size < 1 or depth < 1 or decoder_depth < 1:
            raise ValueError(f"patch_size, depth and decoder_depth must be positive, "
                             f"got {patch_size}, {depth}, {decoder_depth}")
        if not 0.0 <= hidden_threshold < 1.0:
            raise ValueError(f"hidden_threshold must be in [0, 1), got {hidden_threshold}")
        if conv_head < 0:
            raise ValueError(f"conv_head must be >= 0 channels, got {conv_head}")
        self.config: dict[str, Any] = {
            "name": name, "patch_size": patch_size, "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
            "decoder_embed_dim": decoder_embed_dim, "decoder_depth": decoder_depth,
            "decoder_num_heads": decoder_num_heads, "mlp_ratio": mlp_ratio, "hidden_threshold": hidden_threshold,
            **({"conv_head": conv_head} if conv_head else {}),  # absent when off: older configs stay the same
        }
        self.patch_size = patch_size
        # encoder
        self.patch_embed = PatchEmbed(img_size=None, patch_size=patch_size, in_chans=4, embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * 3)
        self.decoder_conv = None
        if conv_head:
            self.decoder_conv = nn.Sequential(
                nn.ConvTranspose2d(decoder_embed_dim, conv_head, patch_size, stride=patch_size),
                nn.SiLU(),
                nn.Conv2d(conv_head, conv_head, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(conv_head, 3, 3, padding=1),
            )
            nn.init.normal_(self.decoder_conv[-1].weight, std=1e-3)  # near zero, so gradients still reach the rest
            nn.init.zeros_(self.decoder_conv[-1].bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    # ---- patches -----------------------------------------------------------------------------------

    def grid(self, image: Tensor) -> tuple[int, int]:
        h, w = image.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"{self.config['name']} needs sides divisible by its patch size {self.patch_size}, "
                             f"got {(h, w)}")
        return h // self.patch_size, w // self.patch_size

    def patch_mask(self, mask: Tensor) -> Tensor:
        """Hidden patches `[B, L]` (bool, row-major) of a pixel mask `[B, 1, H, W]`."""
        self.grid(mask)
        share = F.avg_pool2d(mask.float(), self.patch_size)  # [B, 1, H / p, W / p]
        return share.flatten(1) > self.config["hidden_threshold"]  # [B, L]

    def visible_order(self, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Patch indices with the visible ones first (in row-major order) `[B, L]`, and the visible counts `[B]`."""
        hidden = self.patch_mask(mask)
        order = torch.argsort(hidden.to(torch.int8), dim=1, stable=True)  # visible (0) before hidden (1)
        return order, (~hidden).sum(dim=1)

    # ---- encoder / decoder -------------------------------------------------------------------------

    def encode(self, model_input: Tensor, mask: Tensor, target: Tensor | None = None, seed: int | None = None) -> Latent:
        grid_h, grid_w = self.grid(model_input)
        tokens = self.patch_embed(torch.cat([model_input, mask], dim=1))  # [B, L, D]
        b, _, d = tokens.shape
        tokens = tokens + sincos_position_embedding(grid_h, grid_w, d, tokens.device).to(tokens.dtype)
        order, counts = self.visible_order(mask)
        length = int(counts.max())
        keep = order[:, :length]  # [B, V]
        tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, d))  # [B, V, D]
        valid = torch.arange(length, device=tokens.device)[None, :] < counts[:, None]  # [B, V]
        valid = torch.cat([valid.new_ones(b, 1), valid], dim=1)  # [B, 1 + V] (class token always valid)
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)  # [B, 1 + V, D]
        attn_mask = key_padding_bias(valid, x.dtype)  # [B, 1, 1, 1 + V]: 0 for keys to attend, -inf for padding
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        return self.norm(x) * valid[..., None]  # padding zeroed

    def decode(self, latent: Latent, model_input: Tensor, mask: Tensor) -> Tensor:
        if not isinstance(latent, Tensor):
            raise ValueError(f"{self.config['name']} decodes one token tensor, got a {type(latent).__name__}")
        grid_h, grid_w = self.grid(model_input)
        order, counts = self.visible_order(mask)
        b, num_patches = order.shape
        if latent.shape[:2] != (b, 1 + int(counts.max())):
            raise ValueError(f"latent of shape {tuple(latent.shape)} does not match the visible patches of the mask")
        x = self.decoder_embed(latent)  # [B, 1 + V, Dd]
        dd = x.shape[-1]
        full = self.mask_token.expand(b, num_patches, -1).clone()  # [B, L, Dd]
        # put each visible token back at its patch; a padding slot points at a hidden patch and writes the mask token
        length = x.shape[1] - 1
        valid = (torch.arange(length, device=x.device)[None, :] < counts[:, None])[..., None]  # [B, V, 1]
        visible = torch.where(valid, x[:, 1:], self.mask_token.expand(b, length, -1))  # [B, V, Dd]
        full = full.scatter(1, order[:, :length, None].expand(-1, -1, dd), visible)
        full = full + sincos_position_embedding(grid_h, grid_w, dd, x.device).to(x.dtype)
        x = torch.cat([x[:, :1], full], dim=1)  # [B, 1 + L, Dd]
        for block in self.decoder_blocks:
            x = block(x)
        tokens = self.decoder_norm(x[:, 1:])  # [B, L, Dd]
        patches = self.decoder_pred(tokens)  # [B, L, p * p * 3]
        p = self.patch_size
        image = patches.reshape(b, grid_h, grid_w, p, p, 3).permute(0, 5, 1, 3, 2, 4)  # [B, 3, gh, p, gw, p]
        image = image.reshape(b, 3, grid_h * p, grid_w * p)
        if self.decoder_conv is not None:
            grid = tokens.transpose(1, 2).reshape(b, dd, grid_h, grid_w)  # [B, Dd, gh, gw]
            image = image + self.decoder_conv(grid)  # [B, 3, gh * p, gw * p]
        return torch.sigmoid(image)

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.decode(self.encode(model_input, mask), model_input, mask)

    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(self(model_input, mask), target)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return chain(self.patch_embed.parameters(), [self.cls_token], self.blocks.parameters(), self.norm.parameters())


PRESETS: dict[str, dict[str, Any]] = {
    "mae_tiny": {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2, "decoder_embed_dim": 32,
                 "decoder_depth": 1, "decoder_num_heads": 2, "mlp_ratio": 2.0},
    "mae_conv_tiny": {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2, "decoder_embed_dim": 32,
                      "decoder_depth": 1, "decoder_num_heads": 2, "mlp_ratio": 2.0, "conv_head": 8},
    "mae_small": {"patch_size": 8, "embed_dim": 128, "depth": 4, "num_heads": 4, "decoder_embed_dim": 64,
                  "decoder_depth": 2, "decoder_num_heads": 4},
    "mae_small_p4": {"patch_size": 4, "embed_dim": 128, "depth": 4, "num_heads": 4, "decoder_embed_dim": 64,
                     "decoder_depth": 2, "decoder_num_heads": 4},
    "mae_small_p4_conv": {"patch_size": 4, "embed_dim": 128, "depth": 4, "num_heads": 4, "decoder_embed_dim": 64,
                          "decoder_depth": 2, "decoder_num_heads": 4, "conv_head": 32},
    "mae_base": {"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "decoder_embed_dim": 512,
                 "decoder_depth": 8, "decoder_num_heads": 16},
}


def _build(name: str, overrides: dict[str, Any]) -> MaskedAutoencoder:
    return MaskedAutoencoder(**{**PRESETS[name], **overrides, "name": overrides.get("name", name)})


@MODELS.register()
def mae_tiny(**kwargs: Any) -> MaskedAutoencoder:
    """Patch 4, width 32, 2 + 1 blocks: for tests. Keyword arguments override the preset."""
    return _build("mae_tiny", kwargs)


@MODELS.register()
def mae_conv_tiny(**kwargs: Any) -> MaskedAutoencoder:
    """`mae_tiny` with a convolutional pixel head of 8 channels: for tests."""
    return _build("mae_conv_tiny", kwargs)


@MODELS.register()
def mae_small(**kwargs: Any) -> MaskedAutoencoder:
    """Patch 8, width 128, 4 encoder + 2 decoder blocks: the CPU demo model."""
    return _build("mae_small", kwargs)


@MODELS.register()
def mae_small_p4(**kwargs: Any) -> MaskedAutoencoder:
    """`mae_small` with 4 px patches (256 tokens at 64 px): each token predicts 48 values instead of 192."""
    return _build("mae_small_p4", kwargs)


@MODELS.register()
def mae_small_p4_conv(**kwargs: Any) -> MaskedAutoencoder:
    """`mae_small_p4` with a convolutional pixel head of 32 channels instead of the per-token linear map."""
    return _build("mae_small_p4_conv", kwargs)


@MODELS.register()
def mae_base(**kwargs: Any) -> MaskedAutoencoder:
    """ViT-B/16 encoder with the MAE paper's 8-block decoder of width 512: a GPU-sized model."""
    return _build("mae_base", kwargs)
