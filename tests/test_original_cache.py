"""scripts/original_cache.py: an original is trained once per configuration and reused by a rerun."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from imgunlearn.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import original_cache  # noqa: E402

DATA = {"source": "synthetic", "size": 16, "num_forget": 4, "num_retain": 4, "num_holdout_forget": 2,
        "num_holdout_retain": 2, "batch_size": 2, "seed": 0}


def test_a_rerun_reuses_the_original_and_another_configuration_trains_its_own(tmp_path, monkeypatch):
    entry = original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=1, progress=False)
    weights = load_model(entry / "original").state_dict()
    record = json.loads((entry / "key.json").read_text())
    assert record["model"] == {"name": "unet_tiny", "channels": [8, 16]} and record["recipe"]["steps"] == 1
    assert json.loads((entry / "demo.json").read_text())["timings"]["pretrain_s"] > 0
    assert entry.name == original_cache.original_key(record["model"], DATA, record["recipe"])[0]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached original was trained again")

    monkeypatch.setattr(original_cache, "pretrain", no_training)
    again = original_cache.cached_original(tmp_path, "unet_tiny", dict(DATA), steps=1, progress=False)
    assert again == entry
    assert all(torch.equal(v, load_model(again / "original").state_dict()[k]) for k, v in weights.items())
    with pytest.raises(AssertionError, match="trained again"):  # another recipe or data: another entry
        original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=2, progress=False)
    with pytest.raises(AssertionError, match="trained again"):
        original_cache.cached_original(tmp_path, "unet_tiny", {**DATA, "seed": 1}, steps=1, progress=False)
    with pytest.raises(AssertionError, match="trained again"):  # a preset override is another model
        original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=1, progress=False,
                                       model_kwargs={"channels": [8, 8]})
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # failed builds leave nothing behind


def test_the_retrain_reference_is_its_own_entry_trained_on_the_retain_set_only(tmp_path, monkeypatch):
    seen = []

    def retrain(config, data, steps, seed, accelerator, progress):
        seen.append((config, steps, seed))
        return original_cache.create_model("unet_tiny")

    monkeypatch.setattr(original_cache, "retrain_on_retain_set", retrain)
    original = original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=1, progress=False)
    reference = original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=1, progress=False, retain_only=True)
    assert reference != original and seen == [({"name": "unet_tiny", "channels": [8, 16]}, 1, 0)]
    assert json.loads((reference / "key.json").read_text())["recipe"]["retain_only"] is True
    assert "retain_only" not in json.loads((original / "key.json").read_text())["recipe"]  # old keys unchanged
    assert original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=1, retain_only=True) == reference
    assert len(seen) == 1
    with pytest.raises(ValueError, match="retrain reference uses the pretraining defaults.*got lr 0.01"):
        original_cache.cached_original(tmp_path, "unet_tiny", DATA, steps=1, lr=1e-2, retain_only=True)
