"""The U-Net's `skips` setting: which levels pass a skip connection to the decoder (default: all, as before)."""

from __future__ import annotations

import json

import pytest
import torch

import imgunlearn as u
from imgunlearn.models import create_model, load_model
from imgunlearn.models.unet import UNet


def inputs(size: int = 16, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=generator), (torch.rand(n, 1, size, size, generator=generator) > 0.7).float()


def output_with_perturbed_skip(model: UNet, level: int) -> torch.Tensor:
    """The output when level `level`'s features are perturbed where the decoder reads them as a skip, while the
    down path still receives the unperturbed features."""
    clean = {}

    def perturb(module, args, out):
        clean["features"] = out
        return out + torch.randn_like(out)

    def restore(module, args):
        return (clean["features"],)

    hooks = [model.down_blocks[level].register_forward_hook(perturb),
             model.downsamples[level].register_forward_pre_hook(restore)]
    try:
        return model(*inputs())
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def test_without_the_full_resolution_skip_the_decoder_ignores_full_resolution_features():
    torch.manual_seed(0)
    full = create_model("unet_small")
    torch.manual_seed(0)
    noskip = create_model("unet_small_noskip0")
    assert noskip.config == {"name": "unet_small_noskip0", "channels": [16, 32, 64], "skips": [False, True]}
    for model, reads_full_resolution in ((full, True), (noskip, False)):
        model.eval()
        reference = model(*inputs())
        torch.manual_seed(1)
        assert torch.equal(output_with_perturbed_skip(model, 0), reference) is not reads_full_resolution
        torch.manual_seed(1)
        assert not torch.equal(output_with_perturbed_skip(model, 1), reference)  # the half-resolution skip is read


@torch.no_grad()
def test_latent_holds_only_the_kept_skips_and_the_output_keeps_its_shape():
    model = UNet([8, 16, 32], skips=[True, False])
    x, mask = inputs()
    latent = model.encode(x, mask)
    assert [tuple(t.shape) for t in latent] == [(2, 8, 16, 16), (2, 32, 4, 4)]
    assert model(x, mask).shape == (2, 3, 16, 16)
    none = UNet([8, 16], skips=[False])
    assert [tuple(t.shape) for t in none.encode(x, mask)] == [(2, 16, 8, 8)]
    assert none(x, mask).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="decodes 1 skips and the bottleneck, got 3 feature maps"):
        model.decode([*latent, latent[-1]], x, mask)


def test_default_keeps_every_skip_and_the_former_config_and_tensors():
    model = create_model("unet_small")
    assert model.config == {"name": "unet_small", "channels": [16, 32, 64]}
    assert model.skips == [True, True]
    assert UNet([16, 32, 64], skips=[True, True]).config == {"name": "unet", "channels": [16, 32, 64]}
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["up_blocks.1.conv1.weight"] == (16, 32, 3, 3)  # the full-resolution block reads 16 + 16 channels
    assert create_model("unet_small_noskip0").state_dict()["up_blocks.1.conv1.weight"].shape == (16, 16, 3, 3)


def test_saved_models_round_trip_and_former_configs_load(tmp_path):
    x, mask = inputs()
    task = u.make_task("restore")
    for name, model in (("noskip", create_model("unet_small_noskip0")), ("mid", create_model("unet_small", channels=[8, 16, 32], skips=[True, False]))):
        saved = u.save(model.eval(), tmp_path / name, task)
        loaded = load_model(saved)
        assert loaded.skips == model.skips and torch.equal(loaded(x, mask), model(x, mask))
    full = u.save(create_model("unet_tiny").eval(), tmp_path / "full", task)
    assert json.loads((full / "config.json").read_text()) == {"channels": [8, 16], "name": "unet_tiny"}
    assert load_model(full).skips == [True]
    config = json.loads((tmp_path / "noskip" / "config.json").read_text())
    (tmp_path / "noskip" / "config.json").write_text(json.dumps({**config, "skips": [True, True]}))
    with pytest.raises(ValueError, match="does not match its config: tensor 'up_blocks.1.conv1.weight'"):
        load_model(tmp_path / "noskip")


@pytest.mark.parametrize("skips", [[True], [True, True, True], [1, 0], ["no", True]])
def test_bad_skips_are_refused_by_value(skips):
    with pytest.raises(ValueError, match=rf"skips must give one true/false flag per level .*2 for channels.*{skips}"):
        UNet([8, 16, 32], skips=skips)


@torch.no_grad()
def test_without_any_skip_the_decoder_reads_only_the_bottleneck():
    model = create_model("unet_small_noskip").eval()
    assert model.config == {"name": "unet_small_noskip", "channels": [16, 32, 64], "skips": [False, False]}
    x, mask = inputs()
    (bottleneck,) = model.encode(x, mask)
    assert bottleneck.shape[-2:] == (x.shape[-2] // 4, x.shape[-1] // 4)
    assert torch.equal(model.decode([bottleneck], x, mask), model(x, mask))
