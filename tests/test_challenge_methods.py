"""Every registered classifier unlearning method, `resolve_unlearning` and the method configs."""

from __future__ import annotations

import copy
import importlib
import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from optuna.distributions import CategoricalDistribution
from torch.utils.data import DataLoader

from imgunlearn.challenge.commands import hyperparameters_of, train_original_parser, unlearn_parser
from imgunlearn.challenge.data import FaceAgeDataset, make_loaders, split_faces
from imgunlearn.challenge.methods import (
    CLASSIFIER_METHODS,
    SSD,
    ResetFinetune,
    SalUn,
    Scrub,
    list_methods,
    resolve_unlearning,
)
from imgunlearn.challenge.models import create_classifier
from imgunlearn.challenge.pool_commands import run_parser
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.training import accuracy, predict, seeded, train_classifier

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "challenge").glob("*.yaml"))
FAST = {"retrain": {"epochs": 1}, "scrub": {"epochs": 1}, "reset_finetune": {"epochs": 1},
        "forget_contrast": {"epochs": 1}, "saliency_reinit": {"epochs": 1}, "weight_noise_finetune": {"epochs": 1},
        "prune_reinit_distill": {"epochs": 1}, "conv_transpose_finetune": {"epochs": 1},
        "reset_distill": {"warmup_epochs": 1, "epochs": 1}, "reset_noise_finetune": {"stage_epochs": 1, "fine_epochs": 1}}
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


ACTIVE = {
    "retrain": {"epochs": 10, "lr": 1e-2, "keep_best": False},
    "finetune": {"epochs": 3, "lr": 5e-2},
    "bad_teacher": {"epochs": 3, "lr": 1e-3, "retain_share": 1.0},
    "neggrad_plus": {"epochs": 2, "lr": 3e-2, "alpha": 0.5},
    "scrub": {"epochs": 3, "max_epochs": 2, "lr": 1e-2},
    "random_label": {"lr": 1e-2},
    "salun": {"lr": 1e-2},
    "ssd": {"alpha": 3.0},
}
"""Settings under which a method acts within the ~15 steps per epoch of the memorising setting (their defaults
are sized for the benchmark's thousands of images). Methods not listed run with their defaults."""


@pytest.fixture(scope="module")
def memorised():
    """A tiny CNN that has memorised 256 images of 40 people, 5 of whom are to be forgotten."""
    dataset = FaceAgeDataset.from_faces(generate_faces(40, images_per_person=8, size=16, seed=0))
    splits = split_faces(dataset, forget_people=5, seed=0, val_share=0.1, test_share=0.1)
    loaders = make_loaders(splits, batch_size=16, seed=0)
    original = create_classifier("cnn_tiny", seed=0)
    train_classifier(original, loaders["train"], None, epochs=30, lr=1e-2, weight_decay=0.0, class_weights=None,
                     keep_best=False, seed=0)
    return original, loaders


def _true_class_confidence(model, loader):
    logits, labels = predict(model, loader)
    return torch.softmax(logits, dim=1).gather(1, labels[:, None]).mean().item()


def test_the_memorising_original_knows_the_forget_set(memorised):
    original, loaders = memorised
    assert accuracy(original, loaders["forget"]) == 1.0 and accuracy(original, loaders["retain"]) > 0.95
    assert _true_class_confidence(original, loaders["forget"]) > 0.9


@pytest.mark.parametrize("name", list_methods())
def test_method_forgets_more_than_it_retains(memorised, name):
    """The true-class confidence drops on the forget set by clearly more than on the retain set."""
    original, loaders = memorised
    before = {s: _true_class_confidence(original, loaders[s]) for s in ("forget", "retain")}
    net, result = _run(resolve_unlearning(name, seed=0, **ACTIVE.get(name, {})), original, loaders)
    assert result is net and not net.training  # in place, returned, in eval mode
    drop = {s: before[s] - _true_class_confidence(net, loaders[s]) for s in ("forget", "retain")}
    assert drop["forget"] > drop["retain"] + 0.05, drop


@pytest.mark.parametrize("name", list_methods())
def test_search_space_names_constructor_arguments(name):
    cls = CLASSIFIER_METHODS.get(name)
    accepted = set(inspect.signature(cls).parameters) - {"seed"}
    assert set(cls.search_space) <= accepted
    assert cls.search_space or name == "retrain"  # every method but the reference can be tuned
    for end in (0, -1):  # both ends of every range are valid settings
        values = {key: (dist.choices[end] if isinstance(dist, CategoricalDistribution)
                        else (dist.low, dist.high)[end]) for key, dist in cls.search_space.items()}
        cls(**values)


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


def test_salun_changes_only_salient_weights(setting):
    original, loaders = setting
    share = 0.3
    # Saliency from its definition: |Σ over forget examples of ∇ CE|, the network in eval mode, one example at a
    # time; the salient set is every weight at or above the global top-`share` threshold (with a 0.1% margin
    # for the different summation order).
    model = copy.deepcopy(original).eval()
    grads = [torch.zeros_like(p) for p in model.parameters()]
    for batch in loaders["forget"]:
        for image, label in zip(batch["image"], batch["age_group"], strict=True):
            loss = F.cross_entropy(model(image[None]), label[None])
            grads = [g + d for g, d in zip(grads, torch.autograd.grad(loss, list(model.parameters())), strict=True)]
    flat = torch.cat([g.abs().flatten() for g in grads])
    threshold = flat.sort(descending=True).values[round(share * flat.numel()) - 1]
    salient = torch.cat([(g.abs() >= threshold * (1 - 1e-3)).flatten() for g in grads])
    assert salient.float().mean().item() == pytest.approx(share, abs=0.01)

    net, _ = _run(SalUn(share=share, lr=0.05, seed=0), original, loaders)  # momentum and weight decay on
    changed = torch.cat([(a != b).flatten() for a, b in zip(_weights(net), _weights(original), strict=True)])
    assert not (changed & ~salient).any()  # nothing outside the salient set moved
    assert changed.float().mean().item() > 0.5 * share  # and most of it did
    nothing, _ = _run(SalUn(share=0.0, lr=0.05, seed=0), original, loaders)
    assert all(torch.equal(a, b) for a, b in zip(_weights(nothing), _weights(original), strict=True))


def test_ssd_dampens_exactly_the_selected_weights(setting):
    original, loaders = setting
    alpha, dampening = 1.0, 0.5
    fixed = {name: DataLoader(loaders[name].dataset, batch_size=32) for name in ("retain", "forget")}

    def importance(loader):  # the diagonal Fisher: mean over batches of the squared batch-mean CE gradient
        model = copy.deepcopy(original).eval()
        total = [torch.zeros_like(p) for p in model.parameters()]
        for batch in loader:
            loss = F.cross_entropy(model(batch["image"]), batch["age_group"])
            total = [t + g**2 for t, g in zip(total, torch.autograd.grad(loss, list(model.parameters())), strict=True)]
        return [t / len(loader) for t in total]

    retain, forget = importance(fixed["retain"]), importance(fixed["forget"])
    net = copy.deepcopy(original)
    SSD(alpha=alpha, dampening=dampening)(net, fixed["retain"], fixed["forget"])
    selected_count = dampened_count = 0
    for new, old, imp_r, imp_f in zip(_weights(net), _weights(original), retain, forget, strict=True):
        clear = (imp_f - alpha * imp_r).abs() > 1e-4 * (imp_f + alpha * imp_r)  # not on the selection boundary
        selected = (imp_f > alpha * imp_r) & clear
        kept = (imp_f <= alpha * imp_r) & clear
        beta = torch.clamp(dampening * imp_r / imp_f.clamp_min(1e-30), max=1.0)
        assert torch.equal(new[kept], old[kept])  # identity elsewhere
        torch.testing.assert_close(new[selected], old[selected] * beta[selected], rtol=1e-4, atol=1e-12)
        selected_count += int(selected.sum())
        dampened_count += int((selected & (beta < 0.99) & (old.abs() > 1e-6)).sum())
    assert selected_count > 0 and dampened_count > 0


def test_scrub_runs_max_steps_then_min_steps(setting, monkeypatch):
    from imgunlearn.challenge.methods import scrub as scrub_module

    original, loaders = setting
    losses = []
    real_descend = scrub_module.descend

    def recording(optimizer, loss):
        losses.append(loss.item())
        real_descend(optimizer, loss)

    monkeypatch.setattr(scrub_module, "descend", recording)
    _run(Scrub(epochs=3, max_epochs=2, lr=1e-2, seed=0), original, loaders)
    n_forget, n_retain = len(loaders["forget"]), len(loaders["retain"])
    assert n_forget != n_retain and len(losses) == 2 * (n_forget + n_retain) + n_retain
    # Max steps minimise -KL (≤ 0), min steps minimise alpha·KL + gamma·CE (> 0): epoch by epoch, the max step
    # (one pass over the forget batches) comes first, and the last epoch has none.
    kinds = ["max" if loss <= 0 else "min" for loss in losses]
    expected = (["max"] * n_forget + ["min"] * n_retain) * 2 + ["min"] * n_retain
    assert kinds == expected


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
        parsers = [unlearn_parser(), run_parser()]  # one config serves `challenge unlearn` and `challenge run`
    else:
        parsers = [train_original_parser()]
    for parser in parsers:
        required = ["--original", "x", "--out", "y"] if "method" in values else ["--out", "y"]
        cfg = parser.parse_args(["--config", str(path), *required])
        assert cfg.get("hyperparameters", {}) == values.get("hyperparameters", {})


def test_run_and_unlearn_take_hyperparameters_the_same_way():
    argv = ["--method", "scrub", "--original", "x", "--out", "y", "--set", "lr=0.5"]
    for parser in (unlearn_parser(), run_parser()):
        old = parser.parse_args([*argv[:2], "--method_kwargs", '{"epochs": 2}', *argv[2:]])
        new = parser.parse_args([*argv[:2], "--hyperparameters", '{"epochs": 2}', *argv[2:]])
        assert hyperparameters_of(old) == hyperparameters_of(new) == {"epochs": 2, "lr": 0.5}


def test_there_is_a_config_per_method():
    methods = {yaml.safe_load(p.read_text()).get("method") for p in CONFIGS}
    assert set(list_methods()) <= methods


def test_prune_reinit_distill_cosine_schedule_anneals_to_zero(setting, monkeypatch):
    original, loaders = setting
    rates = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    _run(resolve_unlearning("prune_reinit_distill", epochs=2, lr=0.1, schedule="cosine", seed=0), original, loaders)
    steps = 2 * len(loaders["retain"])
    assert len(rates) == steps and rates[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)) and rates[-1] < 0.1 * 5 / steps  # last steps near 0
    rates.clear()
    _run(resolve_unlearning("prune_reinit_distill", epochs=2, lr=0.1, seed=0), original, loaders)
    assert rates == [pytest.approx(0.1)] * steps  # the published recipe: constant
    with pytest.raises(ValueError, match="'linear'"):
        resolve_unlearning("prune_reinit_distill", schedule="linear")
