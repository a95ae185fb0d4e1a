"""I2I unlearning methods: `UnlearningModule` subclasses registered in `METHODS` (one file each).

The method files register themselves when `METHODS` is first looked up.
"""

from imgunlearn.methods.base import UnlearningModule
from imgunlearn.registry import METHODS

__all__ = ["METHODS", "UnlearningModule"]
