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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"noise_std": float("nan")}, "noise_std=nan must be a finite number"),
        ({"noise_std": float("inf")}, "noise_std=inf must be a finite number"),
        ({"noise_std": -0.1}, r"noise_std=-0.1 must be >= 0"),
        ({"hole_ratio": float("nan")}, "hole_ratio=nan must be a finite number"),
        ({"hole_ratio": 0.0}, r"hole_ratio=0.0 must be in \(0, 1\]"),
        ({"ratio": float("inf")}, "ratio=inf must be a finite number"),
        ({"downsample": 0}, "downsample=0 must be an integer >= 1"),
        ({"downsample": 1.5}, "downsample=1.5 must be an integer >= 1"),
        ({"holes": -1}, "holes=-1 must be an integer >= 0"),
        ({"holes": True}, "holes=True must be an integer >= 0"),
        ({"noise_std": "0.1"}, "noise_std='0.1' must be a finite number"),
        ({"name": 3}, "name=3 must be a string"),
    ],
)
def test_constructor_and_config_refuse_the_same_values_naming_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        Task(**settings)
    with pytest.raises(ValueError, match=message):
        task_from_config({**Task().to_config(), **settings})


def test_task_json_with_nan_is_refused_naming_the_file_and_key(tmp_path):
    from imgunlearn.api import load_task
    from imgunlearn.data.tasks import task_from_file

    path = tmp_path / "task.json"
    path.write_text('{"name": "restore", "noise_std": NaN, "downsample": 2}')  # json.dumps writes NaN as is
    with pytest.raises(ValueError, match=rf"^{path}: task setting noise_std=nan must be a finite number"):
        task_from_file(path)
    with pytest.raises(ValueError, match=rf"^{path}: task setting noise_std=nan"):
        load_task(tmp_path)
    path.write_text('{"name": "restore", "noise_std": Infinity}')
    with pytest.raises(ValueError, match="noise_std=inf"):
        task_from_file(path)
    path.write_text('{"name": "restore", "noise_std": ')
    with pytest.raises(ValueError, match=rf"^{path}: not a JSON task file"):
        task_from_file(path)
    path.write_text('["restore"]')
    with pytest.raises(ValueError, match=rf"^{path}: task settings must be a mapping"):
        task_from_file(path)
    path.write_text('{"name": "inpaint", "ratio": 0.25}')
    assert task_from_file(path) == make_task("inpaint", ratio=0.25)
