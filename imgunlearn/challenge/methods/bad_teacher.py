"""`bad_teacher`: competent and incompetent teachers (Chundawat et al., AAAI 2023).

The student (the network, starting from the original) is distilled on a mix of retain and forget images: on
retain images it follows the original (the competent teacher), on forget images a randomly initialised copy
of the same architecture (the incompetent teacher), by KL divergence at temperature `temperature`. As in the
paper, only a `retain_share` of the retain set is used per epoch, which keeps the method cheap.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import (
    CLASSIFIER_METHODS,
    ClassifierUnlearning,
    check_positive,
    check_share,
    descend,
    fresh_copy,
    frozen_copy,
    paired,
    soft_kl,
)
from imgunlearn.challenge.training import device_of


@CLASSIFIER_METHODS.register("bad_teacher")
class BadTeacher(ClassifierUnlearning):
    """Args:
        epochs: Epochs.
        lr: Adam learning rate.
        temperature: Distillation temperature.
        retain_share: Share of the retain batches used per epoch (each paired with a forget batch).
        seed: Seeds the incompetent teacher's weights and the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "epochs": IntDistribution(1, 3),
        "lr": FloatDistribution(1e-5, 1e-3, log=True),
        "temperature": FloatDistribution(0.5, 8.0, log=True),
        "retain_share": FloatDistribution(0.1, 1.0),
    }

    def __init__(self, epochs: int = 1, lr: float = 1e-4, temperature: float = 1.0, retain_share: float = 0.3,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        check_positive(epochs=epochs, lr=lr, temperature=temperature)
        check_share(retain_share=retain_share)
        self.epochs, self.lr, self.temperature, self.retain_share = int(epochs), lr, temperature, retain_share

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        device = device_of(net)
        good, bad = frozen_copy(net), frozen_copy(fresh_copy(net, self.run_seed))
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        steps = max(1, round(self.retain_share * len(retain_loader)))
        net.train()
        for _ in range(self.epochs):
            for step, (retain_x, _, forget_x, _) in enumerate(paired(retain_loader, forget_loader, device)):
                if step >= steps:
                    break
                images = torch.cat([retain_x, forget_x])  # [B_r + B_f, 3, H, W]
                with torch.no_grad():
                    target = torch.cat([good(retain_x), bad(forget_x)])
                descend(optimizer, soft_kl(net(images), target, self.temperature))


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return BadTeacher()(net, retain_loader, forget_loader, val_loader)
