"""The one persistence layer: both tracks' saved models, config checked against the weights, devices, corrupt files."""

from __future__ import annotations

import json

import pytest
import torch

from imgunlearn import persistence
from imgunlearn.challenge.models import create_classifier, load_classifier, save_classifier
from imgunlearn.models import create_model, load_model
from imgunlearn.persistence import CONFIG_NAME, WEIGHTS_NAME, read_header
from imgunlearn.registry import MODELS


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _rewrite_config(directory, **changes) -> None:
    path = directory / CONFIG_NAME
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, **changes}))


def test_both_tracks_write_the_same_files_and_round_trip(tmp_path):
    torch.manual_seed(0)
    i2i, net = _perturbed(create_model("unet_tiny")), _perturbed(create_classifier("cnn_tiny", seed=1))
    i2i.save_pretrained(tmp_path / "i2i")
    save_classifier(net, tmp_path / "net")
    for directory in (tmp_path / "i2i", tmp_path / "net"):
        assert sorted(p.name for p in directory.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    for original, loaded in ((i2i, load_model(tmp_path / "i2i")), (net, load_classifier(tmp_path / "net"))):
        assert loaded.config == original.config and not loaded.training
        for (name, a), (name_b, b) in zip(original.state_dict().items(), loaded.state_dict().items(), strict=True):
            assert name == name_b and torch.equal(a, b), name


def test_header_lists_every_tensor_with_its_shape(tmp_path):
    net = create_classifier("cnn_tiny")
    save_classifier(net, tmp_path)
    header = read_header(tmp_path / WEIGHTS_NAME)
    assert {k: list(shape) for k, (_, shape) in header.items()} == {k: list(v.shape) for k, v in net.state_dict().items()}
    assert header["fc.weight"][0] == "F32"


@pytest.mark.parametrize("track", ["classifier", "i2i"])
def test_a_huge_config_fails_at_once_naming_file_and_tensor(tmp_path, track):
    """200000 channels would need terabytes; the config is refused before anything is allocated."""
    if track == "classifier":
        save_classifier(create_classifier("cnn_tiny"), tmp_path)
        _rewrite_config(tmp_path, channels=[200000, 200000])
        load = load_classifier
    else:
        create_model("unet_tiny").save_pretrained(tmp_path)
        _rewrite_config(tmp_path, channels=[200000, 200000])
        load = load_model
    with pytest.raises(ValueError, match=r"model\.safetensors does not match its config") as info:
        load(tmp_path)
    assert str(tmp_path / WEIGHTS_NAME) in str(info.value) and "200000" in str(info.value)


def test_a_config_of_another_architecture_is_refused_by_name(tmp_path):
    save_classifier(create_classifier("cnn_tiny"), tmp_path)
    _rewrite_config(tmp_path, name="resnet18")
    with pytest.raises(ValueError, match=r"does not match its config: tensor 'fc.weight' has shape \[10, 32\] in the file, but the config builds \[10, 512\]"):
        load_classifier(tmp_path)
    create_model("unet_tiny").save_pretrained(tmp_path / "i2i")
    _rewrite_config(tmp_path / "i2i", name="mae_tiny")
    with pytest.raises(ValueError, match=r"i2i/config.json does not describe a valid imgunlearn model: .*'channels'"):
        load_model(tmp_path / "i2i")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "bad_header"])
def test_corrupt_weights_give_an_error_naming_the_file(tmp_path, damage):
    save_classifier(create_classifier("cnn_tiny"), tmp_path)
    path = tmp_path / WEIGHTS_NAME
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) - 100], "garbage": b"\x93NUMPY" + bytes(200), "empty": b"",
                      "bad_header": data[:8] + b"{" * (len(data) - 8)}[damage])
    with pytest.raises(ValueError, match="safetensors|corrupt") as info:
        load_classifier(tmp_path)
    assert str(path) in str(info.value)


def test_missing_files_and_configs_without_a_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_model(tmp_path)
    create_model("unet_tiny").save_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"channels": [8, 16]}))
    with pytest.raises(ValueError, match="no 'name' entry"):
        load_model(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="no `config` naming"):
        save_classifier(torch.nn.Linear(2, 2), tmp_path / "x")


def test_map_location_builds_and_loads_on_that_device(tmp_path, monkeypatch):
    """The model is constructed under the target device (not built on the CPU and copied)."""
    create_model("unet_tiny").save_pretrained(tmp_path)
    seen = []
    factory = MODELS.get("unet_tiny")
    monkeypatch.setitem(MODELS._entries, "unet_tiny", lambda **kw: (seen.append(torch.empty(0).device), factory(**kw))[1])
    real_load = persistence.load_file
    monkeypatch.setattr(persistence, "load_file", lambda path, device: {
        k: v.to(device) for k, v in real_load(path).items()})  # safetensors itself cannot read into "meta"
    model = load_model(tmp_path, map_location="meta")
    assert [d.type for d in seen] == ["meta", "meta"]  # the shape check, then the real build
    assert {p.device.type for p in model.parameters()} == {"meta"}
    seen.clear()
    model = load_model(tmp_path)
    assert [d.type for d in seen] == ["meta", "cpu"]
    assert {p.device.type for p in model.parameters()} == {"cpu"}
