"""Pools on any device: every model and batch of the challenge commands goes to `--device`; `--shard auto`.

No GPU here, so placement is checked by recording it: `Module.to` and `Tensor.to` mark what they moved and to
which device, and every forward of the challenge's CNN asserts that the model and its input were both moved to
the requested device (and that their devices agree, which is the check that matters on a GPU). A code path that
forgets a `.to(device)` fails here even on CPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from imgunlearn.challenge.models import SmallCNN
from imgunlearn.challenge.pool import job_devices, local_device, resolve_shard, shard_from_env

MARK = "_imgunlearn_test_placed"
REQUESTED = "cpu"


@pytest.fixture
def placement_checked(monkeypatch):
    tensor_to, module_to, forward = torch.Tensor.to, nn.Module.to, SmallCNN.forward
    seen = {"forwards": 0}

    def target(args, kwargs) -> str | None:
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        return None if device is None else str(device)

    def spy_tensor_to(self, *args, **kwargs):
        moved = tensor_to(self, *args, **kwargs)
        device = target(args, kwargs)
        if device is not None:
            setattr(moved, MARK, device)
        return moved

    def spy_module_to(self, *args, **kwargs):
        moved = module_to(self, *args, **kwargs)
        device = target(args, kwargs)
        if device is not None:
            object.__setattr__(moved, MARK, device)
        return moved

    def checked_forward(self, x):
        assert x.device == next(self.parameters()).device
        assert getattr(self, MARK, None) == REQUESTED, "a model was used without being moved to --device"
        assert getattr(x, MARK, None) == REQUESTED, "a batch was used without being moved to --device"
        seen["forwards"] += 1
        return forward(self, x)

    monkeypatch.setattr(torch.Tensor, "to", spy_tensor_to)
    monkeypatch.setattr(nn.Module, "to", spy_module_to)
    monkeypatch.setattr(SmallCNN, "forward", checked_forward)
    return seen


def test_every_challenge_command_places_models_and_batches_on_the_device(tmp_path, placement_checked, capsys):
    from imgunlearn.challenge.commands import train_original_main, unlearn_main
    from imgunlearn.challenge.pool import read_member
    from imgunlearn.challenge.pool_commands import run_main

    original = tmp_path / "original"
    assert train_original_main(["--synthetic", "--num_people", "20", "--images_per_person", "[3, 5]",
                                "--forget_people", "3", "--image_size", "16", "--model", "cnn_tiny", "--epochs", "1",
                                "--device", REQUESTED, "--out", str(original)]) == 0
    assert placement_checked["forwards"] > 0
    assert json.loads((original / "metrics.json").read_text())["device"] == REQUESTED
    for method in ("finetune", "retrain"):
        assert unlearn_main(["--method", method, "--set", "epochs=1", "--original", str(original),
                             "--out", str(tmp_path / method), "--device", REQUESTED]) == 0
    pool = tmp_path / "pool"
    common = ["--n_models", "1", "--original", str(original), "--out", str(pool), "--device", REQUESTED,
              "--no_progress"]
    assert run_main(["--method", "finetune", *common]) == 0
    assert run_main(["--method", "retrain", *common]) == 0
    assert f"on {REQUESTED}" in capsys.readouterr().out
    for path in [pool / "original.npz", *pool.rglob("model_*.npz")]:
        assert read_member(path)[1]["device"] == REQUESTED


def test_user_unlearning_receives_a_network_already_on_the_device(tmp_path, placement_checked):
    from imgunlearn.challenge.data import FaceAgeDataset, split_faces
    from imgunlearn.challenge.pool import PoolData, run_pool
    from imgunlearn.challenge.pool_commands import Recipe
    from imgunlearn.challenge.synthetic_faces import generate_faces

    splits = split_faces(FaceAgeDataset.from_faces(generate_faces(20, (3, 5), 16, 0)), 3, seed=0)
    retain, forget, val, test = (splits.subset(name) for name in ("retain", "forget", "val", "test"))
    data = PoolData(retain, forget, val, test, batch_size=16)
    recipe = Recipe(model="cnn_tiny", epochs=1, keep_best=False)
    original = recipe.train(retain, None, 10, seed=0, device=REQUESTED)
    received = []

    def unlearning(net, retain_loader, forget_loader, val_loader):
        received.append(getattr(net, MARK, None))
        with torch.no_grad():
            for batch in forget_loader:
                net(batch["image"].to(next(net.parameters()).device))

    run_pool(tmp_path, data, original, recipe.retrainer(data, 10, REQUESTED), {"recipe": "tiny"}, unlearning, 2,
             device=REQUESTED, progress=False)
    assert received == [REQUESTED, REQUESTED]


@pytest.mark.parametrize(("env", "shard"), [
    ({}, (0, 1)),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (3, 4)),  # torchrun
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (5, 8)),
    ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}, (2, 4)),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, (3, 6)),
    ({"SLURM_PROCID": "2", "SLURM_NTASKS": "3"}, (2, 3)),  # srun tasks of one job
    ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (1, 2)),  # torchrun inside SLURM
])
def test_shard_auto_reads_the_launcher_environment(env, shard):
    assert shard_from_env(env) == shard
    assert resolve_shard("auto", env) == shard
    assert resolve_shard("1/3", env) == (1, 3) and resolve_shard(None, env) == (0, 1)


def test_shard_auto_refuses_a_bad_environment():
    with pytest.raises(ValueError, match="RANK='x'"):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="shard 4/4"):
        shard_from_env({"SLURM_PROCID": "4", "SLURM_NTASKS": "4"})


def test_jobs_spread_over_the_visible_gpus():
    assert job_devices("cuda", 3, 2) == ["cuda:0", "cuda:1", "cuda:0"]
    assert job_devices("cuda", 2, 4) == ["cuda:0", "cuda:1"]
    assert job_devices("cuda:1", 2, 4) == ["cuda:1", "cuda:1"]
    assert job_devices("cpu", 2, 0) == ["cpu", "cpu"]
    assert local_device("cpu", {"LOCAL_RANK": "1"}) == "cpu"
    assert local_device("cuda", {}) == "cuda"
