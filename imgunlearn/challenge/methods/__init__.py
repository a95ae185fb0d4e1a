"""Classifier unlearning methods for the face age-predictor track, registered in `CLASSIFIER_METHODS`.

Every method is a class (hyperparameters and a `seed` in the constructor) whose instances are called with the
challenge's signature, `method(net, retain_loader, forget_loader, val_loader) -> net`. Each method module also
has a plain function `unlearning(net, retain_loader, forget_loader, val_loader)` with the default
hyperparameters, so `"imgunlearn.challenge.methods.scrub:unlearning"` is a valid user-function spec too.
"""

from imgunlearn.challenge.methods import (  # noqa: F401  (each registers its method)
    bad_teacher,
    finetune,
    neggrad_plus,
    random_label,
    reset_finetune,
    retrain,
    salun,
    scrub,
    ssd,
)
from imgunlearn.challenge.methods.bad_teacher import BadTeacher
from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS, ClassifierUnlearning
from imgunlearn.challenge.methods.finetune import Finetune
from imgunlearn.challenge.methods.neggrad_plus import NegGradPlus
from imgunlearn.challenge.methods.random_label import RandomLabel
from imgunlearn.challenge.methods.reset_finetune import ResetFinetune
from imgunlearn.challenge.methods.resolve import list_methods, resolve_unlearning, returning
from imgunlearn.challenge.methods.retrain import Retrain
from imgunlearn.challenge.methods.salun import SalUn
from imgunlearn.challenge.methods.scrub import Scrub
from imgunlearn.challenge.methods.ssd import SSD

__all__ = [
    "CLASSIFIER_METHODS", "SSD", "BadTeacher", "ClassifierUnlearning", "Finetune", "NegGradPlus", "RandomLabel",
    "ResetFinetune", "Retrain", "SalUn", "Scrub", "list_methods", "resolve_unlearning", "returning",
]
