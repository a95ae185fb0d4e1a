"""`imgunlearn challenge tune`: a person-disjoint tuning forget split, never the reported one; a resumable study."""

import csv
import json

import numpy as np
import pytest
import yaml

from imgunlearn.challenge.data import FaceAgeDataset, FaceSplits, split_faces
from imgunlearn.challenge.synthetic_faces import generate_faces
from imgunlearn.challenge.tune import check_disjoint, tuning_splits
from imgunlearn.cli import main

TINY = ["--synthetic", "--num_people", "24", "--images_per_person", "[3, 6]", "--image_size", "16",
        "--forget_people", "3", "--model", "cnn_tiny", "--epochs", "1", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    out = tmp_path_factory.mktemp("challenge") / "original"
    assert main(["challenge", "train-original", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def splits():
    dataset = FaceAgeDataset.from_faces(generate_faces(30, (3, 6), 16, 0))
    return split_faces(dataset, 4, seed=0)


def test_tuning_split_shares_no_person_or_image_with_the_reported_forget_set(splits):
    tuning = tuning_splits(splits, seed=1)
    ids = splits.dataset.person_ids
    assert len(tuning.forget_people) == len(splits.forget_people) == 4
    assert set(tuning.forget_people).isdisjoint(splits.forget_people)
    reported = set(splits.indices["forget"].tolist())
    for name, indices in tuning.indices.items():
        assert reported.isdisjoint(indices.tolist()), name
        assert set(ids[indices]).isdisjoint(splits.forget_people), name
    # the tuning people's images are exactly the tuning forget set: none in retain, val or test
    tuned = np.isin(ids, tuning.forget_people)
    assert np.array_equal(np.flatnonzero(tuned & np.isin(np.arange(len(ids)), splits.indices["retain"])),
                          tuning.indices["forget"])
    for name in ("retain", "val", "test"):
        assert not tuned[tuning.indices[name]].any()
    assert sorted([*tuning.indices["retain"], *tuning.indices["forget"]]) == sorted(splits.indices["retain"])
    assert tuning_splits(splits, seed=1).forget_people == tuning.forget_people
    assert tuning_splits(splits, seed=2).forget_people != tuning.forget_people
    assert len(tuning_splits(splits, people=2, seed=1).forget_people) == 2
    with pytest.raises(ValueError, match="cannot draw 99 tuning forget people"):
        tuning_splits(splits, people=99)


def test_a_split_touching_the_reported_forget_set_is_refused(splits):
    with pytest.raises(ValueError, match="equals the reported forget split"):
        check_disjoint(splits, splits)
    tuning = tuning_splits(splits, seed=1)
    leaky = FaceSplits(splits.dataset, {**tuning.indices, "retain": np.concatenate(
        [tuning.indices["retain"], splits.indices["forget"][:1]])}, tuning.forget_people)
    with pytest.raises(ValueError, match="holds 1 images of the reported forget set"):
        check_disjoint(leaky, splits)
    shared = FaceSplits(splits.dataset, tuning.indices, [*tuning.forget_people, splits.forget_people[0]])
    with pytest.raises(ValueError, match="include reported forget people"):
        check_disjoint(shared, splits)


def test_challenge_tune_never_reads_the_reported_forget_set_and_resumes(original, tmp_path, monkeypatch, capsys):
    reported = json.loads((original / "splits.json").read_text())
    forget = set(reported["indices"]["forget"])
    used: list[int] = []
    subset = FaceAgeDataset.subset
    monkeypatch.setattr(FaceAgeDataset, "subset", lambda self, idx: used.extend(np.asarray(idx).tolist())
                        or subset(self, idx))
    out = tmp_path / "tune"
    args = ["challenge", "tune", "--original", str(original), "--method", "finetune", "--n_models", "2",
            "--out", str(out), "--progress", "false"]
    assert main([*args, "--trials", "2"]) == 0
    assert used and forget.isdisjoint(used)
    tuning = json.loads((out / "original" / "splits.json").read_text())
    assert set(tuning["forget_people"]).isdisjoint(reported["forget_people"])
    first = list(csv.DictReader((out / "trials.csv").open()))
    assert len(first) == 2 and all(r["state"] == "complete" for r in first)
    assert {"final_score", "forget_score", "time_ratio", "epochs", "lr"} <= set(first[0])
    assert (out / "scores.png").stat().st_size > 1000

    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["method"] == "finetune" and set(best["hyperparameters"]) == {"epochs", "lr"}
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["challenge", "run", "--config", str(out / "best.yaml"), "--original", str(original),
              "--out", str(tmp_path / "pool"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["method"] == "finetune" and printed["hyperparameters"] == best["hyperparameters"]

    assert main([*args, "--trials", "3"]) == 0  # extends the study: the first trials stay as they were
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3 and rows[:2] == first
    assert forget.isdisjoint(used)


def test_challenge_tune_refuses_a_pool_of_the_reported_forget_split(original, tmp_path, capsys):
    pool = tmp_path / "reported_pool"
    assert main(["challenge", "run", "--method", "finetune", "--method_kwargs", '{"epochs": 1}', "--n_models", "1",
                 "--original", str(original), "--out", str(pool), "--no_progress"]) == 0
    capsys.readouterr()
    code = main(["challenge", "tune", "--original", str(original), "--method", "finetune", "--n_models", "1",
                 "--trials", "1", "--pool", str(pool), "--out", str(tmp_path / "tune"), "--progress", "false"])
    assert code == 2
    assert "built from the reported original" in capsys.readouterr().err


def test_shards_share_one_study(original, tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "tune"
    args = ["challenge", "tune", "--original", str(original), "--method", "finetune", "--n_models", "2",
            "--trials", "2", "--out", str(out), "--progress", "false", "--shard_timeout", "10"]
    follower = subprocess.Popen([sys.executable, "-m", "imgunlearn.cli", *args, "--shard", "1/2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert main([*args, "--shard", "0/2"]) == 0
        followed, errors = follower.communicate(timeout=600)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, errors
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 2 and all(r["state"] == "complete" for r in rows)
    # each trial's pool was split: each shard made one of the two unlearned members of each trial
    assert capsys.readouterr().out.count("shard 0/2 on cpu") == 2
    assert followed.count("shard 1/2 on cpu") == 2
    assert json.loads((out / "lead.json").read_text())["state"] == "done"
