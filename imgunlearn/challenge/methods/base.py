"""The base of the classifier unlearning methods and the helpers they share.

A method is a class whose constructor takes its hyperparameters and a `seed`, and whose instances are called
with the challenge's signature, `method(net, retain_loader, forget_loader, val_loader) -> net`: the network is
changed in place and returned. Batches are dicts with `"image"` and `"age_group"`.

Seeds: with an integer `seed` the call is reproducible on its own: torch's global RNG and the loaders' own
generators are seeded from it for the call's duration and restored afterwards. With `seed=None` (the default)
the method draws from the caller's random state as it finds it, the way a challenge submission runs: a pool
runner that seeds each member differently then gets different members.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from optuna.distributions import BaseDistribution
from torch import Tensor, nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.training import device_of, seeded
from imgunlearn.registry import CLASSIFIER_METHODS

__all__ = ["CLASSIFIER_METHODS", "ClassifierUnlearning"]


class ClassifierUnlearning:
    """Base class: subclasses store their hyperparameters in `__init__` and implement `unlearn`.

    Args:
        seed: Seeds every random draw of the method; None draws from the caller's random state.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {}
    """Tunable hyperparameters: constructor argument name -> Optuna distribution (read by the tuner)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = None if seed is None else int(seed)
        self._run_seed = 0

    @property
    def run_seed(self) -> int:
        """The seed of the current call: `seed`, or a number drawn from torch's global RNG when it is None."""
        return self._run_seed

    def unlearn(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                val_loader: DataLoader | None) -> None:
        """Change `net` in place so that it forgets the forget set and keeps its accuracy elsewhere."""
        raise NotImplementedError

    def __call__(self, net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                 val_loader: DataLoader | None = None) -> nn.Module:
        if self.seed is None:
            self._run_seed = int(torch.randint(0, 2**31 - 1, ()).item())
            self.unlearn(net, retain_loader, forget_loader, val_loader)
        else:
            self._run_seed = self.seed
            with seeded(self.seed, retain_loader, forget_loader, val_loader):
                self.unlearn(net, retain_loader, forget_loader, val_loader)
        net.eval()
        return net

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def check_positive(**values: float) -> None:
    """Raise a ValueError naming the first value that is not positive."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def check_share(**values: float) -> None:
    """Raise a ValueError naming the first value outside [0, 1]."""
    for name, value in values.items():
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")


def batches(loader: DataLoader, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """`(images, labels)` on `device` for each batch of a loader."""
    for batch in loader:
        yield batch["image"].to(device), batch["age_group"].to(device)


def cycle(loader: DataLoader, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """`batches(loader)` repeated without end (a new shuffle each pass)."""
    for _ in itertools.count():
        yield from batches(loader, device)


def paired(retain_loader: DataLoader, forget_loader: DataLoader,
           device: torch.device) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """One pass over the retain set, each retain batch paired with a forget batch (the forget set cycles)."""
    forget = cycle(forget_loader, device)
    for retain_images, retain_labels in batches(retain_loader, device):
        yield (retain_images, retain_labels, *next(forget))


def sgd(params: Iterable[nn.Parameter], lr: float, momentum: float = 0.9,
        weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Cosine annealing to zero over `steps` scheduler steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))


def descend(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    """One optimizer step on `loss`: clear the gradients, back-propagate, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def soft_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """`KL(teacher || student)` of the distributions softened by `temperature`, batch mean."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_student, F.softmax(teacher_logits / temperature, dim=1), reduction="batchmean")


def distill_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """`KL(teacher || student)` of the softened distributions, batch mean, times `temperature²`."""
    return soft_kl(student_logits, teacher_logits, temperature) * temperature**2


RetainLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
"""`loss(images, logits, labels) -> scalar`: a fine-tuning objective (images let it query a teacher)."""


def finetune_retain(net: nn.Module, retain_loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None, epochs: int, step_per_batch: bool,
                    loss: RetainLoss | None = None, on_epoch: Callable[[int], None] | None = None) -> None:
    """Train `net` for `epochs` passes over the retain set (cross-entropy unless `loss` is given).

    The scheduler (if any) steps after every batch with `step_per_batch`, otherwise after every epoch;
    `on_epoch(epoch)` runs before each epoch (e.g. to perturb the weights).
    """
    device = device_of(net)
    net.train()
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        for images, labels in batches(retain_loader, device):
            logits = net(images)
            descend(optimizer, F.cross_entropy(logits, labels) if loss is None else loss(images, logits, labels))
            if step_per_batch and scheduler is not None:
                scheduler.step()
        if not step_per_batch and scheduler is not None:
            scheduler.step()


def conv_layers(net: nn.Module) -> list[nn.Conv2d]:
    """Every `nn.Conv2d` of the network, in registration order."""
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def first_conv(net: nn.Module) -> nn.Conv2d:
    """The first `nn.Conv2d` (the input layer of a CNN); a ValueError if there is none."""
    convs = conv_layers(net)
    if not convs:
        raise ValueError(f"{type(net).__name__} has no nn.Conv2d layer")
    return convs[0]


def head_layer(net: nn.Module) -> nn.Linear:
    """The last `nn.Linear` (the classifier head); a ValueError if there is none."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no nn.Linear layer")
    return linears[-1]


@torch.no_grad()
def add_weight_noise(params: Iterable[Tensor], sigma: float) -> None:
    """Add Gaussian noise of standard deviation `sigma` to each tensor in place (torch's global RNG)."""
    for p in params:
        p.add_(torch.randn_like(p) * sigma)


@contextlib.contextmanager
def scaled_gradients(scales: dict[nn.Parameter, Tensor]) -> Iterator[None]:
    """Within the body, every listed parameter's loss gradient is multiplied element-wise by its scale.

    Weight decay added by the optimizer is not scaled (it is not part of the back-propagated gradient).
    """
    handles = [p.register_hook(lambda grad, scale=scale: grad * scale) for p, scale in scales.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def frozen_copy(net: nn.Module) -> nn.Module:
    """A copy of `net` in eval mode that takes no gradients (a teacher)."""
    return copy.deepcopy(net).requires_grad_(False).eval()


def reinitialize(net: nn.Module, seed: int) -> nn.Module:
    """Re-draw every parameter and buffer of `net` in place with each module's own `reset_parameters`.

    Works on any network built from standard layers (conv, linear, batch norm, ...); a module with parameters
    of its own but no `reset_parameters` raises a ValueError naming it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, module in net.named_modules():
            owns = any(True for _ in module.parameters(recurse=False))
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            elif hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
            elif owns:
                raise ValueError(f"cannot re-initialise module {name!r} ({type(module).__name__}): "
                                 "it has no reset_parameters()")
    return net


def fresh_copy(net: nn.Module, seed: int) -> nn.Module:
    """A re-initialised copy of `net` (same architecture, new random weights)."""
    return reinitialize(copy.deepcopy(net), seed)


def describe(method: Any) -> dict[str, Any]:
    """The method's name and hyperparameters, for result files."""
    return {"class": type(method).__name__, **{k: v for k, v in vars(method).items() if not k.startswith("_")}}
