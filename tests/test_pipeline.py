"""Saving a model with its task, the one-call restoration pipeline, and the flat top-level API."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import imgunlearn
from imgunlearn.data.tasks import make_task
from imgunlearn.models import create_model
from imgunlearn.pipeline import RestorationPipeline, load_pipeline, load_task, save


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet_tiny").eval()
    task = make_task("inpaint", ratio=0.25, box="random")
    save(model, tmp_path / "m", task)
    return model, task, tmp_path / "m"


def test_save_requires_the_task(tmp_path):
    with pytest.raises(ValueError, match="save needs the model's Task"):
        save(create_model("unet_tiny"), tmp_path, None)
    assert not (tmp_path / "task.json").exists()


def test_pipeline_round_trip_restores_clean_images_like_model_and_task(saved):
    model, task, directory = saved
    assert load_task(directory) == task
    pipe = load_pipeline(directory)
    assert isinstance(pipe, RestorationPipeline) and pipe.task == task
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model_input, mask = task(images, torch.Generator().manual_seed(0))
        expected = model(model_input, mask)
    restored = pipe(images)
    assert restored.shape == images.shape and torch.equal(restored, expected)
    assert torch.equal(pipe(images), restored)  # seeded degradation: the same call gives the same images
    assert torch.equal(pipe(model_input, mask=mask), expected)  # degraded inputs with their mask
    assert torch.allclose(pipe(model_input[2], mask=mask[2]), expected[2], atol=1e-6)  # one image
    small = RestorationPipeline.from_pretrained(directory, device="cpu", batch_size=2)
    assert torch.allclose(small(model_input, mask=mask), expected, atol=1e-6)  # split into batches of 2


def test_pipeline_refuses_bad_inputs(saved):
    pipe = load_pipeline(saved[2])
    with pytest.raises(ValueError, match=r"images must be \[B, 3, H, W\]"):
        pipe(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="floats in"):
        pipe(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"mask must be \[B, 1, H, W\]"):
        pipe(torch.rand(2, 3, 32, 32), mask=torch.zeros(2, 1, 16, 16))
    with pytest.raises(FileNotFoundError, match="task.json is missing"):
        load_pipeline(saved[2].parent / "nothing")


def test_flat_api_is_at_the_top_level():
    for name in ("pretrain", "unlearn", "evaluate", "create_model", "list_models", "list_methods", "load_model", "save",
                 "load_pipeline", "RestorationPipeline", "load_task"):
        assert callable(getattr(imgunlearn, name)), name
    assert "noisy_label" in imgunlearn.list_methods() and "unet_tiny" in imgunlearn.list_models("unet_*")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        imgunlearn.nothing  # noqa: B018


def test_import_stays_light():
    """`import imgunlearn` imports nothing heavy; the model families (diffusers) load only when a model is built."""
    code = ("import sys, imgunlearn as u; bare = 'torch' in sys.modules; u.load_model, u.create_model, u.list_methods;"
            "print(bare, 'diffusers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
