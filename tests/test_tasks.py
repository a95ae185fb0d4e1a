import pytest
import torch

from imgunlearn.data.tasks import Task, make_task, task_from_config


def _batch(b=2, size=32):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_inpaint_centre_box_hides_exactly_the_box_and_zeroes_it():
    image = _batch()
    task = make_task("inpaint", ratio=0.25)
    model_input, mask = task(image)
    assert mask.shape == (2, 1, 32, 32)
    assert mask.sum().item() == 2 * 8 * 8
    assert mask[:, :, 12:20, 12:20].min().item() == 1.0
    assert torch.equal(model_input, image * (1 - mask))


def test_outpaint_hides_borders_only():
    mask = make_task("outpaint", ratio=0.25).sample_mask(_batch(1))
    assert mask[0, 0, 0].min() == 1 and mask[0, 0, :, 0].min() == 1
    assert mask[0, 0, 8:24, 8:24].max() == 0


def test_restore_degrades_but_keeps_every_pixel_visible_without_holes():
    image = _batch()
    task = make_task("restore", noise_std=0.1, downsample=2)
    model_input, mask = task(image, torch.Generator().manual_seed(1))
    assert mask.sum() == 0
    assert not torch.allclose(model_input, image)
    assert model_input.min() >= 0 and model_input.max() <= 1
    again, _ = task(image, torch.Generator().manual_seed(1))
    assert torch.equal(model_input, again), "same generator seed must give the same degradation"


def test_restore_holes_and_random_boxes_stay_inside_the_image():
    g = torch.Generator().manual_seed(3)
    mask = make_task("restore", holes=3, hole_ratio=0.125).sample_mask(_batch(4), g)
    assert 0 < mask.sum() <= 4 * 3 * 16
    mask = make_task("inpaint", box="random", ratio=0.5).sample_mask(_batch(4), g)
    assert torch.equal(mask.sum(dim=(1, 2, 3)), torch.full((4,), 256.0))


def test_hybrid_mixes_mask_kinds():
    masks = make_task("hybrid", ratio=0.25).sample_mask(_batch(32), torch.Generator().manual_seed(0))
    hidden = masks.sum(dim=(1, 2, 3))
    assert len(torch.unique(hidden)) >= 2


def test_config_round_trip_and_errors_name_the_value():
    task = make_task("inpaint", ratio=0.5, box="random")
    assert task_from_config(task.to_config()) == task
    with pytest.raises(ValueError, match="unknown task 'paint'"):
        Task(name="paint")
    with pytest.raises(ValueError, match="ratio 1.5"):
        make_task("inpaint", ratio=1.5)
    with pytest.raises(ValueError, match=r"unknown task settings \['colour'\]"):
        task_from_config({"name": "restore", "colour": 1})
    with pytest.raises(ValueError, match="too small"):
        make_task("inpaint", ratio=0.5).sample_mask(torch.rand(1, 3, 1, 1))
