"""Datasets, tasks, splits and the forget/retain DataModule."""

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.data.datasets import PairedDataset, SplitDataset, UnionDataset
from imgunlearn.data.faces import lfw_faces, split_face_ids
from imgunlearn.data.sampling import PairedSampler, ShuffledSampler
from imgunlearn.data.splits import CSV_SPLITS, SPLITS, ImageSet, canonical_split, split_kind
from imgunlearn.data.synthetic import SurveyData, generate_survey
from imgunlearn.data.tasks import Task, make_task, task_from_config
from imgunlearn.data.user_data import load_user_splits, read_csv, read_folder, read_image_folder

__all__ = [
    "CSV_SPLITS",
    "SPLITS",
    "ForgetRetainDataModule",
    "ImageSet",
    "PairedDataset",
    "PairedSampler",
    "ShuffledSampler",
    "SplitDataset",
    "SurveyData",
    "Task",
    "UnionDataset",
    "canonical_split",
    "generate_survey",
    "lfw_faces",
    "load_user_splits",
    "make_task",
    "read_csv",
    "read_folder",
    "read_image_folder",
    "split_face_ids",
    "split_kind",
    "task_from_config",
]
