"""The shared optimisation helpers: the diffusers warm-up cosine schedule against the hand-written one it replaced,
non-finite weights named, encoder-only methods leave nothing trainable without a gradient (what DDP needs), and
the reference kept out of the state dict."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from imgunlearn.data.tasks import Task
from imgunlearn.methods import METHODS
from imgunlearn.models.base import create_model
from imgunlearn.optim import warmup_cosine
from imgunlearn.registry import MODELS
from imgunlearn.training import Pretrainer


def old_factor(step: int, warmup: int, total: int) -> float:
    """The schedule that `warmup_cosine` used before it became diffusers' (transcribed)."""
    total = max(total, warmup + 1)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / (total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@pytest.mark.parametrize(("warmup", "total"), [(0, 10), (3, 10), (20, 500), (25, 300)])
def test_warmup_cosine_matches_the_old_schedule_after_warmup_and_lags_it_by_one_step_before(warmup, total):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = warmup_cosine(optimizer, warmup, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    for step, rate in enumerate(rates):
        expected = 2.0 * (old_factor(step - 1, warmup, total) if 0 < step <= warmup else old_factor(step, warmup, total))
        if step == 0 and warmup > 0:
            expected = 0.0  # diffusers' warm-up starts at 0, the old one at 1 / warmup
        assert rate == pytest.approx(expected, abs=1e-12), step


@pytest.mark.parametrize("bad", [float("nan"), -1, 2.5])
def test_warmup_cosine_refuses_bad_warmup(bad):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=f"warmup_steps must be a whole number >= 0, got {bad}"):
        warmup_cosine(optimizer, bad, 10)


class Overflow(L.Callback):
    """Makes one weight infinite between the (finite) loss and the optimiser step, as an overflowing update would."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        with torch.no_grad():
            pl_module.model.encoder_parameters().__next__().view(-1)[0] = float("inf")


def test_training_stops_on_non_finite_weights_naming_the_parameter():
    module = Pretrainer(create_model("unet_tiny"), warmup_steps=0)
    name = next(n for n, p in module.model.named_parameters() if p is next(module.model.encoder_parameters()))
    image = torch.rand(2, 3, 16, 16)
    batch = {"image": image, "input": image, "mask": torch.zeros(2, 1, 16, 16)}
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Overflow()])
    with pytest.raises(FloatingPointError, match=f"parameter {name} became non-finite after step 1"):
        trainer.fit(module, DataLoader([batch] * 3, batch_size=None))


@pytest.mark.parametrize("model_name", MODELS.list("*_tiny"))
@pytest.mark.parametrize("method_name", ["encoder_teacher", "random_encoder"])
def test_encoder_only_methods_train_exactly_the_parameters_that_get_gradients(method_name, model_name):
    """DDP without an unused-parameter search needs every trainable parameter to receive a gradient."""
    torch.manual_seed(0)
    model = create_model(model_name)
    size = next((int(model.config[k]) for k in ("image_size", "img_size", "sample_size") if k in model.config), 32)
    method = METHODS.get(method_name)(model, task=Task("inpaint", ratio=0.25), region="image")
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, size, size, generator=g)
    model_input, mask = method.task(image, g)
    side = {"image": image, "input": model_input, "mask": mask, "forget_mask": torch.ones(2, 1, size, size)}
    method.unlearning_loss(side, {**side, "forget_mask": torch.zeros(2, 1, size, size)})["loss"].backward()
    trainable = [name for name, p in method.model.named_parameters() if p.requires_grad]
    encoder = {id(p) for p in model.encoder_parameters()}
    assert trainable and all(id(p) in encoder for p in method.model.parameters() if p.requires_grad)
    without = [name for name, p in method.model.named_parameters() if p.requires_grad and p.grad is None]
    assert not without, f"{method_name} on {model_name}: no gradient for {without[:5]}"


def test_checkpoints_hold_the_trained_model_once_and_load_back():
    method = METHODS.get("noisy_label")(create_model("unet_tiny"))
    state = method.state_dict()
    assert state and not [k for k in state if k.startswith("reference.")]
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)
    other = METHODS.get("noisy_label")(create_model("unet_tiny"))
    reference = {k: v.clone() for k, v in other.reference.state_dict().items()}
    other.load_state_dict(method.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(other.model.parameters(), method.model.parameters(), strict=True))
    assert all(torch.equal(reference[k], v) for k, v in other.reference.state_dict().items())
