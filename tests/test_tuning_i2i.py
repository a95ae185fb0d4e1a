"""`imgunlearn tune` at tiny size: never reads the held-out splits, writes a loadable best.yaml, resumes."""

import csv
import inspect

import numpy as np
import pytest
import torch
import yaml

from imgunlearn.cli import main
from imgunlearn.data.splits import ImageSet
from imgunlearn.methods import METHODS, UnlearningModule
from imgunlearn.tuning_i2i import TuningDataModule, carve

DATA = {"size": 16, "num_forget": 12, "num_retain": 16, "num_holdout_forget": 4, "num_holdout_retain": 4,
        "batch_size": 4}
DATA_ARGS = [arg for key, value in DATA.items() for arg in (f"--data.{key}", str(value))]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    import imgunlearn as u

    data = u.ForgetRetainDataModule(source="synthetic", **DATA)
    torch.manual_seed(0)
    model = u.pretrain("unet_tiny", data, max_steps=3, progress=False)
    return u.save(model, tmp_path_factory.mktemp("orig") / "original", data.task)


def tune(original, out, *extra):
    return main(["tune", "--original", str(original), *DATA_ARGS, "--max_steps", "2", "--out", str(out),
                 "--progress", "false", *extra])


def trials_rows(out):
    return list(csv.DictReader((out / "trials.csv").open()))


@pytest.mark.parametrize("name", METHODS.list())
def test_every_method_declares_a_space_its_constructor_takes(name):
    from imgunlearn.models import create_model

    cls = METHODS.get(name)
    space = cls.search_space
    assert space, f"{name} declares no search space"
    # one value of each setting, as a trial would draw it, is accepted by the method
    settings = {k: d.choices[-1] if hasattr(d, "choices") else d.high for k, d in space.items()}
    module = cls(model=create_model("unet_tiny"), **settings)
    for key, value in settings.items():
        assert module.hparams[key] == value
    # declared settings are constructor parameters (of the method or its base), not trainer options
    params = set(inspect.signature(cls).parameters) | set(inspect.signature(UnlearningModule).parameters)
    assert set(space) <= params


def test_carving_is_seeded_and_by_person_when_ids_are_known():
    ids = np.repeat(np.arange(10), 3)  # 10 people, 3 images each
    images = ImageSet.from_arrays([f"t{i}" for i in range(30)], np.zeros((30, 3, 8, 8), np.uint8), ids=ids)
    fit, held = carve(images, 0.2, seed=1, what="forget")
    assert len(held) == 6 and set(ids[held]).isdisjoint(ids[fit]) and len(set(ids[held])) == 2
    assert np.array_equal(held, carve(images, 0.2, seed=1, what="forget")[1])
    assert not np.array_equal(held, carve(images, 0.2, seed=2, what="forget")[1])
    unknown = ImageSet.from_arrays([f"t{i}" for i in range(5)], np.zeros((5, 3, 8, 8), np.uint8))
    fit, held = carve(unknown, 0.5, seed=0, what="retain")
    assert len(held) == 2 and sorted([*fit, *held]) == list(range(5))
    with pytest.raises(ValueError, match="validation_share must lie strictly between 0 and 1, got 1.0"):
        carve(images, 1.0, seed=0, what="forget")


def test_tuning_never_reads_the_held_out_splits(original, tmp_path, monkeypatch):
    read: list[str] = []
    image, fingerprints = ImageSet.image, ImageSet.fingerprints
    monkeypatch.setattr(ImageSet, "image", lambda self, i: read.append(self.names[i]) or image(self, i))
    monkeypatch.setattr(ImageSet, "fingerprints", lambda self: read.extend(self.names) or fingerprints(self))
    monkeypatch.setattr(ImageSet, "images", property(lambda self: read.extend(self.names) or self.pixels))
    assert tune(original, tmp_path / "t", "--trials", "1") == 0
    assert read, "the instrumentation saw nothing"
    assert not [n for n in read if "holdout" in n], "a held-out image was read"

    # validation images come from the training splits, are held out of the trial's training data and the forget
    # side is person-disjoint from it
    data = TuningDataModule(source="synthetic", **DATA, validation_share=0.25)
    data.setup("fit")
    for kind in ("forget", "retain"):
        fit, held = data.splits[f"{kind}_train"], data.validation[kind]
        assert len(held) and all(n.startswith(f"{kind}_train/") for n in held.names)
        assert set(held.names).isdisjoint(fit.names)
        assert len(fit) + len(held) == DATA[f"num_{kind}"]
    assert set(data.validation["forget"].ids).isdisjoint(data.splits["forget_train"].ids)
    assert len(data.splits["forget_holdout"]) == len(data.splits["retain_holdout"]) == 0
    rows = list(csv.DictReader((tmp_path / "t" / "validation_splits.csv").open()))
    assert {r["split"] for r in rows} == {"forget_fit", "retain_fit", "forget_validation", "retain_validation"}


def test_study_writes_a_loadable_best_yaml_and_resumes(original, tmp_path, capsys):
    out = tmp_path / "tune"
    assert tune(original, out, "--trials", "2") == 0
    first = trials_rows(out)
    assert len(first) == 2 and all(r["state"] == "complete" for r in first)
    shipped = METHODS.get("noisy_label")(model=str(original))  # the first trial runs the shipped settings
    assert float(first[0]["lr"]) == shipped.hparams.lr and first[0]["forget_target"] == shipped.hparams.forget_target
    assert (out / "tradeoff.png").stat().st_size > 1000
    best = yaml.safe_load((out / "best.yaml").read_text())
    init = best["model"]["init_args"]
    assert best["model"]["class_path"].endswith("NoisyLabel") and best["trainer"]["max_steps"] == 2
    assert set(METHODS.get("noisy_label").search_space) <= set(init)

    # the unlearn command takes it as it is
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["unlearn", "--config", str(out / "best.yaml"), *DATA_ARGS, "--print_config"])
    assert stop.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["lr"] == init["lr"]
    assert printed["model"]["init_args"]["forget_target"] == init["forget_target"]
    assert printed["trainer"]["max_steps"] == 2

    # extending the study keeps the first trials and adds the new ones
    assert tune(original, out, "--trials", "4") == 0
    rows = trials_rows(out)
    assert len(rows) == 4
    assert rows[:2] == first
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert summary["trials"] == 4 and summary["best"]["trial"] in range(4)

    # another configuration may not reuse the directory
    assert tune(original, out, "--trials", "4", "--retain_tolerance", "1.0") == 2
    assert "same settings" in capsys.readouterr().err


def test_tune_refuses_bad_input_by_name(original, tmp_path, capsys):
    assert tune(original, tmp_path / "a", "--method", "nope") == 2
    assert "nope" in capsys.readouterr().err
    assert tune(original, tmp_path / "b", "--fixed", '{"lr": 1e-3}', "--method", "finetune") == 2
    assert "every searchable setting of 'finetune' is fixed" in capsys.readouterr().err
    assert tune(original, tmp_path / "c", "--data.task", "inpaint") == 2
    assert "differs from the task the original was trained for" in capsys.readouterr().err
    assert tune(original, tmp_path / "d", "--min_steps", "5") == 2
    assert "min_steps must lie in [1, max_steps=2], got 5" in capsys.readouterr().err


@pytest.mark.parametrize("device, expected", [
    ("cpu", {"accelerator": "cpu", "devices": 1}),
    ("cuda", {"accelerator": "gpu", "devices": 1}),
    ("cuda:1", {"accelerator": "gpu", "devices": [1]}),
    ("mps", {"accelerator": "mps", "devices": 1}),
])
def test_trials_run_on_the_device_asked_for_including_its_index(device, expected):
    from imgunlearn.tune import trainer_device

    assert trainer_device(device) == expected


def test_per_image_psnr_matches_the_formula_and_marks_identical_images():
    from imgunlearn.tuning_i2i import per_image_psnr

    images = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    outputs = images.copy()
    outputs[0] = 51  # every pixel off by 0.2: mse 0.04 -> 13.98 dB
    psnr = per_image_psnr(outputs, images)
    assert psnr[0] == pytest.approx(-10 * np.log10(0.04))
    assert psnr[1] == 100.0
    from imgunlearn.metrics import PSNR

    metric = PSNR()  # the figure evaluation reports: the mean of these per-image values
    metric.update(torch.as_tensor(outputs).float() / 255, torch.as_tensor(images).float() / 255)
    assert float(metric.compute()) == pytest.approx(psnr.mean(), rel=1e-5)


def test_retain_noise_allows_that_many_standard_errors_beyond_the_tolerance():
    from imgunlearn.models import create_model
    from imgunlearn.tuning_i2i import Scorer

    data = TuningDataModule(source="synthetic", **DATA, validation_share=0.25)
    data.setup("fit")
    torch.manual_seed(0)
    original = create_model("unet_tiny").eval()
    changed = create_model("unet_tiny").eval()  # other weights: retain PSNR moves, differently per image
    exact = Scorer(original, data, retain_tolerance=0.5, retain_noise=0.0).score(changed)
    loose = Scorer(original, data, retain_tolerance=0.5, retain_noise=2.0).score(changed)
    se = exact.figures["retain_change_se"]
    assert se > 0
    assert exact.constraint == pytest.approx(-exact.figures["retain_change_db"] - 0.5)
    assert loose.constraint == pytest.approx(exact.constraint - 2.0 * se)
    with pytest.raises(ValueError, match="retain_noise must be >= 0 standard errors, got -1"):
        Scorer(original, data, retain_noise=-1.0)
