"""Dead-code restart of the VQ-GAN codebook: which codes move, where to, when, and that replicas agree."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from imgunlearn.models import create_model


def _model(every: int):
    torch.manual_seed(0)
    return create_model("vqgan_tiny", code_restart_every=every).train()


def test_unpicked_codes_move_onto_latents_of_the_batch():
    model = _model(every=1)
    codebook = model.vq.quantize.embedding.weight
    before = codebook.detach().clone()
    latent = torch.randn(2, codebook.shape[1], 3, 3)
    codes = torch.tensor([0, 1] * 9)  # only codes 0 and 1 picked
    moved = model.restart_dead_codes(latent, codes)
    assert moved == codebook.shape[0] - 2
    assert torch.equal(codebook[:2], before[:2])
    vectors = latent.permute(0, 2, 3, 1).reshape(-1, codebook.shape[1])
    for row in codebook[2:]:
        assert torch.isclose(vectors, row).all(dim=1).any()  # every moved code is one of the batch's latents


def test_restart_waits_for_its_interval_and_counts_every_step_since_the_last_check():
    model = _model(every=3)
    codebook = model.vq.quantize.embedding.weight
    n = codebook.shape[0]
    latent = torch.randn(1, codebook.shape[1], 2, 2)
    assert model.restart_dead_codes(latent, torch.tensor([0, 0, 0, 0])) == 0
    assert model.restart_dead_codes(latent, torch.tensor([1, 1, 1, 1])) == 0  # not yet: 2 of 3 steps
    assert model.restart_dead_codes(latent, torch.tensor([2, 2, 2, 2])) == n - 3  # codes 0-2 were picked once


def test_training_step_restarts_only_a_codebook_that_is_trained():
    images = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    model = _model(every=1)
    codebook = model.vq.quantize.embedding.weight
    codebook.requires_grad_(False)  # encoder-only unlearning freezes everything but the encoder
    before = codebook.detach().clone()
    model.reconstruction_loss(images, mask, images)
    assert torch.equal(codebook, before)
    codebook.requires_grad_(True)
    model.reconstruction_loss(images, mask, images)
    assert not torch.equal(codebook, before)
    off = _model(every=0)
    before = off.vq.quantize.embedding.weight.detach().clone()
    off.reconstruction_loss(images, mask, images)
    assert torch.equal(off.vq.quantize.embedding.weight, before)


def test_code_restart_every_must_not_be_negative():
    with pytest.raises(ValueError, match="code_restart_every must be >= 0, got -1"):
        create_model("vqgan_tiny", code_restart_every=-1)


def _replica(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    model = _model(every=1)
    torch.manual_seed(100 + rank)  # each rank sees its own batch and draws its own picks
    dim = model.vq.quantize.embedding.weight.shape[1]
    latent = torch.randn(1, dim, 2, 2)
    model.restart_dead_codes(latent, torch.tensor([rank] * 4))  # rank 0 picks code 0, rank 1 code 1
    torch.save(model.vq.quantize.embedding.weight.detach(), f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_replicas_keep_the_same_codebook_under_distributed_training(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_replica, args=(port, str(tmp_path)), nprocs=2, join=True)
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(first, second)
    fresh = _model(every=1).vq.quantize.embedding.weight.detach()
    assert torch.equal(first[:2], fresh[:2])  # codes 0 and 1 were picked on some rank: kept
    assert not torch.equal(first[2:], fresh[2:])


def _fit(tmp_path, ckpt_path: str | None = None, interrupt: bool = False):
    """8 pretraining steps of a restarting vqgan_tiny, checkpointing after step 4; `interrupt` stops it after
    step 5 (the step-4 checkpoint is the last one)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from imgunlearn.training import Pretrainer

    generator = torch.Generator().manual_seed(1)
    images = torch.rand(8, 3, 16, 16, generator=generator)
    batches = [{"input": images[i:i + 2], "mask": torch.zeros(2, 1, 16, 16), "image": images[i:i + 2]}
               for i in range(0, 8, 2)]  # 4 steps per epoch, the same order every epoch

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            trainer.should_stop = interrupt and trainer.global_step == 5

    module = Pretrainer(_model(every=3), warmup_steps=1)
    checkpoints = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1)
    trainer = L.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[checkpoints, Interrupt()])
    trainer.fit(module, DataLoader(batches, batch_size=None), ckpt_path=ckpt_path)
    return module.model


def test_a_resumed_pretraining_restarts_codes_at_the_same_steps(tmp_path):
    """Restarts every 3 steps: the step-4 checkpoint is one step into a count."""
    whole = _fit(tmp_path / "whole")
    _fit(tmp_path / "killed", interrupt=True)
    (step4,) = (tmp_path / "killed").glob("*step=4.ckpt")
    assert torch.load(step4, weights_only=False)["model_training_state"]["steps_since_restart"] == 1
    resumed = _fit(tmp_path / "resumed", ckpt_path=str(step4))
    assert torch.equal(resumed.code_counts, whole.code_counts)
    assert torch.allclose(resumed.vq.quantize.embedding.weight, whole.vq.quantize.embedding.weight, atol=1e-6)


def test_a_checkpoint_with_another_codebook_size_is_refused():
    with pytest.raises(ValueError, match="vqgan_tiny has 32 codes, the checkpoint counts 16"):
        _model(every=3).load_training_state({"code_counts": torch.zeros(16), "steps_since_restart": 0})
