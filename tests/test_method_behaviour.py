"""What every registered I2I method does, not only that it runs: after a few dozen steps on a tiny original,
forget outputs move towards the method's target while retain reconstructions change less; the forget targets
and `confine` value by value."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.methods.encoder_teacher import as_maps, latent_mse
from imgunlearn.methods.targets import confine, masking_target
from imgunlearn.models.base import ImageToImageModel, create_model
from imgunlearn.registry import METHODS

SIZE = 16
STEPS = 25
LR = {"encoder_teacher": 3e-3, "random_encoder": 3e-3}
"""A few dozen steps need a larger rate than the measured defaults (tuned for 300 steps at 64 px)."""
DEFAULT_LR = 2e-3


def stack(dataset, count: int) -> dict[str, Tensor]:
    items = [dataset[i] for i in range(count)]
    return {k: torch.stack([item[k] for item in items]) for k in ("image", "input", "mask", "forget_mask")}


@pytest.fixture(scope="module")
def setting() -> tuple[ImageToImageModel, dict[str, Tensor], dict[str, Tensor], object]:
    """A tiny original trained briefly on survey tiles (forget tiles carry a face box), and one forget and one
    retain batch."""
    data = ForgetRetainDataModule(source="synthetic", size=SIZE, num_forget=6, num_retain=6, num_holdout_forget=2,
                                  num_holdout_retain=2, task="restore", task_args={"noise_std": 0.1, "downsample": 1},
                                  seed=0)
    data.setup("fit")
    forget, retain = stack(data.split_dataset("forget_train"), 6), stack(data.split_dataset("retain_train"), 6)
    assert forget["forget_mask"].sum() > 0 and retain["forget_mask"].sum() == 0
    torch.manual_seed(0)
    model = create_model("unet_tiny")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    everything = {k: torch.cat([forget[k], retain[k]]) for k in forget}
    for _ in range(80):
        optimizer.zero_grad()
        model.reconstruction_loss(everything["input"], everything["mask"], everything["image"]).backward()
        optimizer.step()
    return model.eval(), forget, retain, data.task


TRAINED: dict[tuple, UnlearningModule] = {}


def unlearned(name: str, setting, **kwargs) -> UnlearningModule:
    """`name` with its defaults (a larger rate, no warm-up) after STEPS steps on the setting's batches; cached."""
    key = (name, id(setting), tuple(sorted(kwargs.items())))
    if key not in TRAINED:
        TRAINED[key] = train(name, setting, **kwargs)
    return TRAINED[key]


def train(name: str, setting, steps: int = STEPS, **kwargs) -> UnlearningModule:
    original, forget, retain, task = setting
    settings = {"lr": LR.get(name, DEFAULT_LR), "warmup_steps": 0, **kwargs}
    method = METHODS.get(name)(copy.deepcopy(original), task=task, **settings)
    optimizer = method.configure_optimizers()
    method.train()
    for _ in range(steps):
        optimizer.zero_grad()
        method.unlearning_loss(forget, retain)["loss"].backward()
        optimizer.step()
    return method.eval()


@torch.no_grad()
def outputs(model: ImageToImageModel, batch: dict[str, Tensor]) -> Tensor:
    return model(batch["input"], batch["mask"])


def box_mse(a: Tensor, b: Tensor, region: Tensor) -> float:
    """Mean squared difference inside the region `[B, 1, H, W]`."""
    return float(((a - b) ** 2 * region).sum() / (region.sum() * a.shape[1]))


def mse(a: Tensor, b: Tensor) -> float:
    return float(((a - b) ** 2).mean())


FORGETTING = [name for name in METHODS.list() if name != "finetune"]


@pytest.mark.parametrize("name", FORGETTING)
def test_forget_outputs_change_more_than_retain_outputs(name: str, setting) -> None:
    original, forget, retain, _ = setting
    method = unlearned(name, setting)
    forget_change = box_mse(outputs(method.model, forget), outputs(original, forget), forget["forget_mask"])
    retain_change = mse(outputs(method.model, retain), outputs(original, retain))
    assert forget_change > 3 * retain_change, f"{name}: face box moved {forget_change:.2e}, retain {retain_change:.2e}"
    assert forget_change > 1e-3, f"{name}: the face box barely moved ({forget_change:.2e})"


def test_noisy_label_outputs_move_to_the_flat_target_in_the_box(setting) -> None:
    original, forget, _, _ = setting
    method = unlearned("noisy_label", setting)
    grey = torch.full_like(forget["image"], 0.5)  # the default flat colour
    before = box_mse(outputs(original, forget), grey, forget["forget_mask"])
    after = box_mse(outputs(method.model, forget), grey, forget["forget_mask"])
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("name", ["retain_label", "max_loss"])
def test_whole_model_methods_move_the_box_away_from_the_face(name: str, setting) -> None:
    original, forget, _, _ = setting
    method = unlearned(name, setting)
    before = box_mse(outputs(original, forget), forget["image"], forget["forget_mask"])
    after = box_mse(outputs(method.model, forget), forget["image"], forget["forget_mask"])
    assert after > 2 * before, (before, after)


def test_encoder_teacher_features_move_to_the_reference_target(setting) -> None:
    original, forget, retain, task = setting
    method = METHODS.get("encoder_teacher")(copy.deepcopy(original), task=task, seed=3)
    method.train()
    assert method.unlearning_loss(forget, retain)["retain_loss"] == 0  # the model is its reference at step 0

    def distance(module: UnlearningModule) -> float:
        """Forget features' distance to the reference's features of the target (drawn as the method does)."""
        with torch.no_grad():
            target = module.forget_target(forget)
            target_input = module.target_input(target, forget["mask"])
            reference = module.reference.forget_reference_encode(target_input, forget["mask"], target, seed=0)
            return float(latent_mse(module.model.encode(forget["input"], forget["mask"], target=forget["image"],
                                                        seed=0), reference))

    method = unlearned("encoder_teacher", setting, seed=3)
    fresh = METHODS.get("encoder_teacher")(copy.deepcopy(original), task=task, seed=3)
    assert distance(method) < 0.5 * distance(fresh)


def test_random_encoder_features_move_to_their_random_targets(setting) -> None:
    original, forget, retain, task = setting

    def distance(module: UnlearningModule) -> float:
        with torch.no_grad():
            reference = as_maps(module.reference.encode(forget["input"], forget["mask"], target=forget["image"]))
            targets = module.random_targets(reference, forget["forget_mask"])
            features = module.model.encode(forget["input"], forget["mask"], target=forget["image"])
            return float(latent_mse(features, targets))

    fresh = METHODS.get("random_encoder")(copy.deepcopy(original), task=task)
    assert distance(unlearned("random_encoder", setting)) < 0.5 * distance(fresh)


def test_finetune_keeps_retain_reconstruction(setting) -> None:
    original, _, retain, _ = setting
    method = unlearned("finetune", setting)
    before = mse(outputs(original, retain), retain["image"])
    assert mse(outputs(method.model, retain), retain["image"]) <= before * 1.05


# ---- forget targets and confine, value by value ----------------------------------------------------


def test_flat_target_is_the_colour_everywhere() -> None:
    image = torch.rand(2, 3, 5, 7)
    target = masking_target("flat", image, flat_color=(0.25, 0.5, 1.0))
    for c, value in enumerate((0.25, 0.5, 1.0)):
        assert torch.equal(target[:, c], torch.full((2, 5, 7), value))


@pytest.mark.parametrize(("height", "width", "block"), [(8, 8, 4), (10, 7, 4), (6, 6, 1)])
def test_pixelate_target_is_the_block_mean(height: int, width: int, block: int) -> None:
    image = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    target = masking_target("pixelate", image, pixelate_block=block)
    assert target.shape == image.shape
    for y0 in range(0, height, block):
        for x0 in range(0, width, block):
            patch = image[:, :, y0:y0 + block, x0:x0 + block]  # edge blocks are cut by the image border
            mean = patch.mean(dim=(2, 3), keepdim=True).expand_as(patch)
            assert torch.allclose(target[:, :, y0:y0 + block, x0:x0 + block], mean, atol=1e-6), (y0, x0)


def test_normal_target_is_seeded_noise_with_the_batch_statistics() -> None:
    image = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.2 + 0.4
    target = masking_target("normal", image, torch.Generator().manual_seed(7))
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(7))
    expected = torch.clamp(noise * image.std() + image.mean(), 0.0, 1.0)
    assert torch.allclose(target, expected)
    assert torch.equal(target, masking_target("normal", image, torch.Generator().manual_seed(7)))
    assert not torch.equal(target, masking_target("normal", image, torch.Generator().manual_seed(8)))
    assert abs(float(target.mean()) - float(image.mean())) < 0.01
    assert abs(float(target.std()) - float(image.std())) < 0.01
    assert float(target.min()) >= 0 and float(target.max()) <= 1


def test_confine_keeps_the_target_inside_and_elsewhere_outside() -> None:
    target, elsewhere = torch.full((1, 3, 4, 4), 0.9), torch.full((1, 3, 4, 4), 0.1)
    region = torch.zeros(1, 1, 4, 4)
    region[..., 1:3, 2:4] = 1.0
    out = confine(target, elsewhere, region)
    for y in range(4):
        for x in range(4):
            inside = 1 <= y < 3 and 2 <= x < 4
            assert torch.allclose(out[0, :, y, x], torch.full((3,), 0.9 if inside else 0.1)), (y, x)


def test_box_region_confines_the_methods_target() -> None:
    method = METHODS.get("noisy_label")(create_model("unet_tiny"), flat_color=(1.0, 0.0, 0.0))
    image = torch.rand(1, 3, 8, 8)
    region = torch.zeros(1, 1, 8, 8)
    region[..., :4, :4] = 1.0
    target = method.forget_target({"image": image, "forget_mask": region})
    assert torch.equal(target[0, :, :4, :4], torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 4))
    assert torch.equal(target[0, :, 4:, :], image[0, :, 4:, :]) and torch.equal(target[0, :, :, 4:], image[0, :, :, 4:])

