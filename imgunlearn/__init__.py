"""imgunlearn: machine unlearning for image models.

The whole Python API is at the top level; each name is imported on first use, so `import imgunlearn` stays
light (no Lightning, no diffusers):

    import imgunlearn as u
    data = u.ForgetRetainDataModule(source="synthetic", task="restore")
    original = u.pretrain("unet_small", data, max_steps=600)
    unlearned = u.unlearn(original, data, method="noisy_label", max_steps=250)
    u.save(unlearned, "runs/mine/unlearned", data.task)
    restored = u.load_pipeline("runs/mine/unlearned")(clean_images)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "pretrain": "imgunlearn.api",
    "unlearn": "imgunlearn.api",
    "evaluate": "imgunlearn.api",
    "save": "imgunlearn.pipeline",
    "load_task": "imgunlearn.pipeline",
    "load_pipeline": "imgunlearn.pipeline",
    "RestorationPipeline": "imgunlearn.pipeline",
    "create_model": "imgunlearn.models.base",
    "list_models": "imgunlearn.models.base",
    "load_model": "imgunlearn.models.base",
    "ImageToImageModel": "imgunlearn.models.base",
    "EncoderDecoder": "imgunlearn.models.adapter",
    "list_methods": "imgunlearn.registry",
    "MODELS": "imgunlearn.registry",
    "METHODS": "imgunlearn.registry",
    "ForgetRetainDataModule": "imgunlearn.data.datamodule",
    "make_task": "imgunlearn.data.tasks",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'imgunlearn' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    if name == "evaluate" and not hasattr(module, "evaluate"):
        module = importlib.import_module("imgunlearn.evaluation.runner")  # evaluate_models until api has evaluate
        value = module.evaluate_models
    else:
        value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
