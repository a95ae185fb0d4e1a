"""`finetune`: keep training the model on the retain set only (the weakest reference).

The forget batch is ignored; forgetting can only come from the model drifting away from what it learnt
about the forget set while it keeps reconstructing retain images with the family's own objective:

    L = retain_alpha · recon(x_r)
"""

from __future__ import annotations

from typing import Any, ClassVar

from optuna.distributions import BaseDistribution, FloatDistribution
from torch import Tensor

from imgunlearn.methods.base import UnlearningModule
from imgunlearn.registry import METHODS


@METHODS.register("finetune")
class Finetune(UnlearningModule):
    """Args:
        lr: See `UnlearningModule`; the default is the setting measured on the demo (BENCHMARKS.md).
        **kwargs: See `UnlearningModule`.
    """

    search_space: ClassVar[dict[str, BaseDistribution]] = {"lr": FloatDistribution(1e-5, 3e-3, log=True)}
    """What `imgunlearn tune` searches (around the default above)."""

    uses_forget_term = False

    def __init__(self, *args: Any, lr: float = 3e-4, **kwargs: Any) -> None:
        super().__init__(*args, lr=lr, **kwargs)

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        retain_loss = self.model.reconstruction_loss(retain["input"], retain["mask"], retain["image"])
        return {"loss": self.hparams.retain_alpha * retain_loss, "retain_loss": retain_loss}
