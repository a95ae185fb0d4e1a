"""`reset_finetune`: re-initialise part of the network, then fine-tune on the retain set.

The approach of several top entries of the NeurIPS 2023 challenge (e.g. re-drawing a random 50% of the weights,
then a few epochs of Adam on the retain set). Two ways to choose what is reset:

- `mode="share"`: every parameter element is re-drawn with probability `share` (from the layer's own
  initialisation);
- `mode="last"`: the last `last_layers` layers that hold parameters are re-initialised entirely.

Fine-tuning uses Adam with cosine annealing over all steps and plain cross-entropy.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    check_positive,
    check_share,
    cosine,
    finetune_retain,
    fresh_copy,
    reinitialize,
)

MODES = ("share", "last")


@torch.no_grad()
def reset_share(net: nn.Module, share: float, seed: int) -> None:
    """Replace each parameter element, with probability `share`, by a freshly initialised value."""
    fresh = dict(fresh_copy(net, seed).named_parameters())
    generator = torch.Generator().manual_seed(seed + 1)
    for name, p in net.named_parameters():
        chosen = (torch.rand(p.shape, generator=generator) < share).to(p.device)
        p.copy_(torch.where(chosen, fresh[name], p))


def reset_last(net: nn.Module, last_layers: int, seed: int) -> None:
    """Re-initialise the last `last_layers` modules that own parameters (in registration order)."""
    owners = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
    if last_layers > len(owners):
        raise ValueError(f"cannot reset the last {last_layers} layers: the network has {len(owners)}")
    for i, module in enumerate(owners[-last_layers:]):
        reinitialize(module, seed + i)


@CLASSIFIER_METHODS.register("reset_finetune")
class ResetFinetune(ClassifierUnlearning):
    """Args:
        mode: `share` or `last`.
        share: Share of parameter elements re-drawn (`mode="share"`).
        last_layers: Number of final layers re-initialised (`mode="last"`).
        epochs: Fine-tuning passes over the retain set.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: Seeds the reset and the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "mode": CategoricalDistribution(list(MODES)),
        "share": FloatDistribution(0.1, 0.9),
        "last_layers": IntDistribution(1, 4),
        "epochs": IntDistribution(1, 4),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
    }

    def __init__(self, mode: str = "share", share: float = 0.5, last_layers: int = 1, epochs: int = 3,
                 lr: float = 1e-3, weight_decay: float = 0.0, seed: int | None = None) -> None:
        super().__init__(seed)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        check_share(share=share)
        check_positive(last_layers=last_layers, epochs=epochs, lr=lr)
        self.mode, self.share, self.last_layers = mode, share, int(last_layers)
        self.epochs, self.lr, self.weight_decay = int(epochs), lr, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        if self.mode == "share":
            reset_share(net, self.share, self.run_seed)
        else:
            reset_last(net, self.last_layers, self.run_seed)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = cosine(optimizer, self.epochs * len(retain_loader))
        finetune_retain(net, retain_loader, optimizer, scheduler, self.epochs, step_per_batch=True)


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return ResetFinetune()(net, retain_loader, forget_loader, val_loader)
