"""`UnlearningModule`: the LightningModule every I2I unlearning method subclasses.

It holds the trainable `model`, a frozen `reference` copy of the original (never in the optimiser, always
in eval mode), and the task that turns images into model inputs. A method overrides one thing,
`unlearning_loss(forget, retain) -> dict`, whose `"loss"` is minimised; the other entries are logged.

Batches are `{"forget": {...}, "retain": {...}}`, each side a dict with
`image` (clean, `[B, 3, H, W]`), `input` (model input), `mask` (`[B, 1, H, W]`, 1 = hidden) and
`forget_mask` (`[B, 1, H, W]`, 1 = content to forget; all ones for a forget image without a box, zeros for
retain images). The method option `region` (`image` / `box`) says whether the forget target covers the whole
forget image or only its `forget_mask`.

Under DDP every process trains on its own share of the forget set; the per-step seeds differ by rank
(`step_seed`), so processes draw different targets and noise, and a run is reproducible for a given number of
processes. Encoder-only methods freeze everything but the encoder (`requires_grad=False`), so every trainable
parameter gets a gradient and DDP needs no unused-parameter search. The frozen reference is left out of the
state dict (checkpoints hold the trained model once) and rebuilt from the original on load.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor

from imgunlearn.data.tasks import Task
from imgunlearn.methods.targets import FORGET_TARGETS, confine, masking_target
from imgunlearn.models.base import ImageToImageModel, load_model
from imgunlearn.optim import (
    check_betas,
    check_count,
    check_finite_loss,
    check_finite_weights,
    check_non_negative,
    check_positive,
    check_strategy,
    step_rng,
    step_seed,
    warmup_cosine,
)

REGIONS = ("image", "box")
RETAIN_TARGETS = ("image", "reference")


def check_retain_target(retain_target: str) -> None:
    """Validate the `retain_target` option of methods with an output-space retain term."""
    if retain_target not in RETAIN_TARGETS:
        raise ValueError(f"unknown retain_target {retain_target!r}; known: {', '.join(RETAIN_TARGETS)}")


def masked_mse(a: Tensor, b: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error `[B, C, H, W]` over the pixels where `weight` (`[B, 1, H, W]`) is 1; 0 if it is empty."""
    total = weight.sum() * a.shape[1]
    return (weight * (a - b) ** 2).sum() / total.clamp_min(1.0)


class UnlearningModule(L.LightningModule):
    """Base of every I2I unlearning method.

    Args:
        model: The original model, or the directory of a saved one (`load_model`); it is trained in place
            (`self.model`) and copied once as `self.reference`.
        task: How model inputs are made from images (used to build inputs for forget targets).
        lr: Learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_steps: Linear warm-up steps before a cosine decay over the run (0 = constant rate).
        forget_target: `normal`, `uniform`, `constant`, `pixelate` or `flat` (see `methods.targets`).
        region: `image` forgets the whole forget image; `box` confines the forget target to each forget
            example's region (e.g. the face box) and keeps the reference's output elsewhere.
        forget_alpha: Weight of the forget term.
        retain_alpha: Weight of the retain term.
        flat_color: RGB colour of the `flat` target.
        pixelate_block: Block size of the `pixelate` target.
        seed: Seeds every random draw of the method (targets, diffusion timesteps), step by step.
    """

    encoder_only: ClassVar[bool] = False
    """Methods that set this optimise `model.encoder_parameters()` only; the rest of the model is frozen."""

    uses_forget_term: ClassVar[bool] = True
    """False for methods whose loss ignores the forget batch (then `retain_alpha` alone must be > 0)."""

    def __init__(
        self,
        model: ImageToImageModel | str,
        task: Task | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: Sequence[float] = (0.9, 0.999),
        warmup_steps: int = 0,
        forget_target: str = "normal",
        region: str = "image",
        forget_alpha: float = 1.0,
        retain_alpha: float = 1.0,
        flat_color: Sequence[float] = (0.5, 0.5, 0.5),
        pixelate_block: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if forget_target not in FORGET_TARGETS:
            raise ValueError(f"unknown forget_target {forget_target!r}; known: {', '.join(FORGET_TARGETS)}")
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
        check_positive("lr", lr)
        check_count("warmup_steps", warmup_steps)
        check_non_negative("weight_decay", weight_decay)
        check_betas(betas)
        check_non_negative("forget_alpha", forget_alpha)
        check_non_negative("retain_alpha", retain_alpha)
        if retain_alpha == 0 and (forget_alpha == 0 or not self.uses_forget_term):
            weights = f"forget_alpha={forget_alpha} and retain_alpha=0" if self.uses_forget_term else "retain_alpha=0"
            raise ValueError(f"{type(self).__name__} with {weights} has a zero loss and would return the model "
                             "unchanged; give a positive weight")
        if len(flat_color) != 3 or not all(0.0 <= c <= 1.0 for c in flat_color):
            raise ValueError(f"flat_color must give 3 values in [0, 1], got {list(flat_color)}")
        if pixelate_block < 1:
            raise ValueError(f"pixelate_block must be >= 1, got {pixelate_block}")
        self.save_hyperparameters(ignore=["model", "task"])
        if isinstance(model, str):
            model = load_model(model)
        self.model = model
        self.reference = copy.deepcopy(model).requires_grad_(False).eval()
        self.task = task if task is not None else Task()
        self.check_model(model)
        if self.encoder_only:  # only the encoder trains: the rest gets no gradient and must not wait for one
            encoder = {id(p) for p in model.encoder_parameters()}
            for param in model.parameters():
                if id(param) not in encoder:
                    param.requires_grad_(False)

    # ---- what a method overrides -------------------------------------------------------------------

    def check_model(self, model: ImageToImageModel) -> None:
        """Raise a clear error at configuration time if the method cannot apply to `model`'s family."""

    def unlearning_loss(self, forget: dict[str, Tensor], retain: dict[str, Tensor]) -> dict[str, Tensor]:
        """The method's objective on one paired batch; `"loss"` is minimised, other entries are logged."""
        raise NotImplementedError

    # ---- helpers methods share ---------------------------------------------------------------------

    def step_seed(self) -> int:
        """A seed unique to this method's seed, the current step and this process's rank (rank 0: the seed of a
        one-process run)."""
        return step_seed(self.hparams.seed, self.global_step, self.global_rank)

    def generator(self, stream: int = 0) -> torch.Generator:
        """A generator seeded by `step_seed()`; distinct `stream`s give independent draws within one step."""
        return torch.Generator().manual_seed(self.step_seed() + (stream << 40))

    def forget_target(self, forget: dict[str, Tensor], elsewhere: Tensor | None = None) -> Tensor:
        """The image the forget batch should turn into, confined to its region when `region="box"`.

        Outside the region the target is `elsewhere` (default: the clean image).
        """
        image = forget["image"]
        target = masking_target(self.hparams.forget_target, image, self.generator(),
                                self.hparams.flat_color, self.hparams.pixelate_block)
        if self.hparams.region == "box":
            target = confine(target, image if elsewhere is None else elsewhere, forget["forget_mask"])
        return target

    def target_input(self, target: Tensor, mask: Tensor) -> Tensor:
        """The task's model input made from `target` with the given mask."""
        return self.task.degrade(target, mask, self.generator(stream=1))  # not the target's own noise draws

    @torch.no_grad()
    def reference_output(self, batch: dict[str, Tensor]) -> Tensor:
        return self.reference(batch["input"], batch["mask"])

    def kept_image(self, batch: dict[str, Tensor], retain_target: str = "image") -> Tensor:
        """What the model should keep producing for `batch`: its clean image (`"image"`) or the reference's
        output (`"reference"`)."""
        return batch["image"] if retain_target == "image" else self.reference_output(batch)

    def retain_reconstruction(self, retain: dict[str, Tensor], retain_target: str = "image") -> Tensor:
        """The family's reconstruction loss on `retain` towards `kept_image(retain, retain_target)`."""
        return self.model.reconstruction_loss(retain["input"], retain["mask"], self.kept_image(retain, retain_target))

    def model_output(self, batch: dict[str, Tensor], target: Tensor, seed: int | None = None) -> Tensor:
        """The trainable model's output on `batch` in one differentiable pass, `decode(encode(...))`.

        For single-pass families this is `forward`; the diffusion family's encoder sees `target` noised (with
        `seed`), so the output is its one-step estimate of `target`.
        """
        latent = self.model.encode(batch["input"], batch["mask"], target=target, seed=seed)
        return self.model.decode(latent, batch["input"], batch["mask"])

    def output_mse(self, output: Tensor, target: Tensor, region: Tensor) -> Tensor:
        """MSE of `output` to `target`; with `region="box"` the mean inside the region plus the mean outside it,
        so a small region weighs as much as the rest of the image."""
        if self.hparams.region == "box":
            return masked_mse(output, target, region) + masked_mse(output, target, 1.0 - region)
        return torch.mean((output - target) ** 2)

    # ---- Lightning ---------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> UnlearningModule:
        super().train(mode)
        self.reference.eval()  # the reference never leaves eval mode (batch norm, dropout)
        return self

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.model(model_input, mask)

    def setup(self, stage: str) -> None:
        check_strategy(self.trainer)

    def training_step(self, batch: dict[str, dict[str, Tensor]], batch_idx: int) -> Tensor:
        with step_rng(self.step_seed() + (3 << 40), self.device):  # draws a family makes from torch's own generator
            out = self.unlearning_loss(batch["forget"], batch["retain"])
        check_finite_loss(self, out["loss"])
        batch_size = batch["forget"]["image"].shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in out.items()}, prog_bar=True, batch_size=batch_size,
                      sync_dist=True)
        return out["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        check_finite_weights(self.model, self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["model_training_state"] = self.model.training_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_training_state(checkpoint.get("model_training_state", {}))

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The module's state without the frozen reference (it is the original model, rebuilt on construction)."""
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "") + "reference."
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a state saved by `state_dict`; the reference keeps the weights it was built with."""
        if not any(key.startswith("reference.") for key in state_dict):
            own = {f"reference.{k}": v for k, v in self.reference.state_dict().items()}
            state_dict = {**own, **state_dict}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = self.model.encoder_parameters() if self.encoder_only else self.model.parameters()
        return [p for p in params if p.requires_grad]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.trainable_parameters(), lr=hp.lr, betas=tuple(hp.betas),
                                      weight_decay=hp.weight_decay)
        if hp.warmup_steps <= 0:
            return optimizer
        scheduler = warmup_cosine(optimizer, hp.warmup_steps, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
