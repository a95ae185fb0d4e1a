"""What pretraining and unlearning share around the optimiser: the schedule, argument checks, finiteness checks,
per-step (and per-rank) randomness and the strategies they support."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import torch
from torch import Tensor, nn


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over `warmup_steps`, then a cosine decay to zero at `total_steps` (stepped per batch).

    This is `diffusers.optimization.get_cosine_schedule_with_warmup`. The hand-written schedule it replaced gave
    the same rates from step `warmup_steps` on; during the warm-up it ran one step ahead (`(step + 1) / warmup`
    instead of `step / warmup`), so its first step was not at rate 0.
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup

    check_count("warmup_steps", warmup_steps)
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, max(total_steps, warmup_steps + 1))


def check_count(name: str, value: int) -> None:
    """A whole number >= 0 (refuses NaN, inf and fractions)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 \
            or int(value) != value:
        raise ValueError(f"{name} must be a whole number >= 0, got {value}")


def check_positive(name: str, value: float) -> None:
    """A finite number > 0."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def check_non_negative(name: str, value: float) -> None:
    """A finite number >= 0."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def check_betas(betas) -> None:
    if len(betas) != 2 or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {list(betas)}")


def check_finite_loss(module: L.LightningModule, loss: Tensor) -> None:
    """Stop on a non-finite loss on any process (every process takes part, so none waits for the others)."""
    bad = not bool(torch.isfinite(loss.detach()).all())
    trainer = module._trainer
    if trainer is not None and trainer.world_size > 1:
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
    if bad:
        raise FloatingPointError(f"non-finite training loss {loss.detach().flatten()[:1].tolist()} at step "
                                 f"{module.global_step} (on this or another process)")


def check_finite_weights(model: nn.Module, step: int) -> None:
    """Stop when an optimiser step made a trainable weight NaN or inf, naming it (the same on every process)."""
    trained = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    if not trained:
        return
    finite = torch.stack([torch.isfinite(param.detach()).all() for _, param in trained])  # [P], one device sync below
    if bool(finite.all()):
        return
    name = trained[int((~finite).nonzero()[0])][0]
    raise FloatingPointError(f"parameter {name} became non-finite after step {step}; lower the learning rate")


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of one training step on one process: different on every rank, the same when rerun."""
    return (seed * 1_000_003 + step + (rank << 48)) % 2**63


@contextmanager
def step_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators (CPU and the step's CUDA device) for one step, restoring them afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def check_strategy(trainer: L.Trainer) -> None:
    """Refuse strategies the I2I training cannot run under (sharded parameters break the frozen reference and the
    encoder-only parameter selection)."""
    name = type(trainer.strategy).__name__
    if "FSDP" in name or "DeepSpeed" in name or "ModelParallel" in name:
        raise ValueError(f"strategy {name} is not supported by imgunlearn's I2I training: it shards parameters, which "
                         "breaks the frozen reference copy and the encoder-only parameter selection; use "
                         "strategy='ddp' (one full model copy per device)")
