"""The pool runner: resumable, shardable, cached, atomic; and the scores and report it produces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from imgunlearn.challenge import pool as pool_lib
from imgunlearn.challenge.pool import (
    PoolData,
    load_members,
    load_pool,
    member_path,
    parse_shard,
    read_member,
    run_pool,
    score_pool,
    shard_indices,
    write_member,
)

NUM_CLASSES = 4


class TinyFaces(Dataset):
    """Dict items like the challenge loaders: a `[3, 4, 4]` image and its label."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
        centres = torch.randn(NUM_CLASSES, 3, 4, 4, generator=torch.Generator().manual_seed(99))
        self.x = centres[self.labels] + 1.5 * torch.randn(n, 3, 4, 4, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i], "age_group": self.labels[i]}


def make_data() -> PoolData:
    return PoolData(TinyFaces(48, 1), TinyFaces(10, 2), TinyFaces(12, 3), TinyFaces(12, 4), batch_size=16)


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, NUM_CLASSES))


def sgd(net: nn.Module, loader: DataLoader, steps: int) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for step, batch in enumerate(loader):
        if step == steps:
            break
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(batch["image"]), batch["age_group"]).backward()
        optimizer.step()


class Counter:
    """Training / unlearning callables that count their calls and can fail after a number of them."""

    def __init__(self, data: PoolData, fail_after: int | None = None) -> None:
        self.data, self.fail_after = data, fail_after
        self.retrain_calls, self.unlearn_calls = 0, 0

    def _tick(self) -> None:
        if self.fail_after is not None and self.retrain_calls + self.unlearn_calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")

    def retrain(self, seed: int) -> nn.Module:
        self._tick()
        self.retrain_calls += 1
        torch.manual_seed(seed)
        net = tiny_net()
        loader = DataLoader(self.data.retain, batch_size=16, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        for _ in range(3):
            sgd(net, loader, steps=100)
        return net

    def unlearning(self, net, retain_loader, forget_loader, val_loader):
        self._tick()
        self.unlearn_calls += 1
        sgd(net, retain_loader, steps=2)  # edits in place, Kaggle style


RECIPE = {"model": "tiny_linear", "epochs": 3}


@pytest.fixture(scope="module")
def original() -> nn.Module:
    torch.manual_seed(0)
    data = make_data()
    net = tiny_net()
    train = torch.utils.data.ConcatDataset([data.retain, data.forget])
    loader = DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(10):
        sgd(net, loader, steps=100)
    return net


def run(out: Path, counter: Counter, original: nn.Module, method=None, n_models: int = 4, **kwargs):
    return run_pool(out, counter.data, original, counter.retrain, RECIPE,
                    method if method is not None else counter.unlearning, n_models,
                    method_name=kwargs.pop("method_name", "tiny-finetune"), progress=False, **kwargs)


def pool_files(directory: Path) -> dict[str, tuple[np.ndarray, dict]]:
    return {p.relative_to(directory).as_posix(): read_member(p) for p in sorted(directory.rglob("model_*.npz"))}


def assert_same_results(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b) and a
    for name in a:
        np.testing.assert_array_equal(a[name][0], b[name][0])
        for key in ("retain_acc", "test_acc", "forget_acc", "seed", "index", "input_hash"):
            assert a[name][1][key] == b[name][1][key], (name, key)


def test_killed_run_restarts_where_it_stopped(tmp_path, original):
    full = Counter(make_data())
    run(tmp_path / "full", full, original)
    assert (full.retrain_calls, full.unlearn_calls) == (4, 4)

    killed = Counter(make_data(), fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", killed, original)
    assert len(pool_files(tmp_path / "killed")) == 5
    killed.fail_after = None
    summary = run(tmp_path / "killed", killed, original)
    assert summary.skipped == {"retrained": 4, "unlearned": 1} and summary.made == {"retrained": 0, "unlearned": 3}
    assert (killed.retrain_calls, killed.unlearn_calls) == (4, 4)  # nothing made twice
    assert_same_results(pool_files(tmp_path / "full"), pool_files(tmp_path / "killed"))
    assert not list((tmp_path / "killed").rglob("*.tmp"))

    again = run(tmp_path / "killed", killed, original)  # a finished pool is all skipped
    assert sum(again.made.values()) == 0 and (killed.retrain_calls, killed.unlearn_calls) == (4, 4)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_partition_members_exactly(n):
    indices = list(range(11))
    parts = [shard_indices(indices, (i, n)) for i in range(n)]
    assert sorted(k for part in parts for k in part) == indices
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parse_shard(f"{n - 1}/{n}") == (n - 1, n)


@pytest.mark.parametrize("bad", ["2/2", "1", "a/b", "0/0", "-1/3"])
def test_bad_shard_is_rejected(bad):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(bad)


def test_sharded_run_equals_one_run(tmp_path, original):
    run(tmp_path / "one", Counter(make_data()), original, n_models=3)
    counters = [Counter(make_data()) for _ in range(2)]
    summaries = [run(tmp_path / "sharded", c, original, n_models=3, shard=(i, 2)) for i, c in enumerate(counters)]
    assert [s.made for s in summaries] == [{"retrained": 2, "unlearned": 2}, {"retrained": 1, "unlearned": 1}]
    assert [(c.retrain_calls, c.unlearn_calls) for c in counters] == [(2, 2), (1, 1)]
    assert_same_results(pool_files(tmp_path / "one"), pool_files(tmp_path / "sharded"))


def test_retrained_pool_is_cached_across_methods(tmp_path, original):
    cache = tmp_path / "cache"
    first = Counter(make_data())
    run(tmp_path / "pool", first, original, cache_dir=cache, method_name="method-a")
    second = Counter(make_data())
    summary = run(tmp_path / "pool", second, original, cache_dir=cache, method_name="method-b")
    assert second.retrain_calls == 0 and second.unlearn_calls == 4
    assert summary.skipped["retrained"] == 4
    other_pool = Counter(make_data())  # another pool directory, same split and recipe: same cache
    run(tmp_path / "pool2", other_pool, original, cache_dir=cache)
    assert other_pool.retrain_calls == 0
    assert len(list(cache.glob("retrained-*"))) == 1

    changed = Counter(make_data())  # another recipe: another cache entry, trained anew
    run_pool(tmp_path / "pool3", changed.data, original, changed.retrain, {**RECIPE, "epochs": 4},
             changed.unlearning, 4, method_name="m", cache_dir=cache, progress=False)
    assert changed.retrain_calls == 4 and len(list(cache.glob("retrained-*"))) == 2


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "model_00000.npz"

    def broken_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(pool_lib.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        write_member(target, np.zeros(3), {"input_hash": "h"})
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_are_ignored(tmp_path, original):
    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=3)
    method_dir = tmp_path / "methods" / "tiny-finetune"
    member_path(method_dir, 1).unlink()
    (method_dir / ".model_00001.npz.4242.tmp").write_bytes(b"truncated")  # left by a killed process
    with pytest.raises(FileNotFoundError, match=r"indices 1 \(seeds \d+\);"):
        load_pool(tmp_path, "tiny-finetune")
    run(tmp_path, counter, original, n_models=3)
    assert counter.unlearn_calls == 4
    unlearned, retrained = load_pool(tmp_path, "tiny-finetune")
    assert unlearned.confidences.shape == retrained.confidences.shape == (3, 10)


def test_incomplete_pool_names_missing_members(tmp_path, original):
    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=4, shard=(0, 2))
    with pytest.raises(FileNotFoundError, match=r"2 of 4 models missing, indices 1, 3 \(seeds \d+, \d+\)"):
        score_pool(tmp_path, report=False)


def test_mixed_inputs_are_refused(tmp_path, original):
    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=2)
    other = tiny_net()
    with pytest.raises(ValueError, match="original_hash"):
        run(tmp_path, counter, other, n_models=2)
    with pytest.raises(ValueError, match="run with other inputs"):  # other code under the same name
        run(tmp_path, counter, original, method=lambda net, *loaders: net, n_models=2)
    directory = tmp_path / "methods" / "tiny-finetune"
    confidences, meta = read_member(member_path(directory, 1))
    write_member(member_path(directory, 1), confidences, {**meta, "input_hash": "0" * 64})
    with pytest.raises(ValueError, match="different inputs"):
        load_members(directory, [0, 1])


def test_score_json_and_report(tmp_path, original):
    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=4)
    run(tmp_path, counter, original, method="retrain", n_models=4)
    assert counter.retrain_calls == 8  # the independent reference pool adds members 4..7 only
    scores = score_pool(tmp_path)
    assert set(scores) == {"tiny-finetune", "original", "retrain"}

    from imgunlearn.challenge.scoring import final_score, forget_score_from_epsilons

    for name, score in scores.items():
        on_disk = json.loads((tmp_path / "methods" / pool_lib.method_slug(name) / "score.json").read_text())
        assert on_disk == json.loads(json.dumps(score))
        for key in ("forget_score", "final_score", "n_models", "retain_acc", "test_acc", "forget_acc",
                    "time_ratio", "passes_time_cutoff", "epsilons"):
            assert key in on_disk, (name, key)
        assert on_disk["n_models"] == 4 and len(on_disk["epsilons"]) == 10
        assert on_disk["forget_score"] == forget_score_from_epsilons(np.array(on_disk["epsilons"]), 4)
        accs = [on_disk[k][side] for k in ("retain_acc", "test_acc") for side in ("unlearned", "retrained")]
        assert on_disk["final_score"] == pytest.approx(final_score(on_disk["forget_score"], accs[0], accs[1],
                                                                   accs[2], accs[3]))
        assert on_disk["passes_time_cutoff"] == (on_disk["time_ratio"] <= 0.2)

    original_row = scores["original"]
    assert set(original_row["epsilons"]) == {50.0} and original_row["forget_score"] == 0.0
    assert original_row["time_ratio"] == 0.0 and original_row["passes_time_cutoff"]
    assert scores["retrain"]["time_ratio"] > 0.2  # retraining is no unlearning shortcut
    unlearned, retrained = load_pool(tmp_path, "tiny-finetune")
    assert scores["tiny-finetune"]["retain_acc"]["unlearned"] == pytest.approx(100 * unlearned.retain_acc.mean())
    assert scores["tiny-finetune"]["unlearn_time"] == pytest.approx(unlearned.wall_time.mean())

    summary = json.loads((tmp_path / "score.json").read_text())
    assert set(summary["methods"]) == set(scores)
    report = (tmp_path / "report.md").read_text()
    for label in ("`tiny-finetune`", "original (no unlearning)", "retrain (ceiling)"):
        assert f"| {label} | 4 |" in report
    for image in ("epsilon_tiny-finetune.png", "confidences_retrain.png", "epsilon_original.png"):
        assert f"report/{image}" in report
        assert (tmp_path / "report" / image).read_bytes()[:4] == b"\x89PNG"


def test_unknown_method_in_pool_is_named(tmp_path, original):
    run(tmp_path, Counter(make_data()), original, n_models=2)
    with pytest.raises(FileNotFoundError, match="tiny-finetune"):
        load_pool(tmp_path, "never-run")


# ---- the commands, on a tiny original made from the embedded synthetic faces --------------------------------

TINY_SETTING = {"num_people": 24, "images_per_person": [3, 6], "image_size": 16, "forget_people": 3,
                "model": "cnn_tiny", "epochs": 1, "lr": 3e-3}


@pytest.fixture(scope="module")
def tiny_original(tmp_path_factory) -> Path:
    from imgunlearn.challenge.pool_commands import prepare_original

    return prepare_original(tmp_path_factory.mktemp("original"), TINY_SETTING)


def test_run_and_score_commands(tmp_path, tiny_original, capsys):
    from imgunlearn.challenge.pool_commands import load_original, run_main, score_main

    common = ["--n-models", "3", "--original", str(tiny_original), "--out", str(tmp_path / "pool"), "--no-progress"]
    assert run_main(["--method", "finetune", "--shard", "0/2", *common]) == 0
    assert score_main(["--pool", str(tmp_path / "pool")]) == 2
    assert "models missing, indices 1 (seeds " in capsys.readouterr().err
    assert run_main(["--method", "finetune", "--shard", "1/2", *common]) == 0
    assert run_main(["--method", "retrain", *common]) == 0
    capsys.readouterr()
    assert score_main(["--pool", str(tmp_path / "pool")]) == 0
    assert "| `finetune` | 3 |" in capsys.readouterr().out
    score = json.loads((tmp_path / "pool" / "methods" / "finetune" / "score.json").read_text())
    assert score["n_models"] == 3 and len(score["epsilons"]) == len(load_original(tiny_original).data.forget)
    assert score_main(["--pool", str(tmp_path / "pool"), "--method", "scrub"]) == 2
    assert "'scrub' was not run" in capsys.readouterr().err
    assert run_main(["--method", "finetune", "--method-kwargs", '{"epochz": 2}', *common]) == 2
    assert "no hyperparameter 'epochz'" in capsys.readouterr().err
    assert run_main(["--method", "finetune", "--shard", "2/2", *common]) == 2
    assert run_main(["--method", "finetune", "--original", str(tmp_path), "--out", str(tmp_path / "p")]) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_original_directory_errors(tmp_path):
    from imgunlearn.challenge.pool_commands import load_original

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_original(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": "cnn_tiny"}))
    with pytest.raises(ValueError, match="lacks data, epochs"):
        load_original(tmp_path)


def registered_methods() -> list[str]:
    from imgunlearn.challenge.methods import list_methods

    return [name for name in list_methods() if name != "retrain"]


@pytest.mark.parametrize("method", registered_methods())
def test_registered_methods_give_reproducible_pools(tmp_path, tiny_original, method):
    from imgunlearn.challenge.methods import resolve_unlearning
    from imgunlearn.challenge.pool_commands import load_original

    original = load_original(tiny_original, batch_size=16)
    retrain = original.recipe.retrainer(original.data, original.num_classes)
    runs = []
    for attempt in ("a", "b"):
        run_pool(tmp_path / attempt, original.data, original.model, retrain, {"recipe": "tiny"},
                 resolve_unlearning(method), 2, method_name=method, cache_dir=tmp_path / "cache", progress=False)
        runs.append(pool_files(tmp_path / attempt / "methods"))
    assert_same_results(*runs)
    members = load_members(tmp_path / "a" / "methods" / method, [0, 1])
    assert np.isfinite(members.confidences).all() and members.seeds[0] != members.seeds[1]
