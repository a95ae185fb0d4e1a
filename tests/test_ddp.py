"""Several processes: forget-set sharding, resumable loaders, and the Lightning commands under DDP (2 CPU processes,
gloo) on a tiny U-Net."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import CONFIGS, DATA, DDP, ok, run_cli

import imgunlearn
from imgunlearn.data.datasets import mix_seed
from imgunlearn.data.sampling import PairedSampler, ResumableLoader, ShuffledBatchSampler, shard_batches
from imgunlearn.optim import check_strategy, step_seed


def weights(path: Path) -> dict[str, torch.Tensor]:
    return imgunlearn.load_model(path).state_dict()


# ---- sharding -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("num", "batch", "replicas"), [(10, 4, 1), (10, 2, 2), (9, 4, 2), (17, 4, 2), (8, 3, 4),
                                                        (13, 2, 3), (200, 16, 8)])
def test_shards_are_disjoint_cover_everything_and_step_together(num, batch, replicas):
    shards = [shard_batches(num, batch, replicas, rank) for rank in range(replicas)]
    positions = [p for shard in shards for b in shard for p in b]
    assert sorted(positions) == list(range(num))  # every item once, on exactly one process
    assert len({len(shard) for shard in shards}) == 1  # every process makes the same number of steps
    assert all(1 <= len(b) <= batch for shard in shards for b in shard)


def test_one_process_keeps_full_batches_in_order():
    assert shard_batches(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="cannot shard 3 items over 4 processes"):
        shard_batches(3, 2, 4, 0)


def test_paired_sampler_shards_the_forget_set_over_two_ranks():
    ranks = [PairedSampler(11, 5, batch_size=2, seed=3, num_replicas=2, rank=r) for r in range(2)]
    forget = [[key[0][0] for batch in sampler for key in batch] for sampler in ranks]
    assert not set(forget[0]) & set(forget[1])
    assert sorted(forget[0] + forget[1]) == list(range(11))
    assert len(ranks[0]) == len(ranks[1]) == 3
    # one process sees the global order of the epoch, which two processes share out between them
    single = [key for batch in PairedSampler(11, 5, batch_size=2, seed=3) for key in batch]
    shared = {key for sampler in (PairedSampler(11, 5, 2, 3, 2, r) for r in range(2)) for b in sampler for key in b}
    assert set(single) == shared


def test_one_process_order_is_the_unsharded_seeded_order():
    """With one process the batches are the seeded permutation cut into pieces, as before sharding existed."""
    generator = torch.Generator().manual_seed(mix_seed(0, "PairedSampler", 0))
    forget_order = torch.randperm(7, generator=generator).tolist()
    batches = list(PairedSampler(7, 3, batch_size=3, seed=0))
    assert [[key[0][0] for key in b] for b in batches] == [forget_order[:3], forget_order[3:6], forget_order[6:]]
    pretrain = torch.Generator().manual_seed(mix_seed(0, "ShuffledSampler", 0))
    assert [k[0] for b in ShuffledBatchSampler(5, 2) for k in b] == torch.randperm(5, generator=pretrain).tolist()


class Keys(torch.utils.data.Dataset):
    """Yields the sampler's keys `(index, draw_seed)` themselves."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, key):
        return key


def test_resumable_loader_continues_after_the_batches_already_trained_on():
    def loader():
        return ResumableLoader(Keys(), batch_sampler=ShuffledBatchSampler(7, 2, seed=1), collate_fn=list)

    uninterrupted = loader()
    whole = [list(uninterrupted), list(uninterrupted)]  # two epochs
    stopped = loader()
    batches = iter(stopped)
    seen = [next(batches), next(batches)]
    state = stopped.state_dict()
    assert state == {"epoch": 0, "batches": 2}
    resumed = loader()
    resumed.load_state_dict(state)
    assert seen + list(resumed) == whole[0]
    resumed.batch_sampler.set_epoch(1)
    assert list(resumed) == whole[1]
    finished = loader()
    finished.load_state_dict({"epoch": 0, "batches": 4})  # a checkpoint at the end of an epoch moves on
    assert list(finished) == whole[1]


def test_step_seeds_differ_by_rank_and_rank_zero_keeps_the_one_process_seed():
    assert step_seed(3, 10, 0) == 3 * 1_000_003 + 10
    assert len({step_seed(3, 10, r) for r in range(4)}) == 4


def test_sharded_parameter_strategies_are_refused_by_name():
    from lightning.pytorch.strategies import FSDPStrategy

    with pytest.raises(ValueError, match="FSDPStrategy is not supported.*strategy='ddp'"):
        check_strategy(SimpleNamespace(strategy=FSDPStrategy()))


# ---- the commands under DDP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_original(tmp_path_factory) -> Path:
    """An original U-Net pretrained by `imgunlearn pretrain` with two DDP processes."""
    work = tmp_path_factory.mktemp("ddp")
    ok(run_cli("pretrain", "--config", f"{CONFIGS}/experiment/pretrain.yaml", "--config",
               f"{CONFIGS}/model/unet_small.yaml", "--model.init_args.model.init_args.channels", "[8, 16]",
               *DATA, *DDP, "--trainer.max_steps", "3", "--out", "original", cwd=work))
    return work / "original"


def test_ddp_pretrain_saves_one_loadable_model(ddp_original):
    assert imgunlearn.load_model(ddp_original / "model").config["channels"] == [8, 16]
    assert {p.name for p in (ddp_original / "model").iterdir()} == {"config.json", "model.safetensors", "task.json"}
    assert '"status": "complete"' in (ddp_original / "run.json").read_text()
    assert not list(ddp_original.parent.glob(".*incomplete*"))
    checkpoint = torch.load(ddp_original / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3


@pytest.mark.parametrize("method", ["encoder_teacher", "noisy_label"])
def test_ddp_unlearning_saves_a_model_that_moved(ddp_original, method):
    work = ddp_original.parent
    ok(run_cli("unlearn", "--config", f"{CONFIGS}/method/{method}.yaml", "--model.init_args.model",
               str(ddp_original / "model"), *DATA, *DDP, "--trainer.max_steps", "3", "--out", method, cwd=work))
    before, after = weights(ddp_original / "model"), weights(work / method / "model")
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved
    if method == "encoder_teacher":
        model = imgunlearn.load_model(ddp_original / "model")
        encoder = {name for name, p in model.named_parameters() if any(p is q for q in model.encoder_parameters())}
        assert set(moved) <= encoder
    checkpoint = torch.load(work / method / "checkpoints" / "last.ckpt", weights_only=False)
    assert not [k for k in checkpoint["state_dict"] if k.startswith("reference.")]  # the original is not saved twice
    assert checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches": 1}]


KILL_AT_STEP_4 = """
import os, signal, sys
from imgunlearn.training import Pretrainer
def stop(self, outputs, batch, batch_idx):
    if self.global_step == 4:  # after the step-3 checkpoint and one more step, on every rank
        os.kill(os.getpid(), signal.SIGKILL)
Pretrainer.on_train_batch_end = stop
from imgunlearn.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_ddp_pretraining_with_code_restarts_resumes_like_an_uninterrupted_one(tmp_path):
    """A VQ-GAN restarting dead codes every 2 steps, on 2 processes: the step-3 checkpoint is one step into a
    count, so the resumed run restarts at the same steps only if the counts it saved were the global ones."""
    args = ["pretrain", "--config", f"{CONFIGS}/experiment/pretrain.yaml",
            "--config", f"{CONFIGS}/model/vqgan_small_f2.yaml",
            "--model.init_args.model.init_args.block_out_channels", "[8, 16]",
            "--model.init_args.model.init_args.num_vq_embeddings", "16",
            "--model.init_args.model.init_args.code_restart_every", "2", *DATA, *DDP,
            "--trainer.max_steps", "6", "--checkpoint_every", "3"]
    ok(run_cli(*args, "--out", "whole", cwd=tmp_path))
    script = tmp_path / "kill_at_step_4.py"
    script.write_text(KILL_AT_STEP_4)
    killed = run_cli(*args, "--out", "killed", cwd=tmp_path, script=script)
    assert killed.returncode == -9, killed.stderr[-3000:]
    step3 = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert step3["global_step"] == 3 and step3["model_training_state"]["steps_since_restart"] == 1
    ok(run_cli(*args, "--out", "killed", "--ckpt_path", "last", cwd=tmp_path))
    whole, resumed = weights(tmp_path / "whole" / "model"), weights(tmp_path / "killed" / "model")
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) <= 1e-6
