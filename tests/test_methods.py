"""Every registered unlearning method on every tiny model family, driven by a real Lightning Trainer."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from torch import Tensor, nn
from torch.utils.data import DataLoader

from imgunlearn.data.tasks import Task
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.methods.targets import FORGET_TARGETS
from imgunlearn.models.base import ImageToImageModel, create_model
from imgunlearn.registry import METHODS, MODELS

TASK = Task("inpaint", ratio=0.25)
SIZE = 32
TINY_MODELS = MODELS.list("*_tiny")
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "method"


def image_size(model: ImageToImageModel) -> int:
    """The side a model's config asks for, or SIZE."""
    for key in ("image_size", "img_size", "sample_size"):
        if key in model.config:
            return int(model.config[key])
    return SIZE


def make_side(n: int, size: int, seed: int, forget: bool) -> dict[str, Tensor]:
    """One side of a paired batch following the batch contract; forget images carry a box region."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    region = torch.zeros(n, 1, size, size)
    if forget:
        q = size // 4
        region[..., q : 3 * q, q : 3 * q] = 1.0
        image = torch.where(region.bool(), torch.full_like(image, 0.9), image)  # a bright patch to forget
    model_input, mask = TASK(image, g)
    return {"image": image, "input": model_input, "mask": mask, "forget_mask": region}


def make_batch(size: int = SIZE, seed: int = 0, forget_size: int = 2, retain_size: int = 3) -> dict:
    """A paired batch whose forget and retain sides differ in size (methods must not assume they match)."""
    return {"forget": make_side(forget_size, size, seed, True), "retain": make_side(retain_size, size, seed + 1, False)}


def snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit(method: UnlearningModule, steps: int = 3, size: int = SIZE) -> L.Trainer:
    loader = DataLoader([make_batch(size, seed=i) for i in range(steps)], batch_size=None)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(method, loader)
    return trainer


@pytest.mark.parametrize("model_name", TINY_MODELS)
@pytest.mark.parametrize("method_name", METHODS.list())
def test_method_trains_with_lightning(method_name: str, model_name: str) -> None:
    torch.manual_seed(0)
    model = create_model(model_name)
    method = METHODS.get(method_name)(model, task=TASK, lr=1e-2, seed=1, region="image")  # box needs spatial maps
    before, reference_before = snapshot(method.model), snapshot(method.reference)
    trainer = fit(method, size=image_size(model))

    assert trainer.global_step == 3
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss)
    after = snapshot(method.model)
    trainable = {name for name, p in method.model.named_parameters() if p.requires_grad}
    moved = [name for name in trainable if not torch.equal(before[name], after[name])]
    assert moved, f"{method_name} on {model_name}: no trainable weight moved"
    assert all(torch.equal(reference_before[k], v) for k, v in snapshot(method.reference).items())
    assert not any(p.requires_grad for p in method.reference.parameters())

    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in method.reference.parameters()}
    if method.encoder_only:
        assert optimised == {id(p) for p in model.encoder_parameters() if p.requires_grad}
        encoder = {id(p) for p in model.encoder_parameters()}
        decoder = [name for name, p in model.named_parameters() if id(p) not in encoder]
        assert decoder, f"{model_name} has no decoder parameters"
        assert all(torch.equal(before[name], after[name]) for name in decoder)
        buffers = [name for name, _ in model.named_buffers()]
        assert all(torch.equal(before[name], after[name]) for name in buffers if "decod" in name)
    else:
        assert optimised == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("region", ["image", "box"])
@pytest.mark.parametrize("forget_target", FORGET_TARGETS)
@pytest.mark.parametrize("method_name", ["encoder_teacher", "noisy_label"])
def test_every_forget_target_and_region(method_name: str, forget_target: str, region: str) -> None:
    method = METHODS.get(method_name)(create_model("unet_tiny"), task=TASK, forget_target=forget_target,
                                      region=region, flat_color=(1.0, 0.0, 0.0), pixelate_block=4)
    batch = make_batch()
    out = method.unlearning_loss(batch["forget"], batch["retain"])
    assert torch.isfinite(out["loss"]) and out["forget_loss"] > 0
    out["loss"].backward()
    grads = [p.grad for p in method.trainable_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("method_name", ["max_loss", "retain_label", "random_encoder"])
def test_region_box_runs_for_the_other_methods_with_a_forget_target(method_name: str) -> None:
    method = METHODS.get(method_name)(create_model("unet_tiny"), task=TASK, region="box")
    batch = make_batch()
    out = method.unlearning_loss(batch["forget"], batch["retain"])
    assert torch.isfinite(out["loss"]) and out["forget_loss"] > 0
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.trainable_parameters())


def test_finetune_ignores_the_forget_batch() -> None:
    method = METHODS.get("finetune")(create_model("unet_tiny"), task=TASK)
    a, b = make_batch(seed=0), make_batch(seed=5, forget_size=4)
    assert torch.equal(method.unlearning_loss(a["forget"], a["retain"])["loss"],
                       method.unlearning_loss(b["forget"], a["retain"])["loss"])


def train_manually(method: UnlearningModule, batch: dict, steps: int) -> None:
    optimizer = method.configure_optimizers()
    for _ in range(steps):
        optimizer.zero_grad()
        method.unlearning_loss(batch["forget"], batch["retain"])["loss"].backward()
        optimizer.step()


def test_noisy_label_box_changes_the_region_only() -> None:
    torch.manual_seed(0)
    method = METHODS.get("noisy_label")(create_model("unet_tiny"), task=TASK, lr=1e-2, forget_target="flat",
                                        flat_color=(1.0, 0.0, 0.0), region="box", retain_target="reference",
                                        retain_alpha=1.0)
    batch = make_batch()
    forget, region = batch["forget"], batch["forget"]["forget_mask"].bool().expand(-1, 3, -1, -1)
    reference = method.reference_output(forget)
    train_manually(method, batch, steps=40)
    with torch.no_grad():
        output = method.model(forget["input"], forget["mask"])
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand_as(output)
    inside_before = (reference - red)[region].abs().mean()
    inside_after = (output - red)[region].abs().mean()
    outside_change = (output - reference)[~region].abs().mean()
    assert inside_after < 0.5 * inside_before
    assert outside_change < 0.5 * (inside_before - inside_after)


def test_max_loss_ascent_is_bounded() -> None:
    torch.manual_seed(0)
    batch = make_batch()
    method = METHODS.get("max_loss")(create_model("unet_tiny"), task=TASK, forget_bound=1e-4, retain_alpha=0.0,
                                     region="image")
    out = method.unlearning_loss(batch["forget"], batch["retain"])
    assert out["forget_error"] > 1e-4 and out["loss"] == 0  # beyond the bound: no ascent at all

    method = METHODS.get("max_loss")(create_model("unet_tiny"), task=TASK, lr=1e-2, forget_bound=0.5, region="image",
                                     retain_alpha=1.0)
    start = method.unlearning_loss(batch["forget"], batch["retain"])["forget_error"]
    train_manually(method, batch, steps=15)
    assert method.unlearning_loss(batch["forget"], batch["retain"])["forget_error"] > start + 0.02


def test_max_loss_box_holds_the_output_outside_the_region() -> None:
    torch.manual_seed(0)
    batch = make_batch()
    method = METHODS.get("max_loss")(create_model("unet_tiny"), task=TASK, lr=1e-2, forget_bound=0.5, region="box",
                                     retain_alpha=1.0)
    forget, region = batch["forget"], batch["forget"]["forget_mask"].bool().expand(-1, 3, -1, -1)
    reference = method.reference_output(forget)
    train_manually(method, batch, steps=15)
    with torch.no_grad():
        change = (method.model(forget["input"], forget["mask"]) - reference).abs()
    assert change[region].mean() > 3 * change[~region].mean()


def test_retain_label_targets_are_retain_images() -> None:
    method = METHODS.get("retain_label")(create_model("unet_tiny"), task=TASK, seed=3)
    batch = make_batch(forget_size=5, retain_size=2)
    targets = method.retain_images_for(batch["forget"], batch["retain"])
    assert targets.shape == batch["forget"]["image"].shape
    for target in targets:
        assert any(torch.equal(target, r) for r in batch["retain"]["image"])
    with pytest.raises(ValueError, match=r"\(3, 16, 16\)"):
        method.retain_images_for(batch["forget"], make_batch(size=16)["retain"])


def test_random_encoder_targets_are_fixed_by_the_seed() -> None:
    model = create_model("unet_tiny")
    a, b = (METHODS.get("random_encoder")(model, task=TASK, seed=s) for s in (0, 1))
    shape = torch.Size([16, 8, 8])
    like = torch.zeros(1)
    assert torch.equal(a.random_vector(0, shape, like), a.random_vector(0, shape, like))
    assert not torch.equal(a.random_vector(0, shape, like), b.random_vector(0, shape, like))
    assert not torch.equal(a.random_vector(0, shape, like), a.random_vector(1, shape, like))


class TokenModel(ImageToImageModel):
    """A dummy family whose latent is a token sequence `[B, L, D]`, not a spatial map."""

    family = "tokens"

    def __init__(self) -> None:
        super().__init__()
        self.config = {"name": "tokens"}
        self.embed = nn.Linear(4 * 4 * 4, 8)
        self.head = nn.Linear(8, 3 * 4 * 4)

    def encode(self, model_input, mask, target=None, seed=None):
        x = torch.cat([model_input, mask], 1).unfold(2, 4, 4).unfold(3, 4, 4)  # [B, 4, h, w, 4, 4]
        return self.embed(x.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2))  # [B, h * w, 8]

    def decode(self, latent, model_input, mask):
        b, _, h, w = model_input.shape
        x = self.head(latent).view(b, h // 4, w // 4, 3, 4, 4)
        return torch.sigmoid(x.permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h, w))

    def forward(self, model_input, mask):
        return self.decode(self.encode(model_input, mask), model_input, mask)

    def reconstruction_loss(self, model_input, mask, target):
        return torch.mean((self(model_input, mask) - target) ** 2)

    def encoder_parameters(self):
        return self.embed.parameters()


def test_random_encoder_refuses_region_box_on_token_latents() -> None:
    batch = make_batch(size=16)
    method = METHODS.get("random_encoder")(TokenModel(), task=TASK, region="image")
    assert torch.isfinite(method.unlearning_loss(batch["forget"], batch["retain"])["loss"])
    with pytest.raises(ValueError, match=r"region='box' needs spatial.*tokens encodes a map of shape \(1, 256, 8\)"):
        METHODS.get("random_encoder")(TokenModel(), task=TASK, region="box")
    if "mae_tiny" in MODELS:
        with pytest.raises(ValueError, match=r"region='box'.*mae_tiny"):
            METHODS.get("random_encoder")(create_model("mae_tiny"), task=TASK, region="box")


@pytest.mark.parametrize("method_name", METHODS.list())
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forget_target": "blur"}, "'blur'"),
        ({"region": "face"}, "'face'"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"lr": float("inf")}, "lr must be a finite number > 0, got inf"),
        ({"lr": float("nan")}, "lr must be a finite number > 0, got nan"),
        ({"warmup_steps": float("nan")}, "warmup_steps must be a whole number >= 0, got nan"),
        ({"forget_alpha": 0.0, "retain_alpha": 0.0}, "zero loss and would return the model unchanged"),
        ({"betas": (0.9, 1.5)}, r"betas must be two numbers in \[0, 1\), got \[0.9, 1.5\]"),
        ({"lr": -1e-3}, "-0.001"),
        ({"flat_color": (1.5, 0.0, 0.0)}, r"\[1.5, 0.0, 0.0\]"),
        ({"flat_color": (0.5, 0.5)}, r"\[0.5, 0.5\]"),
        ({"pixelate_block": 0}, "pixelate_block must be >= 1, got 0"),
        ({"forget_alpha": -1.0}, "-1.0"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_value(method_name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        METHODS.get(method_name)(create_model("unet_tiny"), **kwargs)


@pytest.mark.parametrize(("method_name", "kwargs", "message"), [
    ("noisy_label", {"retain_target": "teacher"}, "'teacher'"),
    ("retain_label", {"retain_target": "x"}, "'x'"),
    ("max_loss", {"forget_bound": 0.0}, "forget_bound must be positive, got 0.0"),
    ("max_loss", {"forget_bound": float("nan")}, "forget_bound must be positive, got nan"),
    ("finetune", {"retain_alpha": 0.0}, "Finetune with retain_alpha=0 has a zero loss"),
])
def test_bad_method_options_raise_naming_the_value(method_name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        METHODS.get(method_name)(create_model("unet_tiny"), **kwargs)


@pytest.mark.parametrize("method_name", METHODS.list())
def test_method_config_builds_the_registered_class(method_name: str, tmp_path) -> None:
    """configs/method/<name>.yaml parses in LightningCLI's subclass form and builds the method."""
    method = _build_from_config(CONFIGS / f"{method_name}.yaml", tmp_path)
    assert isinstance(method, METHODS.get(method_name))
    assert type(method.model).__name__ == "UNet"


def _build_from_config(path: Path, tmp_path: Path) -> UnlearningModule:
    """The method a configs/method YAML builds, in LightningCLI's subclass form, on a saved unet_tiny."""
    model_dir = create_model("unet_tiny").save_pretrained(tmp_path / "model")
    parser = ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(UnlearningModule, "model")
    cfg = parser.parse_args(["--config", str(path), "--model.init_args.model", str(model_dir)])
    return parser.instantiate_classes(cfg).model


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("*.yaml") if p.stem not in METHODS), ids=lambda p: p.stem)
def test_method_variant_configs_build_their_class(path, tmp_path) -> None:
    """A tuned variant (e.g. encoder_teacher_vqgan.yaml) parses and builds with the settings it states."""
    method = _build_from_config(path, tmp_path)
    stated = yaml.safe_load(path.read_text())["model"]
    assert type(method).__name__ == stated["class_path"].rsplit(".", 1)[1]
    for key, value in stated["init_args"].items():
        recorded = method.hparams[key]
        assert (list(recorded) if isinstance(recorded, tuple) else recorded) == value, (path.name, key)


def test_encoder_teacher_normalized_feature_weights_balance_maps():
    from imgunlearn.methods.encoder_teacher import EncoderTeacher, latent_mse

    a = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    b = [torch.full((1, 2, 4, 4), 10.0), torch.full((1, 2, 2, 2), 0.1)]
    uniform = latent_mse(a, b)
    normalized = latent_mse(a, b, [torch.tensor(100.0), torch.tensor(0.01)])
    assert torch.isclose(uniform, torch.tensor(100.01))
    assert torch.isclose(normalized, torch.tensor(2.0)), "each map's error relative to its own scale"
    with pytest.raises(ValueError, match="unknown feature_weights 'deep'"):
        EncoderTeacher(_tiny_unet(), feature_weights="deep")
    method = EncoderTeacher(_tiny_unet(), feature_weights="normalized", region="box")
    g = torch.Generator().manual_seed(0)
    side = {"image": torch.rand(2, 3, 16, 16, generator=g), "mask": torch.zeros(2, 1, 16, 16),
            "forget_mask": torch.ones(2, 1, 16, 16)}
    side["input"] = side["image"]
    out = method.unlearning_loss(side, {**side, "forget_mask": torch.zeros(2, 1, 16, 16)})
    assert torch.isfinite(out["loss"]) and out["forget_loss"] > 0
    out["loss"].backward()
    assert all(p.grad is None for p in method.model.decoder_parameters())


def _tiny_unet():
    from imgunlearn.models import create_model

    return create_model("unet_tiny")
