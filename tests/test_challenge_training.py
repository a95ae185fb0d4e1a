"""Classifiers, the training loop, the MIA checks and the two challenge CLI subcommands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from imgunlearn.challenge import commands as commands_module
from imgunlearn.challenge.commands import train_original_main, unlearn_main
from imgunlearn.challenge.data import FaceAgeDataset, make_loaders, split_faces
from imgunlearn.challenge.mia import loss_mia_accuracy, svc_mia_efficacy
from imgunlearn.challenge.models import create_classifier, list_classifiers, load_classifier, save_classifier
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.training import accuracy, balanced_class_weights, seeded, train_classifier


@pytest.fixture(scope="module")
def loaders():
    dataset = FaceAgeDataset.from_faces(generate_faces(40, images_per_person=(3, 8), seed=0))
    return make_loaders(split_faces(dataset, forget_people=4, seed=0), batch_size=32, seed=0)


@pytest.mark.parametrize("name", list_classifiers())
def test_classifiers_build_and_round_trip(tmp_path, name):
    model = create_classifier(name, seed=0).eval()
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    again = create_classifier(name, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    save_classifier(model, tmp_path / name)
    loaded = load_classifier(tmp_path / name)
    with torch.no_grad():
        assert torch.equal(loaded(x), out)


def test_classifier_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown classifier 'vgg'"):
        create_classifier("vgg")
    with pytest.raises(ValueError, match="config"):
        save_classifier(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_classifier(tmp_path / "nothing")


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0, 0, 0, 0, 1, 3]), 4)
    assert torch.allclose(weights, torch.tensor([0.25, 1.0, 0.0, 1.0]))


def test_train_classifier_is_deterministic_and_learns(loaders):
    runs = []
    for _ in range(2):
        model = create_classifier("cnn_tiny", seed=1)
        before = accuracy(model, loaders["train"])
        model, history = train_classifier(model, loaders["train"], loaders["val"], epochs=3, lr=3e-3, seed=4)
        runs.append((model, history))
    (a, history), (b, _) = runs
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert accuracy(a, loaders["train"]) > before
    # the kept checkpoint is the best-validation epoch
    assert accuracy(a, loaders["val"]) == pytest.approx(max(h["val_acc"] for h in history))
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(a, loaders["train"], epochs=0)


def test_seeded_restores_random_state(loaders):
    generator = loaders["retain"].generator
    state, global_state = generator.get_state(), torch.get_rng_state()
    with seeded(3, loaders["retain"]):
        first = torch.rand(3)
        torch.rand(5, generator=generator)
    with seeded(3, loaders["retain"]):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(generator.get_state(), state) and torch.equal(torch.get_rng_state(), global_state)


def test_loss_mia_accuracy():
    rng = np.random.default_rng(0)
    same = loss_mia_accuracy(rng.exponential(1, 200), rng.exponential(1, 300))
    apart = loss_mia_accuracy(rng.exponential(0.05, 200), 3 + rng.exponential(1, 300))
    assert abs(same - 0.5) < 0.12 and apart > 0.95
    with pytest.raises(ValueError, match="at least 5"):
        loss_mia_accuracy(np.ones(3), np.ones(30))


def test_svc_mia_efficacy():
    rng = np.random.default_rng(0)
    members, non_members = rng.uniform(0.9, 1.0, 300), rng.uniform(0.0, 0.5, 300)
    assert svc_mia_efficacy(members, non_members, rng.uniform(0.0, 0.5, 100)) > 0.9  # forgotten
    assert svc_mia_efficacy(members, non_members, rng.uniform(0.9, 1.0, 100)) < 0.1  # remembered


def test_cli_train_original_and_unlearn(tmp_path):
    original = tmp_path / "original"
    code = train_original_main(["--synthetic", "--num-people", "30", "--images_per_person", "[2, 6]",
                                "--forget-people", "3", "--model", "cnn_tiny", "--epochs", "1", "--lr", "1e-3",
                                "--out", str(original)])
    assert code == 0
    for name in ("model/config.json", "model/model.safetensors", "splits.json", "splits.csv", "metrics.json",
                 "config.json", "config.yaml", "run.json"):
        assert (original / name).is_file(), name
    metrics = json.loads((original / "metrics.json").read_text())
    assert {"train_acc", "forget_acc", "test_acc", "mia_loss_accuracy", "train_seconds"} <= set(metrics)

    out = tmp_path / "unlearned"
    assert unlearn_main(["--method", "finetune", "--set", "lr=0.01", "--original", str(original),
                         "--out", str(out), "--seed", "1"]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert {"retain_acc", "forget_acc", "test_acc", "mia_svc_efficacy", "seconds", "time_share_of_retrain"} <= set(
        result)
    assert result["time_share_of_retrain"] == pytest.approx(result["seconds"] / metrics["train_seconds"])
    assert json.loads((out / "config.json").read_text())["hyperparameters"] == {"lr": 0.01}
    before, after = load_classifier(original / "model"), load_classifier(out / "model")
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values(), strict=True))

    # a method config file, with a command-line override
    config = Path(__file__).resolve().parents[1] / "configs" / "challenge" / "scrub.yaml"
    assert unlearn_main(["--config", str(config), "--set", "epochs=1", "--original", str(original),
                         "--out", str(tmp_path / "scrub")]) == 0
    saved = json.loads((tmp_path / "scrub" / "config.json").read_text())
    assert saved["method"] == "scrub" and saved["hyperparameters"]["epochs"] == 1
    assert saved["hyperparameters"]["lr"] == yaml.safe_load(config.read_text())["hyperparameters"]["lr"]

    # a user's function by module:function, and clear errors
    assert unlearn_main(["--method", "imgunlearn.challenge.methods.ssd:unlearning", "--original", str(original),
                         "--out", str(tmp_path / "user")]) == 0
    assert unlearn_main(["--method", "nope", "--original", str(original), "--out", str(tmp_path / "x")]) == 2
    assert unlearn_main(["--method", "scrub", "--original", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_cli_argument_errors(tmp_path, capsys):
    assert train_original_main(["--synthetic", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "exactly one of --data" in capsys.readouterr().err
    assert train_original_main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "faces.csv" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    assert train_original_main(["--config", str(bad), "--synthetic", "--out", str(tmp_path / "o")]) == 2
    assert "epochz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_output_safety_and_device(tmp_path, capsys, monkeypatch):
    original = tmp_path / "original"
    tiny = ["--synthetic", "--num_people", "24", "--images_per_person", "[3, 6]", "--forget_people", "3",
            "--image_size", "16", "--model", "cnn_tiny", "--epochs", "1", "--device", "cpu"]
    assert train_original_main([*tiny, "--out", str(original)]) == 0
    before = {p.relative_to(original): p.read_bytes() for p in original.rglob("*") if p.is_file()}
    capsys.readouterr()

    # unlearn into the original (or a folder holding it) is refused and the original is untouched
    for out in (original, tmp_path):
        assert unlearn_main(["--method", "finetune", "--original", str(original), "--out", str(out)]) == 2
        assert "the input" in capsys.readouterr().err
    assert {p.relative_to(original): p.read_bytes() for p in original.rglob("*") if p.is_file()} == before

    # an existing run is refused without --overwrite
    assert train_original_main([*tiny, "--out", str(original)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err

    # a train-original that fails half-way leaves nothing that looks complete (--overwrite removed the old run
    # first, so no new weights sit beside an old config), and no temporary directory
    def fail(*args, **kwargs):
        raise ValueError("too few images for the MIA step")

    monkeypatch.setattr(commands_module, "mia_figures", fail)
    assert train_original_main([*tiny, "--epochs", "2", "--out", str(original), "--overwrite"]) == 2
    assert "too few images" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert train_original_main([*tiny, "--out", str(original)]) == 0
    assert {p.relative_to(original): p.read_bytes() for p in original.rglob("*.safetensors")} == {
        k: v for k, v in before.items() if k.suffix == ".safetensors"}  # same options, same weights

    # a user function returning another architecture is refused before anything is saved
    user = tmp_path / "user_fn.py"
    user.write_text("import torch\n\ndef unlearning(net, retain, forget, val):\n"
                    "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))\n")
    assert unlearn_main(["--method", f"{user}:unlearning", "--original", str(original),
                         "--out", str(tmp_path / "wrong")]) == 2
    assert "does not have the original's architecture" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists()

    # config.yaml holds the resolved options and is accepted back as --config
    out = tmp_path / "unlearned"
    assert unlearn_main(["--method", "finetune", "--set", "lr=0.01", "--original", str(original),
                         "--out", str(out), "--device", "cpu"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == "finetune" and saved["hyperparameters"] == {"lr": 0.01} and saved["device"] == "cpu"
    assert json.loads((out / "metrics.json").read_text())["device"] == "cpu"
    assert unlearn_main(["--config", str(out / "config.yaml"), "--out", str(tmp_path / "again")]) == 0
    first, second = load_classifier(out / "model"), load_classifier(tmp_path / "again" / "model")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                  strict=True))


def test_print_config_and_methods(capsys):
    from imgunlearn.challenge.cli import main as challenge_main

    for command in ("train-original", "unlearn", "run", "score"):
        with pytest.raises(SystemExit) as exit_info:
            challenge_main([command, "--print_config"])
        assert exit_info.value.code == 0
        assert "out:" in capsys.readouterr().out or command == "score"
    assert challenge_main(["methods"]) == 0
    listed = capsys.readouterr().out.split()
    from imgunlearn.challenge.methods import list_methods

    assert listed == list_methods() and "finetune" in listed


def test_retrain_method_starts_from_the_recipe_initialisation(loaders, monkeypatch):
    from imgunlearn.challenge.methods import retrain as retrain_module

    monkeypatch.setattr(retrain_module, "train_classifier", lambda net, *args, **kwargs: (net, []))
    net = create_classifier("resnet18", seed=0)  # torchvision's own init differs from each layer's reset
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(1.0)
    retrain_module.Retrain(seed=7)(net, loaders["retain"], loaders["forget"], loaders["val"])
    fresh = create_classifier("resnet18", seed=7)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), fresh.state_dict().values(), strict=True))


@pytest.mark.slow
def test_original_remembers_forget_people_a_retrained_model_does_not():
    dataset = FaceAgeDataset.from_faces(generate_faces(120, images_per_person=(4, 12), seed=0))
    loaders = make_loaders(split_faces(dataset, forget_people=12, seed=0), batch_size=32, seed=0)
    accs = {}
    for name in ("train", "retain"):
        model = create_classifier("cnn_tiny", seed=1)
        train_classifier(model, loaders[name], loaders["val"], epochs=20, lr=3e-3, seed=0)
        accs[name] = accuracy(model, loaders["forget"])
    assert accs["train"] > accs["retain"] + 0.2
