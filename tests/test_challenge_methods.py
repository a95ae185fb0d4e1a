"""Every registered classifier unlearning method, `resolve_unlearning` and the method configs."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import torch
import yaml

from imgunlearn.challenge.commands import train_original_parser, unlearn_parser
from imgunlearn.challenge.data import FaceAgeDataset, make_loaders, split_faces
from imgunlearn.challenge.methods import CLASSIFIER_METHODS, SSD, ResetFinetune, SalUn, list_methods, resolve_unlearning
from imgunlearn.challenge.models import create_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.training import seeded, train_classifier

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "challenge").glob("*.yaml"))
FAST = {"retrain": {"epochs": 1}, "scrub": {"epochs": 1}, "reset_finetune": {"epochs": 1}}
"""Hyperparameters that keep the tests short (methods not listed run with their defaults)."""


@pytest.fixture(scope="module")
def setting():
    dataset = FaceAgeDataset.from_faces(generate_faces(30, images_per_person=(3, 8), seed=0))
    loaders = make_loaders(split_faces(dataset, forget_people=3, seed=0), batch_size=32, seed=0)
    original = create_classifier("cnn_tiny", seed=0)
    train_classifier(original, loaders["train"], loaders["val"], epochs=2, lr=3e-3, seed=0)
    return original, loaders


def _run(method, original, loaders):
    net = copy.deepcopy(original).train()
    return net, method(net, loaders["retain"], loaders["forget"], loaders["val"])


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_every_method_is_registered():
    assert set(list_methods()) >= {"finetune", "neggrad_plus", "random_label", "scrub", "salun", "ssd",
                                   "bad_teacher", "reset_finetune", "retrain"}


@pytest.mark.parametrize("name", list_methods())
def test_method_moves_weights_in_place_and_stays_finite(setting, name):
    original, loaders = setting
    net, result = _run(resolve_unlearning(name, seed=0, **FAST.get(name, {})), original, loaders)
    assert result is net  # in place, and returned
    moved = sum((a - b).abs().sum().item() for a, b in zip(_weights(net), _weights(original), strict=True))
    assert moved > 0
    assert all(torch.isfinite(p).all() for p in net.parameters())
    with torch.no_grad():
        assert torch.isfinite(net(next(iter(loaders["forget"]))["image"])).all()
    assert not net.training


@pytest.mark.parametrize("name", list_methods())
def test_method_is_deterministic_by_seed(setting, name):
    original, loaders = setting
    a, _ = _run(resolve_unlearning(name, seed=5, **FAST.get(name, {})), original, loaders)
    b, _ = _run(resolve_unlearning(name, seed=5, **FAST.get(name, {})), original, loaders)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))


def test_seed_none_uses_the_callers_random_state(setting):
    original, loaders = setting
    runs = []
    for caller_seed in (1, 1, 2):  # the caller seeds the global RNG and the loaders, as a pool runner does
        with seeded(caller_seed, loaders["retain"], loaders["forget"], loaders["val"]):
            runs.append(_weights(_run(resolve_unlearning("random_label"), original, loaders)[0]))
    assert all(torch.equal(x, y) for x, y in zip(runs[0], runs[1], strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(runs[0], runs[2], strict=True))


def test_salun_holds_unsalient_weights_fixed(setting):
    original, loaders = setting
    method = SalUn(share=0.3, lr=0.05, seed=0)  # momentum and weight decay on: they must not move masked weights
    net, _ = _run(method, original, loaders)
    changed = torch.cat([(a != b).flatten() for a, b in zip(_weights(net), _weights(original), strict=True)])
    assert 0 < changed.float().mean().item() <= 0.3 + 1e-6
    nothing, _ = _run(SalUn(share=0.0, lr=0.05, seed=0), original, loaders)
    assert all(torch.equal(a, b) for a, b in zip(_weights(nothing), _weights(original), strict=True))


def test_ssd_only_dampens(setting):
    original, loaders = setting
    net, _ = _run(SSD(alpha=1.0, seed=0), original, loaders)
    for new, old in zip(_weights(net), _weights(original), strict=True):
        assert (new.abs() <= old.abs() + 1e-7).all() and (new * old >= 0).all()


def test_reset_finetune_last_layers(setting):
    original, loaders = setting
    net, _ = _run(ResetFinetune(mode="last", last_layers=1, epochs=1, seed=0), original, loaders)
    assert not torch.equal(net.fc.weight, original.fc.weight)
    with pytest.raises(ValueError, match="last 99 layers"):
        _run(ResetFinetune(mode="last", last_layers=99, seed=0), original, loaders)
    with pytest.raises(ValueError, match="unknown mode 'all'"):
        ResetFinetune(mode="all")


USER_MODULE = """
import torch

def in_place(net, retain_loader, forget_loader, val_loader):
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)

def returning(net, retain_loader, forget_loader, val_loader):
    new = type(net)(channels=(8, 16, 16, 32))
    new.load_state_dict(net.state_dict())
    with torch.no_grad():
        new.fc.bias.add_(1.0)
    return new

def wrong(net, retain_loader, forget_loader, val_loader):
    return 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_unlearning.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path / "my_unlearning.py"


def test_user_function_in_place_form(setting, user_module):
    original, loaders = setting
    net, result = _run(resolve_unlearning("my_unlearning:in_place"), original, loaders)
    assert result is net
    assert torch.allclose(net.fc.weight, original.fc.weight * 0.5)


def test_user_function_returning_form(setting, user_module):
    original, loaders = setting
    for spec in ("my_unlearning:returning", f"{user_module}:returning"):
        net, result = _run(resolve_unlearning(spec), original, loaders)
        assert result is not net and torch.allclose(result.fc.bias, original.fc.bias + 1.0)
        assert torch.equal(net.fc.bias, original.fc.bias)


def test_builtin_plain_function_is_a_valid_spec(setting):
    original, loaders = setting
    net, result = _run(resolve_unlearning("imgunlearn.challenge.methods.finetune:unlearning"), original, loaders)
    assert result is net and not torch.equal(net.fc.weight, original.fc.weight)


def test_resolve_errors(setting, user_module):
    original, loaders = setting
    with pytest.raises(ValueError, match="unknown classifier unlearning method 'forget_all'"):
        resolve_unlearning("forget_all")
    with pytest.raises(ValueError, match="no hyperparameter 'lrate'"):
        resolve_unlearning("finetune", lrate=0.1)
    with pytest.raises(ValueError, match="registered methods only"):
        resolve_unlearning("my_unlearning:in_place", epochs=2)
    with pytest.raises(ValueError, match="no function 'missing'"):
        resolve_unlearning("my_unlearning:missing")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        resolve_unlearning("no_such_module:f")
    with pytest.raises(FileNotFoundError, match="absent.py"):
        resolve_unlearning("absent.py:f")
    with pytest.raises(TypeError, match="returned int"):
        _run(resolve_unlearning("my_unlearning:wrong"), original, loaders)
    with pytest.raises(ValueError, match="lr must be positive"):
        resolve_unlearning("scrub", lr=0.0)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_challenge_configs_are_valid(path):
    values = yaml.safe_load(path.read_text())
    if "method" in values:
        assert values["method"] in CLASSIFIER_METHODS
        resolve_unlearning(values["method"], **values.get("hyperparameters", {}))
        parser = unlearn_parser()
    else:
        parser = train_original_parser()
    dests = {a.dest for a in parser._actions} | {"hyperparameters"}
    assert {k.replace("-", "_") for k in values} <= dests


def test_there_is_a_config_per_method():
    methods = {yaml.safe_load(p.read_text()).get("method") for p in CONFIGS}
    assert set(list_methods()) <= methods
