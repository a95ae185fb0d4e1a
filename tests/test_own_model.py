"""A user's own encoder and decoder (classes defined here, not registered) unlearned through `EncoderDecoder`:
from the Python API and from `imgunlearn unlearn` with a YAML naming the classes; saved and loaded only with
trust; the decoder bit-identical after encoder_teacher."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from cli_helpers import CONFIGS, DATA
from torch import Tensor, nn

import imgunlearn as u
from imgunlearn.cli import main
from imgunlearn.lightning_cli import RUN_DIR_ENV
from imgunlearn.models import EncoderDecoder, load_model
from imgunlearn.runs import RunDirectoryError

TINY = {"size": 16, "num_forget": 6, "num_retain": 6, "num_holdout_forget": 2, "num_holdout_retain": 2,
        "batch_size": 2, "seed": 1}


class TinyEncoder(nn.Module):
    """Input and mask (4 channels) -> a full- and a half-resolution map."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, width, 3, padding=1)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        fine = F.relu(self.stem(x))
        return fine, F.relu(self.down(fine))


class TinyDecoder(nn.Module):
    """The two maps -> image logits."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.up = nn.Conv2d(2 * width, width, 3, padding=1)
        self.head = nn.Conv2d(2 * width, 3, 1)

    def forward(self, latent: list[Tensor]) -> Tensor:
        fine, coarse = latent
        return self.head(torch.cat([F.relu(self.up(F.interpolate(coarse, scale_factor=2.0))), fine], dim=1))


class PairEncoder(nn.Module):
    """Called as `encoder(model_input, mask)`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.conv(torch.cat([model_input, mask], dim=1))


class TiedDecoder(nn.Module):
    """A decoder that reuses its encoder's convolution (tied weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, latent: Tensor) -> Tensor:
        return self.conv(latent)


class L1Model(EncoderDecoder):
    """A subclass with its own loss (same constructor)."""

    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        return (self(model_input, mask) - target).abs().sum()


def own_model(width: int = 6) -> EncoderDecoder:
    torch.manual_seed(0)
    return EncoderDecoder(TinyEncoder(width), TinyDecoder(width), encoder_args={"width": width},
                          decoder_args={"width": width}, output="sigmoid")


def part_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_adapter_meets_the_model_contract():
    model = own_model()
    x, mask = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
    latent = model.encode(x, mask)
    assert [tuple(t.shape) for t in latent] == [(2, 6, 16, 16), (2, 12, 8, 8)]
    out = model(x, mask)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, model.decode(latent, x, mask))
    assert {id(p) for p in model.encoder_parameters()} == {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in model.decoder_parameters()} == {id(p) for p in model.decoder.parameters()}
    model.reconstruction_loss(x, mask, x).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_adapter_calls_the_encoder_as_told_and_refuses_what_breaks_the_contract():
    x, mask = torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    pair = EncoderDecoder(PairEncoder(), nn.Identity(), encoder_input="pair", output="clamp")
    assert torch.equal(pair(x, mask), pair.encoder(x, mask).clamp(0, 1))
    image_only = EncoderDecoder(nn.Identity(), nn.Identity(), encoder_input="image")
    assert torch.equal(image_only(x, mask), x)
    with pytest.raises(ValueError, match="TinyEncoder.*does not rebuild|TinyEncoder.*other tensors"):
        EncoderDecoder(TinyEncoder(6), TinyDecoder(6), decoder_args={"width": 6})  # encoder_args missing
    shared = TiedDecoder()
    with pytest.raises(ValueError, match="share 2 parameters"):
        EncoderDecoder(shared.conv, shared, encoder_args={"in_channels": 3, "out_channels": 3, "kernel_size": 1})
    with pytest.raises(ValueError, match="must return images shaped like the input"):
        EncoderDecoder(TinyEncoder(), nn.Identity())(x, mask)  # the decoder returns the encoder's tuple
    with pytest.raises(ValueError, match="unknown encoder_input 'mask'"):
        EncoderDecoder(nn.Identity(), nn.Identity(), encoder_input="mask")
    with pytest.raises(ValueError, match="cannot import the class 'nowhere.Encoder'"):
        EncoderDecoder("nowhere.Encoder", nn.Identity())
    with pytest.raises(ValueError, match="'torch.tensor' is not an nn.Module class"):
        EncoderDecoder("torch.tensor", nn.Identity())


def test_python_api_unlearns_keeps_the_decoder_and_saves_behind_trust(tmp_path):
    data = u.ForgetRetainDataModule(source="synthetic", **TINY)
    original = u.pretrain(own_model(), data, max_steps=2, accelerator="cpu", progress=False)
    decoder_before, encoder_before = part_state(original.decoder), part_state(original.encoder)
    unlearned = u.unlearn(original, data, method="encoder_teacher", max_steps=3, accelerator="cpu", progress=False)
    after = unlearned.decoder.state_dict()
    assert all(torch.equal(decoder_before[k], after[k]) for k in decoder_before)  # bit-identical
    assert not all(torch.equal(encoder_before[k], v) for k, v in unlearned.encoder.state_dict().items())

    saved = u.save(unlearned, tmp_path / "unlearned", data.task)
    config = json.loads((saved / "config.json").read_text())
    assert config["encoder"] == f"{__name__}.TinyEncoder" and config["decoder_args"] == {"width": 6}
    with pytest.raises(ValueError, match=rf"names classes to import \({__name__}.TinyEncoder.*trust_class_path=True"):
        load_model(saved)
    loaded = load_model(saved, trust_class_path=True)
    x, mask = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
    assert type(loaded.encoder) is TinyEncoder and torch.equal(loaded(x, mask), unlearned(x, mask))

    reloaded = EncoderDecoder(f"{__name__}.TinyEncoder", f"{__name__}.TinyDecoder", {"width": 6}, {"width": 6},
                              output="sigmoid", weights=str(saved))  # class paths written by the caller
    assert torch.equal(reloaded(x, mask), unlearned(x, mask))


def test_a_subclass_is_saved_and_loaded_as_itself(tmp_path):
    model = L1Model(TinyEncoder(), TinyDecoder())
    saved = model.save_pretrained(tmp_path / "m")
    loaded = load_model(saved, trust_class_path=True)
    assert type(loaded) is L1Model
    assert json.loads((saved / "config.json").read_text())["model_class"] == f"{__name__}.L1Model"


def test_weights_are_read_from_safetensors_only(tmp_path):
    model = own_model()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="safetensors files only"):
        own_model().load_weights(tmp_path / "weights.pt")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        own_model().load_weights(tmp_path / "missing.safetensors")
    other = EncoderDecoder(TinyEncoder(), TinyDecoder()).save_pretrained(tmp_path / "narrow")
    with pytest.raises(ValueError, match="does not match its config: tensor 'encoder.stem.weight'"):
        own_model().load_weights(other)


def test_cli_unlearns_a_model_named_by_class_path_in_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, "unset")
    monkeypatch.chdir(tmp_path)
    original = own_model(width=4)
    u.save(original, tmp_path / "original", u.make_task("restore"))
    config = {"model": {"init_args": {"model": {
        "class_path": "imgunlearn.models.EncoderDecoder",
        "init_args": {"encoder": f"{__name__}.TinyEncoder", "encoder_args": {"width": 4},
                      "decoder": f"{__name__}.TinyDecoder", "decoder_args": {"width": 4}, "output": "sigmoid",
                      "weights": str(tmp_path / "original" / "model.safetensors")}}}}}
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(config))
    args = ["unlearn", "--config", f"{CONFIGS}/method/encoder_teacher.yaml", "--config", str(tmp_path / "own.yaml"),
            *DATA, "--trainer.max_steps", "3", "--trainer.logger", "false"]
    with pytest.raises(RunDirectoryError, match="contains the input"):  # the weights are an input of the run
        main([*args, "--out", "original", "--overwrite", "true"])
    assert (tmp_path / "original" / "model.safetensors").is_file()
    assert main([*args, "--out", "run"]) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "complete"
    with pytest.raises(ValueError, match="trust_class_path"):
        load_model(tmp_path / "run" / "model")
    unlearned = load_model(tmp_path / "run" / "model", trust_class_path=True)
    before, after = original.decoder.state_dict(), unlearned.decoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not all(torch.equal(v, unlearned.encoder.state_dict()[k]) for k, v in original.encoder.state_dict().items())
