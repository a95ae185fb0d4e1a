"""The face age-predictor track of the NeurIPS 2023 Machine Unlearning Challenge.

Scoring (`imgunlearn.challenge.scoring`) works on `[num_models, num_examples]` NumPy confidence arrays (torch only
builds one float32 threshold grid, as the official code does).
"""

from imgunlearn.challenge.scoring import (
    DELTA,
    EPSILON_CAP,
    epsilon_table,
    final_score,
    forget_buckets,
    forget_score,
    forget_score_from_epsilons,
    logit_scaled_confidence,
    max_forget_epsilon,
    per_example_epsilons,
)

__all__ = [
    "DELTA",
    "EPSILON_CAP",
    "epsilon_table",
    "final_score",
    "forget_buckets",
    "forget_score",
    "forget_score_from_epsilons",
    "logit_scaled_confidence",
    "max_forget_epsilon",
    "per_example_epsilons",
]
