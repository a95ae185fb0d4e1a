"""`reset_noise_finetune`: reset the head, noisy staged fine-tuning of random layers (Kaggle entry "RNI").

One of the top entries of the NeurIPS 2023 unlearning challenge (DeepUnlearn's `kgltop7`):

1. The classifier head is re-initialised.
2. `stage_epochs` staged epochs on the retain set (cross-entropy, SGD at `lr`): each draws a random
   `layer_share` of the network's weight tensors (normalisation layers excluded) and trains only those, the
   normalisation layers and the head. From epoch `reset_epochs` on, a `noise_ratio` share of the drawn tensors
   first receive Gaussian noise of standard deviation `sigma`.
3. `fine_epochs` epochs of cross-entropy on the retain set with every parameter trained (SGD at `fine_lr`).

Published on ResNet-18 (about 22 weight tensors): 9 drawn per epoch (a share of about 0.4), noise on 70% of
them, σ = 0.04, 1 reset + 4 noisy staged epochs at lr 2e-4, then 4 full epochs (lr 2e-4 … 1e-3). Here the draw
is a share (a small CNN has only 6 weight tensors), the reset head is always trained (on a small CNN a draw
often misses it), 2 staged + 2 full epochs fit the time budget, and both rates are 1e-2 (at the published
rates the 16 px `cnn_small` stays near 55-65% test accuracy).
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
    add_weight_noise,
    check_positive,
    check_share,
    finetune_retain,
    head_layer,
    reinitialize,
    sgd,
)

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def split_norm_parameters(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """`(weight tensors, normalisation-layer parameters)` of the network, in registration order."""
    weights, norms = [], []
    for module in net.modules():
        own = list(module.parameters(recurse=False))
        (norms if isinstance(module, NORMS) else weights).extend(own)
    return weights, norms


@CLASSIFIER_METHODS.register("reset_noise_finetune")
class ResetNoiseFinetune(ClassifierUnlearning):
    """Args:
        stage_epochs: Staged epochs (random layers trained).
        reset_epochs: The first `reset_epochs` staged epochs add no noise.
        layer_share: Share of the weight tensors drawn per staged epoch (at least one).
        noise_ratio: Share of the drawn tensors that receive noise.
        sigma: Noise standard deviation.
        lr: SGD learning rate of the staged epochs.
        fine_epochs: Epochs with every parameter trained.
        fine_lr: SGD learning rate of those epochs.
        weight_decay: SGD weight decay.
        seed: Seeds the head, the draws, the noise and the batch order.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {
        "stage_epochs": IntDistribution(1, 3),
        "layer_share": FloatDistribution(0.2, 1.0),
        "sigma": FloatDistribution(0.005, 0.2, log=True),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "fine_epochs": IntDistribution(1, 3),
        "fine_lr": FloatDistribution(3e-4, 3e-2, log=True),
    }

    def __init__(self, stage_epochs: int = 2, reset_epochs: int = 1, layer_share: float = 0.4,
                 noise_ratio: float = 0.7, sigma: float = 0.04, lr: float = 1e-2, fine_epochs: int = 2,
                 fine_lr: float = 1e-2, weight_decay: float = 5e-4, seed: int | None = None) -> None:
        super().__init__(seed)
        check_share(layer_share=layer_share, noise_ratio=noise_ratio)
        check_positive(lr=lr, fine_lr=fine_lr)
        for name, value in (("stage_epochs", stage_epochs), ("reset_epochs", reset_epochs),
                            ("fine_epochs", fine_epochs), ("sigma", sigma)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        if stage_epochs + fine_epochs == 0:
            raise ValueError("stage_epochs + fine_epochs must be positive, got 0")
        self.stage_epochs, self.reset_epochs, self.layer_share = int(stage_epochs), int(reset_epochs), layer_share
        self.noise_ratio, self.sigma, self.lr = noise_ratio, sigma, lr
        self.fine_epochs, self.fine_lr, self.weight_decay = int(fine_epochs), fine_lr, weight_decay

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        head = head_layer(net)
        reinitialize(head, self.run_seed)
        weights, norms = split_norm_parameters(net)
        for epoch in range(self.stage_epochs):
            order = torch.randperm(len(weights)).tolist()
            drawn = [weights[i] for i in order[:max(1, round(self.layer_share * len(weights)))]]
            if epoch >= self.reset_epochs:
                add_weight_noise(drawn[:round(self.noise_ratio * len(drawn))], self.sigma)
            trained = drawn + [p for p in [*norms, *head.parameters()] if not any(p is d for d in drawn)]
            optimizer = sgd(trained, self.lr, weight_decay=self.weight_decay)
            finetune_retain(net, retain_loader, optimizer, None, 1, step_per_batch=False)
        if self.fine_epochs:
            optimizer = sgd(net.parameters(), self.fine_lr, weight_decay=self.weight_decay)
            finetune_retain(net, retain_loader, optimizer, None, self.fine_epochs, step_per_batch=False)
        net.zero_grad(set_to_none=True)  # staged epochs leave gradients on the parameters they did not train


def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
               val_loader: DataLoader | None = None) -> nn.Module:
    """The challenge signature with the default hyperparameters."""
    return ResetNoiseFinetune()(net, retain_loader, forget_loader, val_loader)
