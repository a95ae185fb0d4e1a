"""Classifier unlearning methods for the face age-predictor track, registered in `CLASSIFIER_METHODS`.

Every method is a class (hyperparameters and a `seed` in the constructor) whose instances are called with the
challenge's signature, `method(net, retain_loader, forget_loader, val_loader) -> net`. Each method module also
has a plain function `unlearning(net, retain_loader, forget_loader, val_loader)` with the default
hyperparameters, so `"imgunlearn.challenge.methods.scrub:unlearning"` is a valid user-function spec too.
"""

from imgunlearn.challenge.methods import (  # noqa: F401  (each registers its method)
    bad_teacher,
    conv_transpose_finetune,
    finetune,
    forget_contrast,
    neggrad_plus,
    prune_reinit_distill,
    random_label,
    reset_distill,
    reset_finetune,
    reset_noise_finetune,
    retrain,
    saliency_reinit,
    salun,
    scrub,
    ssd,
    weight_noise_finetune,
)
from imgunlearn.challenge.methods.bad_teacher import BadTeacher
from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS, ClassifierUnlearning
from imgunlearn.challenge.methods.conv_transpose_finetune import ConvTransposeFinetune
from imgunlearn.challenge.methods.finetune import Finetune
from imgunlearn.challenge.methods.forget_contrast import ForgetContrast
from imgunlearn.challenge.methods.neggrad_plus import NegGradPlus
from imgunlearn.challenge.methods.prune_reinit_distill import PruneReinitDistill
from imgunlearn.challenge.methods.random_label import RandomLabel
from imgunlearn.challenge.methods.reset_distill import ResetDistill
from imgunlearn.challenge.methods.reset_finetune import ResetFinetune
from imgunlearn.challenge.methods.reset_noise_finetune import ResetNoiseFinetune
from imgunlearn.challenge.methods.resolve import list_methods, resolve_unlearning, returning
from imgunlearn.challenge.methods.retrain import Retrain
from imgunlearn.challenge.methods.saliency_reinit import SaliencyReinit
from imgunlearn.challenge.methods.salun import SalUn
from imgunlearn.challenge.methods.scrub import Scrub
from imgunlearn.challenge.methods.ssd import SSD
from imgunlearn.challenge.methods.weight_noise_finetune import WeightNoiseFinetune

__all__ = [
    "CLASSIFIER_METHODS", "SSD", "BadTeacher", "ClassifierUnlearning", "ConvTransposeFinetune", "Finetune",
    "ForgetContrast", "NegGradPlus", "PruneReinitDistill", "RandomLabel", "ResetDistill", "ResetFinetune",
    "ResetNoiseFinetune", "Retrain", "SaliencyReinit", "SalUn", "Scrub", "WeightNoiseFinetune", "list_methods",
    "resolve_unlearning", "returning",
]
