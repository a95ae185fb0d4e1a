"""Run models over forget / retain splits, collect metrics, write tables, pictures and a report."""

from imgunlearn.evaluation.faces import FaceDetector
from imgunlearn.evaluation.metric_set import DEFAULT_METRICS, METRICS
from imgunlearn.evaluation.report import write_report
from imgunlearn.evaluation.runner import (
    NonFiniteOutputError,
    compute_metrics,
    evaluate_models,
    evaluate_saved,
    generate,
)
from imgunlearn.evaluation.tables import to_csv, to_markdown, write_tables

__all__ = ["DEFAULT_METRICS", "METRICS", "FaceDetector", "NonFiniteOutputError", "compute_metrics", "evaluate_models",
           "evaluate_saved", "generate", "to_csv", "to_markdown", "write_report", "write_tables"]
