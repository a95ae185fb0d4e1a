"""I2I unlearning methods: `UnlearningModule` subclasses registered in `METHODS`."""

from imgunlearn.methods import (  # noqa: F401  (each import registers a method)
    encoder_teacher,
    finetune,
    max_loss,
    noisy_label,
    random_encoder,
    retain_label,
)
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.registry import METHODS

__all__ = ["METHODS", "UnlearningModule"]
