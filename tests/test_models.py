"""Every registered I2I model family against the `ImageToImageModel` contract (tiny variants, 32 px, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from imgunlearn.data.tasks import make_task
from imgunlearn.models import create_model, list_models, load_model
from imgunlearn.models.base import ImageToImageModel
from imgunlearn.models.diffusion import DiffusionLatent, PaletteDiffusion
from imgunlearn.models.patch_discriminator import adversarial_losses
from imgunlearn.registry import MODELS

FAMILIES = ("unet", "vqgan", "mae", "diffusion")
TINY = MODELS.list("*_tiny")
SIZE = 32


def as_list(latent):
    return [latent] if isinstance(latent, torch.Tensor) else list(latent)


def batch(task: str = "inpaint", size: int = SIZE, n: int = 3, seed: int = 0):
    """`(model_input, mask, image)` from a fixed random batch under a task."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, size, size, generator=generator)
    settings = {"outpaint": {"ratio": 0.25}, "hybrid": {"ratio": 0.25}, "restore": {"holes": 0}}.get(task, {})
    model_input, mask = make_task(task, **settings)(image, generator)
    return model_input, mask, image


@pytest.fixture(params=TINY)
def model(request) -> ImageToImageModel:
    torch.manual_seed(0)
    return create_model(request.param)


def test_every_family_registers_tiny_and_small():
    for family in FAMILIES:
        assert f"{family}_tiny" in MODELS and f"{family}_small" in MODELS, family
    assert len(TINY) >= len(FAMILIES)


@pytest.mark.parametrize("name", list_models("*_small*"))
def test_small_variants_build_with_their_name(name):
    model = create_model(name)
    assert isinstance(model, ImageToImageModel)
    assert model.config["name"] == name and name.startswith(model.family)


def test_vqgan_small_f2_keeps_half_the_resolution_in_its_latent():
    model = create_model("vqgan_small_f2").eval()
    model_input, mask, _ = batch("inpaint")
    with torch.no_grad():
        latent = model.encode(model_input, mask)
        output = model.decode(latent, model_input, mask)
    assert latent.shape == (3, 8, SIZE // 2, SIZE // 2)
    assert output.shape == (3, 3, SIZE, SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models("*_base"))
def test_base_variants_build(name):
    assert create_model(name).config["name"] == name


@pytest.mark.parametrize("task", ["inpaint", "outpaint", "restore", "hybrid"])
def test_forward_shape_and_range(model, task):
    model_input, mask, _ = batch(task)
    with torch.no_grad():
        output = model(model_input, mask)
    assert output.shape == (3, 3, SIZE, SIZE)
    assert torch.isfinite(output).all() and output.min() >= 0.0 and output.max() <= 1.0


def test_reconstruction_loss_reaches_every_parameter(model):
    model_input, mask, image = batch("hybrid")
    torch.manual_seed(1)
    loss = model.reconstruction_loss(model_input, mask, image)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets a zero gradient"


def test_encoder_and_decoder_split_the_parameters(model):
    encoder = {id(p) for p in model.encoder_parameters()}
    decoder = {id(p) for p in model.decoder_parameters()}
    every = {id(p) for p in model.parameters()}
    assert encoder and decoder
    assert encoder <= every and not encoder & decoder and encoder | decoder == every
    assert len(encoder) == len(list(model.encoder_parameters())), "encoder parameters are listed twice"


def test_latent_depends_on_encoder_parameters_only(model):
    model_input, mask, image = batch("inpaint")
    latent = as_list(model.encode(model_input, mask, target=image, seed=5))
    sum(f.square().mean() for f in latent).backward()
    encoder = {id(p) for p in model.encoder_parameters()}
    for name, p in model.named_parameters():
        if id(p) not in encoder:
            assert p.grad is None, f"decoder parameter {name} influences the latent"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder_parameters())


def test_changing_decoder_keeps_encode_and_changing_encoder_moves_it(model):
    model_input, mask, image = batch("inpaint")
    with torch.no_grad():
        before = as_list(model.encode(model_input, mask, target=image, seed=5))
        for p in model.decoder_parameters():
            p.add_(torch.randn_like(p))
        after = as_list(model.encode(model_input, mask, target=image, seed=5))
        assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        for p in model.encoder_parameters():
            p.add_(0.1 * torch.randn_like(p))
        moved = as_list(model.encode(model_input, mask, target=image, seed=5))
    assert any(not torch.allclose(a, b) for a, b in zip(before, moved, strict=True))


def test_encode_is_deterministic_given_a_seed(model):
    model_input, mask, image = batch("hybrid")
    with torch.no_grad():
        first = as_list(model.encode(model_input, mask, target=image, seed=7))
        second = as_list(model.encode(model_input, mask, target=image, seed=7))
        reference = as_list(model.forget_reference_encode(model_input, mask, image, seed=7))
    assert len(first) == len(second) == len(reference)
    for a, b, r in zip(first, second, reference, strict=True):
        assert torch.equal(a, b) and a.shape == r.shape


def test_decode_of_encode(model):
    model_input, mask, image = batch("outpaint")
    with torch.no_grad():
        decoded = model.decode(model.encode(model_input, mask, target=image, seed=3), model_input, mask)
        output = model(model_input, mask)
    assert decoded.shape == image.shape and decoded.min() >= 0.0 and decoded.max() <= 1.0
    if model.family != "diffusion":  # one deterministic pass: forward is decode(encode(...))
        assert torch.allclose(decoded, output, atol=1e-6)


def test_a_few_steps_reduce_the_reconstruction_loss(model):
    model_input, mask, image = batch("hybrid", n=4)

    def loss():
        torch.manual_seed(11)  # the diffusion family draws timesteps and noise: keep them fixed
        return model.reconstruction_loss(model_input, mask, image)

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        initial = loss().item()
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    with torch.no_grad():
        final = loss().item()
    assert final < 0.9 * initial, (initial, final)


def test_save_and_load_round_trip_exactly(model, tmp_path):
    model_input, mask, _ = batch("hybrid")
    with torch.no_grad():
        for p in model.parameters():  # move off the initialisation so loading must restore real values
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(model(model_input, mask), loaded(model_input, mask))
        for a, b in zip(as_list(model.encode(model_input, mask, seed=2)), as_list(loaded.encode(model_input, mask, seed=2)),
                        strict=True):
            assert torch.equal(a, b)


def test_images_do_not_depend_on_their_batch(model):
    """Per-image results are the same alone or in a batch whose masks differ (MAE pads visible tokens)."""
    model_input, mask, image = batch("hybrid", n=4, seed=3)
    diffusion = isinstance(model, PaletteDiffusion)

    def output(latent, one=slice(None)):  # diffusion: the U-Net's prediction; its x_0 estimate amplifies rounding
        return model.predict(latent) if diffusion else model.decode(latent, model_input[one], mask[one])

    with torch.no_grad():
        latent = model.encode(model_input, mask, target=image, seed=1)
        together = output(latent)
        for i in range(4):
            one = slice(i, i + 1)
            if diffusion:  # the same x_t and timestep for the single image
                single = model.encode_noisy(latent.sample[one], latent.timesteps[one], model_input[one], mask[one])
            else:
                single = model.encode(model_input[one], mask[one])
            assert torch.allclose(together[one], output(single, one), atol=1e-5), i


def test_sides_the_model_cannot_take_raise(model):
    model_input, mask, _ = batch("restore", size=17)
    with pytest.raises(ValueError, match="divisible"):
        model(model_input, mask)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vqgan_tiny", {"block_out_channels": [8, 12]}),
        ("vqgan_tiny", {"commitment_beta": -1.0}),
        ("mae_tiny", {"embed_dim": 30}),
        ("mae_tiny", {"hidden_threshold": 1.0}),
        ("diffusion_tiny", {"down_block_types": ["SkipDownBlock2D", "DownBlock2D"]}),
        ("diffusion_tiny", {"num_inference_steps": 0}),
    ],
)
def test_bad_configs_raise(name, kwargs):
    with pytest.raises(ValueError):
        create_model(name, **kwargs)


# ---- family specifics ------------------------------------------------------------------------------


def test_mae_patch_mask_follows_the_threshold():
    model = create_model("mae_tiny")  # patch 4
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :3] = 1.0  # 75 % of the first patch
    mask[..., 4:, :1] = 1.0  # 25 % of the third patch
    assert model.patch_mask(mask).tolist() == [[True, False, False, False]]
    assert create_model("mae_tiny", hidden_threshold=0.0).patch_mask(mask).tolist() == [[True, False, True, False]]


def test_mae_drops_hidden_patches_and_is_a_vit_autoencoder_without_them():
    model = create_model("mae_tiny")
    model_input, mask, _ = batch("inpaint")  # centred half-side box: 16 of 64 patches hidden
    assert model.encode(model_input, mask).shape == (3, 1 + 64 - 16, 32)
    model_input, mask, _ = batch("restore")
    assert model.encode(model_input, mask).shape == (3, 1 + 64, 32)


@torch.no_grad()
def test_mae_conv_head_lets_a_pixel_see_the_neighbouring_patch_and_the_linear_head_does_not():
    model_input, mask, _ = batch("restore")
    for name, crosses_seams in (("mae_tiny", False), ("mae_conv_tiny", True)):
        torch.manual_seed(0)
        model = create_model(name).eval()
        latent = model.encode(model_input, mask)
        outputs = []
        for shift in (0.0, 1.0):
            def perturb_second_patch(module, args, output, shift=shift):
                output = output.clone()
                output[:, 1] += shift  # the second patch of the first row (no class token here)
                return output

            handle = model.decoder_norm.register_forward_hook(perturb_second_patch)
            outputs.append(model.decode(latent, model_input, mask))
            handle.remove()
        changed = (outputs[0] - outputs[1]).abs().amax(dim=(0, 1)) > 0  # [H, W]
        p = model.patch_size
        assert changed[:p, p:2 * p].all()  # the patch itself
        assert bool(changed[:p, p - 1].any()) is crosses_seams  # the last column of the first patch
    with pytest.raises(ValueError, match="conv_head must be >= 0 channels, got -1"):
        create_model("mae_tiny", conv_head=-1)


def test_vqgan_discriminator_terms_train_only_their_side():
    model = create_model("vqgan_tiny", discriminator_weight=0.1)
    model_input, mask, image = batch("inpaint")
    output, _ = model.quantize_and_decode(model.encode(model_input, mask))
    generator_loss, discriminator_loss = adversarial_losses(model.discriminator, image, output)
    generator_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vq.decoder.parameters())
    model.zero_grad(set_to_none=True)
    discriminator_loss.backward()
    assert all(p.grad is None for p in model.vq.parameters())
    assert any(p.grad is not None for p in model.discriminator.parameters())
    torch.manual_seed(0)
    model.reconstruction_loss(model_input, mask, image).backward()  # the combined objective still reaches all
    assert all(p.grad is not None for p in model.parameters())


@pytest.fixture
def diffusion() -> PaletteDiffusion:
    torch.manual_seed(0)
    return create_model("diffusion_tiny")


def test_diffusion_encode_is_the_unet_down_path(diffusion):
    model_input, mask, image = batch("inpaint")
    with torch.no_grad():
        latent = diffusion.encode(model_input, mask, target=image, seed=4)
        condition = (2.0 * model_input - 1.0) * (1.0 - mask)
        reference = diffusion.unet(torch.cat([latent.sample, condition, mask], dim=1), latent.timesteps).sample
        assert torch.allclose(diffusion.predict(latent), reference, atol=1e-5)
    unet = diffusion.unet
    resnets = sum(len(b.resnets) + (b.downsamplers is not None) for b in unet.down_blocks)
    assert isinstance(latent, DiffusionLatent) and len(latent) == 1 + resnets + 1
    assert latent.temb.shape == (3, 4 * unet.config.block_out_channels[0])


def test_diffusion_seed_fixes_timesteps_and_noise(diffusion):
    model_input, mask, image = batch("inpaint")
    with torch.no_grad():
        a = diffusion.encode(model_input, mask, target=image, seed=1)
        b = diffusion.encode(model_input, mask, target=image, seed=2)
        fresh = [diffusion.encode(model_input, mask, target=image).sample for _ in range(2)]
        start = diffusion.encode(model_input, mask)
    assert not torch.equal(a.sample, b.sample) and not torch.equal(*fresh)
    timesteps, noise = diffusion.draw(image, image.shape, seed=1)
    assert torch.equal(a.timesteps, timesteps)
    assert torch.allclose(a.sample, diffusion.add_noise(2.0 * image - 1.0, noise, timesteps))
    assert (start.timesteps == diffusion.config["num_train_timesteps"] - 1).all()


def test_diffusion_forget_reference_sees_pure_noise_in_the_hidden_region(diffusion):
    model_input, mask, image = batch("inpaint")
    target = torch.rand(image.shape, generator=torch.Generator().manual_seed(9))
    target_input = target * (1.0 - mask)
    with torch.no_grad():
        reference = diffusion.forget_reference_encode(target_input, mask, target, seed=6)
        student = diffusion.encode(target_input, mask, target=target, seed=6)
        nothing_hidden = torch.zeros_like(mask)
        same = diffusion.forget_reference_encode(model_input, nothing_hidden, image, seed=6)
        plain = diffusion.encode(model_input, nothing_hidden, target=image, seed=6)
    timesteps, noise = diffusion.draw(target, target.shape, seed=6)
    hidden = mask.expand_as(noise).bool()
    assert torch.equal(reference.timesteps, student.timesteps)
    assert torch.equal(reference.sample[hidden], noise[hidden])
    assert torch.equal(reference.sample[~hidden], student.sample[~hidden])
    assert not torch.equal(reference.sample[hidden], student.sample[hidden])
    assert all(torch.equal(a, b) for a, b in zip(same, plain, strict=True))


def test_diffusion_sampling_is_seeded(diffusion):
    model_input, mask, _ = batch("inpaint")
    with torch.no_grad():
        first, again = diffusion(model_input, mask), diffusion(model_input, mask)
        other = diffusion(model_input, mask, seed=diffusion.config["sample_seed"] + 1)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusion_decode_inverts_the_prediction_the_loss_trains_towards(prediction_type):
    model = create_model("diffusion_tiny", prediction_type=prediction_type)
    model_input, mask, image = batch("inpaint")
    clean = 2.0 * image - 1.0

    def exact(timesteps, noise):
        alpha_bar = model.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return noise if prediction_type == "epsilon" else alpha_bar.sqrt() * noise - (1.0 - alpha_bar).sqrt() * clean

    latent = model.encode(model_input, mask, target=image, seed=8)
    model.predict = lambda _: exact(*model.draw(image, image.shape, seed=8))
    assert torch.allclose(model.decode(latent, model_input, mask), image, atol=1e-3)
    torch.manual_seed(0)  # reconstruction_loss draws timesteps, then noise, from the global generator
    timesteps = torch.randint(0, model.config["num_train_timesteps"], (image.shape[0],))
    goal = exact(timesteps, torch.randn_like(image))
    model.predict = lambda _: goal
    torch.manual_seed(0)
    assert model.reconstruction_loss(model_input, mask, image) < 1e-10


def test_diffusion_decode_needs_its_latent(diffusion):
    model_input, mask, image = batch("inpaint")
    latent = diffusion.encode(model_input, mask, target=image, seed=0)
    with pytest.raises(ValueError, match="DiffusionLatent"):
        diffusion.decode(list(latent), model_input, mask)


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "model").glob("*.yaml"))


def test_every_family_has_a_model_config():
    assert {path.stem for path in CONFIGS} >= {f"{family}_small" for family in FAMILIES}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_model_configs_build_their_registered_model(path):
    block = yaml.safe_load(path.read_text())["model"]["init_args"]["model"]
    parser = ArgumentParser()
    parser.add_argument("--model", type=ImageToImageModel)
    model = parser.instantiate_classes(parser.parse_object({"model": block})).model
    assert model.config == create_model(path.stem).config


@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
def test_diffusion_noise_and_velocity_from_diffusers_match_the_formulas(beta_schedule):
    """`add_noise` / `velocity` (DDPMScheduler) give exactly what the former hand-written formulas gave."""
    model = create_model("diffusion_tiny", beta_schedule=beta_schedule)
    generator = torch.Generator().manual_seed(4)
    clean = 2.0 * torch.rand(6, 3, 16, 16, generator=generator) - 1.0
    noise = torch.randn(6, 3, 16, 16, generator=generator)
    timesteps = torch.tensor([0, 1, 250, 500, 998, 999])
    alpha_bar = model.alphas_cumprod[timesteps].view(-1, 1, 1, 1).to(clean.dtype)
    assert torch.equal(model.add_noise(clean, noise, timesteps), alpha_bar.sqrt() * clean + (1.0 - alpha_bar).sqrt() * noise)
    assert torch.equal(model.velocity(clean, noise, timesteps), alpha_bar.sqrt() * noise - (1.0 - alpha_bar).sqrt() * clean)


def test_mae_position_embedding_from_timm_matches_the_formula():
    """timm's `build_sincos2d_pos_embed` (interleaved) gives exactly the former hand-written embedding."""
    from imgunlearn.models.mae import sincos_position_embedding

    for grid_h, grid_w, dim in ((4, 4, 32), (3, 5, 16), (8, 2, 64)):
        omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))  # [D/4]
        ys, xs = torch.meshgrid(torch.arange(grid_h, dtype=torch.float32), torch.arange(grid_w, dtype=torch.float32),
                                indexing="ij")
        parts = []
        for coord in (ys.reshape(-1), xs.reshape(-1)):
            angles = coord[:, None] * omega[None, :]  # [L, D/4]
            parts += [angles.sin(), angles.cos()]
        assert torch.equal(sincos_position_embedding(grid_h, grid_w, dim), torch.cat(parts, dim=1))


def test_mae_padding_mask_means_the_same_fused_and_unfused():
    """The additive key-padding mask gives the same tokens whether timm attention runs fused (SDPA) or by hand."""
    torch.manual_seed(0)
    model = create_model("mae_tiny").eval()
    model_input, mask, _ = batch("hybrid", n=4, seed=3)  # images with different numbers of visible patches
    with torch.no_grad():
        fused = model.encode(model_input, mask)
        for block in model.blocks:
            block.attn.fused_attn = False
        unfused = model.encode(model_input, mask)
    assert torch.allclose(fused, unfused, atol=1e-5)


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs" / "model").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_model_configs_state_their_registered_preset(path):
    init_args = yaml.safe_load(path.read_text())["model"]["init_args"]["model"]["init_args"]
    registered = create_model(init_args["name"]).config
    for key, value in init_args.items():
        expected = list(registered[key]) if isinstance(registered[key], (list, tuple)) else registered[key]
        assert value == expected, f"{path.name}: {key}={value!r}, the preset has {registered[key]!r}"
