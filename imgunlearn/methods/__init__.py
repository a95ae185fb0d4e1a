"""I2I unlearning methods: `UnlearningModule` subclasses registered in `METHODS`."""

from imgunlearn.methods import encoder_teacher  # noqa: F401  (registers the method)
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.registry import METHODS

__all__ = ["METHODS", "UnlearningModule"]
