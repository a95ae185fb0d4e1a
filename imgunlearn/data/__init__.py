"""Datasets, tasks, splits and the forget/retain DataModule."""

from imgunlearn.data.tasks import Task, make_task, task_from_config

__all__ = ["Task", "make_task", "task_from_config"]
