"""The pool runner: resumable, shardable, cached, atomic; and the scores and report it produces."""

from __future__ import annotations

import copy
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
from imgunlearn.challenge.pool import runner as runner_lib
from imgunlearn.challenge.pool import store as store_lib

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

    monkeypatch.setattr(store_lib.np, "savez", broken_savez)
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


def raw_members(directory: Path, indices) -> dict[str, np.ndarray]:
    """Member files read with NumPy alone: confidences `[N, |S|]` and the accuracy columns."""
    rows = []
    for k in indices:
        with np.load(directory / f"model_{k:05d}.npz") as archive:
            rows.append(({name: archive[name] for name in ("confidences", "retain_sample", "test_sample")},
                         json.loads(str(archive["meta"]))))
    return {"conf": np.stack([a["confidences"] for a, _ in rows]),
            "retain": np.stack([a["retain_sample"] for a, _ in rows]),
            "test": np.stack([a["test_sample"] for a, _ in rows]),
            **{key: np.array([m[key] for _, m in rows]) for key in ("retain_acc", "test_acc", "forget_acc")}}


def test_score_json_and_report(tmp_path, original):
    from challenge_oracle import oracle_epsilons, oracle_forget_score_from_epsilons

    from imgunlearn.challenge.klom import klom

    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=4)
    run(tmp_path, counter, original, method="retrain", n_models=4)
    assert counter.retrain_calls == 8  # the independent reference pool adds members 4..7 only
    scores = score_pool(tmp_path)
    assert set(scores) == {"tiny-finetune", "original", "retrain"}

    # every row against the raw confidence arrays, scored by the spec's direct transcription
    cache = next((tmp_path / "cache").glob("retrained-*"))
    retrained = raw_members(cache, range(4))
    with np.load(tmp_path / "original.npz") as archive:
        original_conf = np.tile(archive["confidences"], (4, 1))
        original_meta = json.loads(str(archive["meta"]))
    unlearned = {"tiny-finetune": raw_members(tmp_path / "methods" / "tiny-finetune", range(4)),
                 "retrain": raw_members(cache, range(4, 8)),
                 "original": {"conf": original_conf, **{k: np.full(4, original_meta[k])
                                                         for k in ("retain_acc", "test_acc", "forget_acc")}}}
    for name, score in scores.items():
        on_disk = json.loads((tmp_path / "methods" / pool_lib.method_slug(name) / "score.json").read_text())
        assert on_disk == json.loads(json.dumps(score))
        eps = oracle_epsilons(unlearned[name]["conf"], retrained["conf"])
        np.testing.assert_allclose(on_disk["epsilons"], eps, atol=1e-4)
        forget = oracle_forget_score_from_epsilons(eps, 4)
        assert on_disk["forget_score"] == pytest.approx(forget)
        ratio = {key: unlearned[name][key].mean() / retrained[key].mean() for key in ("retain_acc", "test_acc")}
        assert on_disk["final_score"] == pytest.approx(forget * ratio["retain_acc"] * ratio["test_acc"])
        for key in ("retain_acc", "test_acc", "forget_acc"):
            assert on_disk[key] == pytest.approx({"unlearned": 100 * unlearned[name][key].mean(),
                                                  "retrained": 100 * retrained[key].mean()})
        assert on_disk["n_models"] == 4 and len(on_disk["epsilons"]) == 10
        assert on_disk["passes_time_cutoff"] == (on_disk["time_ratio"] <= 0.2)
        if name != "original":  # KLoM of the stored arrays, per set; ToW of the stored accuracies
            for split, key in (("forget", "conf"), ("retain", "retain"), ("test", "test")):
                values = klom(unlearned[name][key], retrained[key])
                assert on_disk["klom"][split]["mean"] == pytest.approx(values.mean())
                assert on_disk["klom"][split]["p95"] == pytest.approx(np.percentile(values, 95))
            assert on_disk["tow"] == pytest.approx(np.prod([
                1 - abs(unlearned[name][key].mean() - retrained[key].mean())
                for key in ("forget_acc", "retain_acc", "test_acc")]))

    original_row = scores["original"]
    assert set(original_row["epsilons"]) == {50.0} and original_row["forget_score"] == 0.0
    assert original_row["time_ratio"] == 0.0 and original_row["passes_time_cutoff"]
    assert scores["retrain"]["time_ratio"] > 0.2  # retraining is no unlearning shortcut

    summary = json.loads((tmp_path / "score.json").read_text())
    assert set(summary["methods"]) == set(scores)
    report = (tmp_path / "report.md").read_text()
    for label in ("`tiny-finetune`", "original (no unlearning)", "retrain (ceiling)"):
        assert f"| {label} | 4 |" in report
    assert "| KLoM forget | KLoM retain | KLoM test | ToW |" in report
    for image in ("epsilon_tiny-finetune.png", "confidences_retrain.png", "epsilon_original.png"):
        assert f"report/{image}" in report
        assert (tmp_path / "report" / image).read_bytes()[:4] == b"\x89PNG"


def test_members_store_the_fixed_retain_and_test_sample(tmp_path, original):
    data = make_data()
    run(tmp_path, Counter(data), original, n_models=2)
    manifest = json.loads((tmp_path / "pool.json").read_text())
    assert manifest["samples"] == pool_lib.sample_indices(data, 0)
    assert sorted(manifest["samples"]["retain"]) == manifest["samples"]["retain"]
    assert len(manifest["samples"]["retain"]) == len(data.retain)  # fewer than 256: all of them
    assert pool_lib.sample_indices(data, 0, size=5)["test"] != pool_lib.sample_indices(data, 1, size=5)["test"]
    path = member_path(tmp_path / "methods" / "tiny-finetune", 1)
    confidences, meta, samples = read_member(path, with_samples=True)
    assert set(samples) == {"retain", "test"} and samples["test"].shape == (len(data.test),)
    assert meta["device"] == "cpu" and meta["code"] == pool_lib.code_digest()
    # the stored sample confidences are the model's own: recompute from a net rebuilt the same way
    from imgunlearn.challenge.scoring import logit_scaled_confidence

    counter = Counter(data)
    net = copy.deepcopy(original)
    seed = pool_lib.derive_seed(0, "unlearned", 1)
    with pool_lib.seeded(seed, deterministic=True):
        counter.unlearning(net, *data.unlearning_loaders(seed))
    with torch.no_grad():
        images = torch.stack([data.test[i]["image"] for i in manifest["samples"]["test"]])
        labels = np.array([int(data.test[i]["age_group"]) for i in manifest["samples"]["test"]])
        expected = logit_scaled_confidence(net.eval()(images).double().numpy(), labels)
    np.testing.assert_allclose(samples["test"], expected, rtol=1e-6, atol=1e-6)


def test_truncated_member_is_named_when_scoring(tmp_path, original):
    run(tmp_path, Counter(make_data()), original, n_models=2)
    path = member_path(tmp_path / "methods" / "tiny-finetune", 1)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"model_00001\.npz is unreadable \(truncated or corrupt"):
        score_pool(tmp_path, report=False)


def test_changed_code_starts_new_members_and_score_names_the_mix(tmp_path, original, monkeypatch):
    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=2, method_name="a")
    monkeypatch.setattr(runner_lib, "code_digest", lambda: "9.9.9+other")
    with pytest.raises(ValueError, match=r"method 'a' .* other inputs \(code .* now 9\.9\.9\+other"):
        run(tmp_path, counter, original, n_models=2, method_name="a")
    run(tmp_path, counter, original, n_models=2, method_name="b")  # new code: new retrained members too
    assert counter.retrain_calls == 4 and len(list((tmp_path / "cache").glob("retrained-*"))) == 2
    with pytest.raises(ValueError, match=r"'a' .* cannot be scored: .* made by imgunlearn code .* by 9\.9\.9\+other"):
        score_pool(tmp_path, ["a"], report=False)
    assert score_pool(tmp_path, ["b"], report=False)["b"]["code"] == "9.9.9+other"
    run(tmp_path, counter, original, n_models=2, method_name="a", overwrite=True)  # replaces a's members
    assert counter.unlearn_calls == 6
    assert score_pool(tmp_path, ["a"], report=False)["a"]["code"] == "9.9.9+other"


def test_overwrite_replaces_only_other_configurations_and_keeps_the_cache(tmp_path, original):
    counter = Counter(make_data())
    run(tmp_path, counter, original, n_models=2)
    other = tiny_net()
    with pytest.raises(ValueError, match="pool of another original_hash .* pass --overwrite"):
        run(tmp_path, counter, other, n_models=2)
    score_pool(tmp_path, report=False)
    run(tmp_path, counter, other, n_models=2, method_name="other", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "methods").iterdir()) == ["other"]  # the old pool's methods went
    assert not (tmp_path / "score.json").exists()
    assert counter.retrain_calls == 2  # same split, recipe and code: the cached retrained members were kept
    summary = run(tmp_path, counter, other, n_models=2, method_name="other", overwrite=True)
    assert summary.made == {"retrained": 0, "unlearned": 0}  # matching members are never removed
    run(tmp_path, counter, other, n_models=2, method_name="other", overwrite_cache=True)
    assert counter.retrain_calls == 4
    with pytest.raises(ValueError, match="overwrite_cache with several shards"):
        run(tmp_path, counter, other, n_models=2, method_name="other", overwrite_cache=True, shard=(0, 2))


def test_member_hash_covers_a_user_module_file(tmp_path):
    module = tmp_path / "user_method.py"
    module.write_text("SCALE = 1.0\n\ndef helper(x):\n    return x * SCALE\n\n"
                      "def unlearning(net, retain, forget, val):\n    return helper(net)\n")
    from imgunlearn.challenge.methods import resolve_unlearning

    first = pool_lib.hash_callable(resolve_unlearning(f"{module}:unlearning"))
    module.write_text(module.read_text().replace("SCALE = 1.0", "SCALE = 2.0"))  # a global, not the function
    second = pool_lib.hash_callable(resolve_unlearning(f"{module}:unlearning"))
    assert first != second
    assert pool_lib.hash_callable(resolve_unlearning(f"{module}:unlearning")) == second


def test_unlearning_returning_another_architecture_is_refused(tmp_path, original):
    def wider(net, retain_loader, forget_loader, val_loader):
        return nn.Sequential(nn.Flatten(), nn.Linear(48, NUM_CLASSES + 1))

    with pytest.raises(ValueError, match=r"does not have the original's architecture .*1\.weight \(5, 48\) "
                                         r"instead of \(4, 48\)"):
        run(tmp_path, Counter(make_data()), original, method=wider, n_models=1)


def test_non_finite_outputs_are_refused_with_the_model_and_split(tmp_path, original):
    def broken(net, retain_loader, forget_loader, val_loader):
        with torch.no_grad():
            net[1].bias.fill_(float("nan"))

    with pytest.raises(ValueError, match=r"non-finite outputs of unlearned model 0 \(seed \d+\) on retain"):
        run(tmp_path, Counter(make_data()), original, method=broken, n_models=1)


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
    assert run_main(["--method", "finetune", "--original", str(tiny_original), "--out", str(tiny_original)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert run_main(["--method", "finetune", "--n_models", "1", "--original", str(tiny_original),
                     "--out", str(tiny_original.parent)]) == 2  # contains the original
    assert "contains the input" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert run_main(["--method", "finetune", *common[:4], "--out", str(tmp_path / "other")]) == 2
    assert "files that are not a pool" in capsys.readouterr().err


def test_original_directory_errors(tmp_path):
    from imgunlearn.challenge.pool_commands import load_original

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_original(tmp_path)
    for name in ("config.json", "metrics.json", "splits.json"):
        (tmp_path / name).write_text(json.dumps({"model": "cnn_tiny"}))
    with pytest.raises(ValueError, match="not a complete train-original run"):  # e.g. a failed run's leftovers
        load_original(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(ValueError, match="not a complete train-original run"):
        load_original(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"status": "complete"}))
    with pytest.raises(ValueError, match="lacks data, epochs"):
        load_original(tmp_path)


def registered_methods() -> list[str]:
    from imgunlearn.challenge.methods import list_methods

    return [name for name in list_methods() if name != "retrain"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One retrained cache for every registered method's pool (same split, recipe and code: trained once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("method", registered_methods())
def test_registered_methods_give_reproducible_pools(tmp_path, tiny_original, shared_cache, method):
    from imgunlearn.challenge.methods import resolve_unlearning
    from imgunlearn.challenge.pool_commands import load_original

    original = load_original(tiny_original, batch_size=16)
    retrain = original.recipe.retrainer(original.data, original.num_classes)
    runs = []
    for attempt, n_models in (("a", 2), ("b", 1)):  # member 0 made twice, member 1 once
        run_pool(tmp_path / attempt, original.data, original.model, retrain, {"recipe": "tiny"},
                 resolve_unlearning(method), n_models, method_name=method, cache_dir=shared_cache, progress=False)
        runs.append({name: value for name, value in pool_files(tmp_path / attempt / "methods").items()
                     if name.endswith("model_00000.npz")})
    assert_same_results(*runs)
    members = load_members(tmp_path / "a" / "methods" / method, [0, 1])
    assert np.isfinite(members.confidences).all() and members.seeds[0] != members.seeds[1]
