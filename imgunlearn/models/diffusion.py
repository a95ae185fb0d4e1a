"""`diffusion`: Palette-style conditional inpainting with diffusers' `UNet2DModel` and `DDPMScheduler`.

The U-Net predicts the noise `ε` of `x_t = sqrt(ᾱ_t) · x_0 + sqrt(1 - ᾱ_t) · ε` (or, with
`prediction_type="v_prediction"`, `v`), where `x_0` is the full clean image scaled to [-1, 1]. Its 7 input
channels are `x_t`, the condition (model input scaled to [-1, 1], hidden pixels 0) and the mask. Unlike
Palette's inpainting, the visible region of `x_t` is noised too (not pasted from the clean image): in the
`restore` task every pixel is degraded, so the clean image is never given. `reconstruction_loss` is the
denoising MSE at uniformly drawn timesteps; `forward` samples with a few deterministic DDIM steps
(`num_inference_steps`, seeded by `sample_seed`). Every variant has self-attention in the U-Net's mid
block; `AttnDownBlock2D` / `AttnUpBlock2D` add more.

Encoder = time embedding + `conv_in` + down blocks + mid block; decoder = up blocks + output norm and conv.
`encode` runs the encoder explicitly and returns a `DiffusionLatent`: the list of every residual the down
path produces (the `conv_in` output, each ResNet and downsampler output) plus the mid-block output: the
feature maps methods compare. It also carries what the up path and the `x_0` estimate consume besides
those maps: the time embedding `temb` (made by encoder parameters), `x_t` and the timesteps. So
`decode(encode(...))` is one denoising step: the U-Net's `x_0` estimate from `x_t`, in [0, 1].

`encode(model_input, mask, target, seed)` draws timesteps and then noise, in that order, from
`torch.Generator().manual_seed(seed)` (a fresh draw from the global generator when `seed` is None), so a
student and its reference called with the same seed noise their targets identically. Without a `target` the
encoder sees the start of sampling: pure noise at the last timestep.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import Tensor, nn

from imgunlearn.models.base import ImageToImageModel, Latent
from imgunlearn.registry import MODELS

DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D")
PREDICTION_TYPES = ("epsilon", "v_prediction")


class DiffusionLatent(list):
    """The U-Net's down-path residuals and mid-block output (a list of `[B, C, h, w]` maps), plus context.

    Attributes:
        temb: Time embedding `[B, D_t]` the up blocks consume.
        sample: The noisy image `x_t` `[B, 3, H, W]` the features were computed from.
        timesteps: Timesteps `[B]` of `x_t`.
    """

    def __init__(self, features: Sequence[Tensor], temb: Tensor, sample: Tensor, timesteps: Tensor) -> None:
        super().__init__(features)
        self.temb, self.sample, self.timesteps = temb, sample, timesteps


class PaletteDiffusion(ImageToImageModel):
    """Conditional denoising diffusion model for image completion.

    Args:
        block_out_channels: U-Net channels per level, finest first.
        down_block_types: `DownBlock2D` or `AttnDownBlock2D` per level.
        up_block_types: `UpBlock2D` or `AttnUpBlock2D` per level, coarsest first.
        layers_per_block: ResNet layers per down block (up blocks have one more).
        norm_num_groups: GroupNorm groups (must divide every width).
        attention_head_dim: Channels per attention head.
        num_train_timesteps: Length of the training noise schedule.
        beta_schedule: diffusers beta schedule (`linear`, `scaled_linear`, `squaredcos_cap_v2`).
        prediction_type: What the U-Net predicts: `epsilon` (the noise, as in Palette) or `v_prediction`
            (`v = sqrt(ᾱ) · ε - sqrt(1 - ᾱ) · x_0`, better conditioned at high noise for few-step sampling).
        num_inference_steps: DDIM steps of `forward`.
        sample_seed: Seed of the initial noise of `forward`.
        name: Registry name, stored in the config.
    """

    family = "diffusion"

    def __init__(
        self,
        block_out_channels: Sequence[int] = (32, 64, 64),
        down_block_types: Sequence[str] = ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types: Sequence[str] = ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        attention_head_dim: int = 8,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        prediction_type: str = "epsilon",
        num_inference_steps: int = 10,
        sample_seed: int = 0,
        name: str = "diffusion",
    ) -> None:
        super().__init__()
        block_out_channels, down_block_types, up_block_types = (
            [int(c) for c in block_out_channels], list(down_block_types), list(up_block_types))
        if not len(block_out_channels) == len(down_block_types) == len(up_block_types):
            raise ValueError(f"block_out_channels, down_block_types and up_block_types differ in length: "
                             f"{block_out_channels}, {down_block_types}, {up_block_types}")
        if any(c < 1 or c % norm_num_groups for c in block_out_channels):
            raise ValueError(f"block_out_channels must be positive multiples of norm_num_groups={norm_num_groups}, "
                             f"got {block_out_channels}")
        bad = [t for t in down_block_types if t not in DOWN_BLOCKS] + [t for t in up_block_types if t not in UP_BLOCKS]
        if bad:
            raise ValueError(f"unsupported block types {bad}; down: {DOWN_BLOCKS}, up: {UP_BLOCKS}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; known: {', '.join(PREDICTION_TYPES)}")
        if not 1 <= num_inference_steps <= num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, num_train_timesteps={num_train_timesteps}], "
                             f"got {num_inference_steps}")
        self.config: dict[str, Any] = {
            "name": name, "block_out_channels": block_out_channels, "down_block_types": down_block_types,
            "up_block_types": up_block_types, "layers_per_block": layers_per_block, "norm_num_groups": norm_num_groups,
            "attention_head_dim": attention_head_dim, "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule, "prediction_type": prediction_type,
            "num_inference_steps": num_inference_steps, "sample_seed": sample_seed,
        }
        self.unet = UNet2DModel(
            in_channels=7,
            out_channels=3,
            block_out_channels=tuple(block_out_channels),
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
        )
        self.scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule)
        self.register_buffer("alphas_cumprod", self.scheduler.alphas_cumprod.clone().float(), persistent=False)

    # ---- noise -------------------------------------------------------------------------------------

    def draw(self, target: Tensor | None, shape: torch.Size, seed: int | None) -> tuple[Tensor, Tensor]:
        """Timesteps `[B]` and noise `[B, 3, H, W]`, drawn in that order (last timestep when `target` is None)."""
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        steps = self.config["num_train_timesteps"]
        if target is None:
            timesteps = torch.full((shape[0],), steps - 1, dtype=torch.long)
        else:
            timesteps = torch.randint(0, steps, (shape[0],), generator=generator)
        noise = torch.randn(shape, generator=generator)
        return timesteps.to(self.alphas_cumprod.device), noise.to(self.alphas_cumprod.device)

    def add_noise(self, clean: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """`x_t` of a clean image `[B, 3, H, W]` in [-1, 1] (diffusers' `DDPMScheduler.add_noise`)."""
        return self.scheduler.add_noise(clean, noise, timesteps)

    def velocity(self, clean: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """The v-prediction target `sqrt(ᾱ_t) · ε - sqrt(1 - ᾱ_t) · x_0` (diffusers' `DDPMScheduler.get_velocity`)."""
        return self.scheduler.get_velocity(clean, noise, timesteps)

    # ---- the U-Net, written out --------------------------------------------------------------------

    def encode_noisy(self, sample: Tensor, timesteps: Tensor, model_input: Tensor, mask: Tensor) -> DiffusionLatent:
        """The encoder on a given `x_t` `[B, 3, H, W]` at `timesteps` `[B]`."""
        size = 2 ** (len(self.unet.down_blocks) - 1)
        if model_input.shape[-1] % size or model_input.shape[-2] % size:
            raise ValueError(f"{self.config['name']} needs sides divisible by {size}, "
                             f"got {tuple(model_input.shape[-2:])}")
        unet = self.unet
        temb = unet.time_embedding(unet.time_proj(timesteps).to(sample.dtype))  # [B, D_t]
        condition = (2.0 * model_input - 1.0) * (1.0 - mask)  # [B, 3, H, W], hidden pixels 0
        hidden = unet.conv_in(torch.cat([sample, condition, mask], dim=1))  # [B, C_0, H, W]
        residuals = [hidden]
        for block in unet.down_blocks:
            hidden, block_residuals = block(hidden_states=hidden, temb=temb)
            residuals.extend(block_residuals)
        hidden = unet.mid_block(hidden, temb)
        return DiffusionLatent([*residuals, hidden], temb=temb, sample=sample, timesteps=timesteps)

    def predict(self, latent: DiffusionLatent) -> Tensor:
        """The decoder: the up path from the latent's residuals, mid output and `temb` -> the U-Net's prediction
        (`ε` or `v`, see `prediction_type`) `[B, 3, H, W]`."""
        if not isinstance(latent, DiffusionLatent):
            raise ValueError(f"{self.config['name']} decodes the DiffusionLatent `encode` returns, "
                             f"got a {type(latent).__name__}")
        *residuals, hidden = latent
        for block in self.unet.up_blocks:
            count = len(block.resnets)
            block_residuals, residuals = tuple(residuals[-count:]), residuals[:-count]
            hidden = block(hidden, block_residuals, latent.temb)
        return self.unet.conv_out(self.unet.conv_act(self.unet.conv_norm_out(hidden)))

    # ---- the contract ------------------------------------------------------------------------------

    def encode(self, model_input: Tensor, mask: Tensor, target: Tensor | None = None, seed: int | None = None) -> Latent:
        timesteps, noise = self.draw(target, model_input.shape, seed)
        sample = noise if target is None else self.add_noise(2.0 * target - 1.0, noise, timesteps)
        return self.encode_noisy(sample, timesteps, model_input, mask)

    def forget_reference_encode(
        self, masked_input: Tensor, mask: Tensor, masked_target: Tensor, seed: int | None = None
    ) -> Latent:
        """The reference's encoding of a forget target: pure noise inside the hidden region.

        The condition is `masked_input` (the model input made from the masking target), as in every family.
        `x_t` is the masking target noised with the same timesteps and noise as `encode(..., seed)` draws,
        except inside the hidden region, where it is that noise alone: the reference gets no trace of any
        content to complete there, while the student sees its forget image normally noised.

        The paper's teacher keeps the forget image's own condition; this signature receives only the input
        made from the masking target, so the condition follows the masking target as in the other families.
        With `region="box"` targets (the forget image outside the region) both show the same content there, and
        with nothing hidden this is `encode(masked_input, mask, masked_target, seed)`.
        """
        timesteps, noise = self.draw(masked_target, masked_input.shape, seed)
        sample = self.add_noise(2.0 * masked_target - 1.0, noise, timesteps)
        sample = mask * noise + (1.0 - mask) * sample
        return self.encode_noisy(sample, timesteps, masked_input, mask)

    def decode(self, latent: Latent, model_input: Tensor, mask: Tensor) -> Tensor:
        """One denoising step: the `x_0` estimate from the latent's `x_t`, in [0, 1]."""
        prediction = self.predict(latent)
        alpha_bar = self.alphas_cumprod[latent.timesteps].view(-1, 1, 1, 1).to(prediction.dtype)
        if self.config["prediction_type"] == "epsilon":
            clean = (latent.sample - (1.0 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()
        else:
            clean = alpha_bar.sqrt() * latent.sample - (1.0 - alpha_bar).sqrt() * prediction
        return (clean.clamp(-1.0, 1.0) + 1.0) / 2.0

    def forward(self, model_input: Tensor, mask: Tensor, seed: int | None = None) -> Tensor:
        """Deterministic DDIM sampling in `num_inference_steps` steps from noise seeded by `seed`
        (default `sample_seed`); the noise is drawn for the whole batch at once."""
        scheduler = DDIMScheduler(
            num_train_timesteps=self.config["num_train_timesteps"],
            beta_schedule=self.config["beta_schedule"],
            prediction_type=self.config["prediction_type"],
            timestep_spacing="trailing",
        )
        scheduler.set_timesteps(self.config["num_inference_steps"], device=model_input.device)
        seed = self.config["sample_seed"] if seed is None else seed
        generator = torch.Generator().manual_seed(seed)
        sample = torch.randn(model_input.shape, generator=generator).to(model_input)  # x_T
        for t in scheduler.timesteps:
            timesteps = t.expand(model_input.shape[0]).to(model_input.device)
            prediction = self.predict(self.encode_noisy(sample, timesteps, model_input, mask))
            sample = scheduler.step(prediction, t, sample).prev_sample
        return (sample.clamp(-1.0, 1.0) + 1.0) / 2.0

    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """Denoising MSE of the prediction (`ε` or `v`) at timesteps and noise drawn from the global generator."""
        steps = self.config["num_train_timesteps"]
        timesteps = torch.randint(0, steps, (target.shape[0],), device=target.device)
        noise = torch.randn_like(target)
        clean = 2.0 * target - 1.0
        sample = self.add_noise(clean, noise, timesteps)
        goal = noise if self.config["prediction_type"] == "epsilon" else self.velocity(clean, noise, timesteps)
        return F.mse_loss(self.predict(self.encode_noisy(sample, timesteps, model_input, mask)), goal)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        unet = self.unet
        parts = [unet.time_embedding, unet.conv_in, unet.down_blocks, unet.mid_block]
        if unet.class_embedding is not None:
            parts.append(unet.class_embedding)
        return chain.from_iterable(part.parameters() for part in parts)


PRESETS: dict[str, dict[str, Any]] = {
    "diffusion_tiny": {"block_out_channels": [16, 32], "down_block_types": ["DownBlock2D", "DownBlock2D"],
                       "up_block_types": ["UpBlock2D", "UpBlock2D"], "num_inference_steps": 4},
    "diffusion_small": {"block_out_channels": [32, 64, 64], "down_block_types": ["DownBlock2D"] * 3,
                        "up_block_types": ["UpBlock2D"] * 3, "num_inference_steps": 10,
                        "prediction_type": "v_prediction"},
    "diffusion_base": {"block_out_channels": [64, 128, 256, 256], "layers_per_block": 2, "norm_num_groups": 32,
                       "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
                       "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
                       "attention_head_dim": 32, "num_inference_steps": 50},
}


def _build(name: str, overrides: dict[str, Any]) -> PaletteDiffusion:
    return PaletteDiffusion(**{**PRESETS[name], **overrides, "name": overrides.get("name", name)})


@MODELS.register()
def diffusion_tiny(**kwargs: Any) -> PaletteDiffusion:
    """Two levels of 16/32 channels, 4 sampling steps: for tests. Keyword arguments override the preset."""
    return _build("diffusion_tiny", kwargs)


@MODELS.register()
def diffusion_small(**kwargs: Any) -> PaletteDiffusion:
    """Three levels of 32/64/64 channels, attention in the mid block only, v-prediction, 10 sampling steps: the CPU
    demo model (at this scale v-prediction samples far better than ε-prediction in few steps)."""
    return _build("diffusion_small", kwargs)


@MODELS.register()
def diffusion_base(**kwargs: Any) -> PaletteDiffusion:
    """Four levels up to 256 channels, two layers per block, 50 sampling steps: a GPU-sized model."""
    return _build("diffusion_base", kwargs)
