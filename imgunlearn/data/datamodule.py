"""`ForgetRetainDataModule`: forget / retain splits, paired training batches and fixed evaluation splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from imgunlearn.data.checks import check_splits
from imgunlearn.data.datasets import PairedDataset, SplitDataset, UnionDataset
from imgunlearn.data.sampling import PairedSampler, ResumableLoader, ShuffledBatchSampler
from imgunlearn.data.splits import PROXY_RETAIN, ImageSet, canonical_split, split_table
from imgunlearn.data.synthetic import generate_survey
from imgunlearn.data.tasks import Task, make_task
from imgunlearn.data.user_data import load_user_splits, read_image_folder
from imgunlearn.io import atomic_write_text

SPLITS_FILE = "splits.csv"
TASK_FILE = "task.json"
DATA_FILE = "data.json"


class ForgetRetainDataModule(L.LightningDataModule):
    """Forget and retain data for unlearning an image-to-image model.

    Batches of `train_dataloader()` are `{"forget": {...}, "retain": {...}}`, each side the collated item
    dicts of `datasets.SplitDataset` (`image`, `input`, `mask`, `forget_mask`, `index`). The forget set is the
    anchor: one epoch is one pass over it; retain items are drawn by a seeded sampler to match. Training
    items get fresh degradations; `split_dataset` gives fixed ones for evaluation.

    Args:
        source: `"synthetic"` (the embedded aerial survey), a CSV file or a split folder
            (see `user_data.py`).
        size: Side of the synthetic tiles.
        num_forget: Synthetic forget tiles.
        num_retain: Synthetic retain tiles.
        num_holdout_forget: Synthetic held-out forget tiles (faces unseen in training).
        num_holdout_retain: Synthetic held-out retain tiles.
        num_holdout_faces: Face entries (of 100) reserved for held-out forget tiles.
        task: A `Task`, or a task name (`restore`, `inpaint`, `outpaint`, `hybrid`) built with `task_args`.
        task_args: Settings of a task given by name (e.g. `{"ratio": 0.25}`).
        batch_size: Items per side of a training batch.
        eval_batch_size: Items per evaluation batch (default: `batch_size`).
        seed: Seed of the synthetic survey, the samplers and the degradations.
        num_workers: DataLoader workers.
        proxy_retain: A folder of openly usable images; the retain side of training batches then comes from
            it instead of the real retain set.
        resize: Resize user images (and their boxes) to `resize × resize`; None requires one common size.
    """

    def __init__(
        self,
        source: str = "synthetic",
        size: int = 64,
        num_forget: int = 200,
        num_retain: int = 800,
        num_holdout_forget: int = 100,
        num_holdout_retain: int = 100,
        num_holdout_faces: int = 20,
        task: Task | str = "restore",
        task_args: dict[str, Any] | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        proxy_retain: str | None = None,
        resize: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(task, Task):
            if task_args:
                raise ValueError(f"task_args {task_args} given with a Task object; put them in the Task")
            self._task = task
        else:
            self._task = make_task(task, **(task_args or {}))
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size} and {eval_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if source != "synthetic" and not Path(source).exists():
            raise FileNotFoundError(f"data source not found: {source} (expected 'synthetic', a CSV file or a folder)")
        self.save_hyperparameters(ignore=["task"])
        self.hparams["task"] = self._task.to_config()
        self._splits: dict[str, ImageSet] | None = None
        self._proxy: ImageSet | None = None

    # ---- data ----------------------------------------------------------------------------------------

    @property
    def task(self) -> Task:
        """The task that makes model inputs from images."""
        return self._task

    @property
    def splits(self) -> dict[str, ImageSet]:
        """The four splits (loaded and checked on first use)."""
        if self._splits is None:
            self._load()
        return self._splits

    @property
    def proxy_retain(self) -> ImageSet | None:
        """The proxy retain images, if a proxy folder was given."""
        self.splits  # noqa: B018  (loads)
        return self._proxy

    def setup(self, stage: str | None = None) -> None:
        self.splits  # noqa: B018  (loads and checks)

    def _load(self) -> None:
        hp = self.hparams
        if hp.source == "synthetic":
            survey = generate_survey(hp.num_forget, hp.num_retain, hp.num_holdout_forget, hp.num_holdout_retain,
                                     size=hp.size, seed=hp.seed, num_holdout_faces=hp.num_holdout_faces)
            splits = survey.splits
        else:
            splits = load_user_splits(hp.source, hp.resize)
        proxy = None
        if hp.proxy_retain is not None:
            proxy = read_image_folder(hp.proxy_retain, hp.resize, what="proxy retain images")
        check_splits(splits, self._task, proxy)
        self._splits, self._proxy = splits, proxy

    def split_dataset(self, name: str, fixed: bool = True) -> SplitDataset:
        """The dataset of split `name` (`forget_train`, ..., or `proxy_retain`), fixed degradations by default."""
        name = canonical_split(name)
        if name == PROXY_RETAIN:
            if self.proxy_retain is None:
                raise ValueError("no proxy retain set: set proxy_retain to a folder of images")
            images = self.proxy_retain
        else:
            images = self.splits[name]
        return SplitDataset(images, self._task, name, fixed=fixed, seed=self.hparams.seed)

    # ---- loaders -------------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        """Paired batches `{"forget", "retain"}`; retain from the proxy set when one is given.

        Under DDP every process gets its own share of the forget set (see `sampling.py`); the loader's position
        is saved in Lightning checkpoints, so a run resumed mid-epoch continues with the next batch.
        """
        self._check_trainer()
        forget = self.split_dataset("forget_train", fixed=False)
        retain = self.split_dataset(PROXY_RETAIN if self.proxy_retain is not None else "retain_train", fixed=False)
        sampler = PairedSampler(len(forget), len(retain), self.hparams.batch_size, seed=self.hparams.seed)
        return self._loader(PairedDataset(forget, retain), sampler)

    def pretrain_dataloader(self) -> DataLoader:
        """Plain batches over forget_train ∪ retain_train (the original model's data), fresh degradations."""
        union = UnionDataset([self.split_dataset("forget_train", fixed=False),
                              self.split_dataset("retain_train", fixed=False)])
        return self._loader(union, ShuffledBatchSampler(len(union), self.hparams.batch_size, seed=self.hparams.seed))

    def eval_dataloader(self, name: str) -> DataLoader:
        """Batches of split `name` in order, with fixed degradations."""
        workers = self.hparams.num_workers
        return DataLoader(self.split_dataset(name), batch_size=self.hparams.eval_batch_size or self.hparams.batch_size,
                          shuffle=False, num_workers=workers, persistent_workers=workers > 0)

    def _loader(self, dataset, batch_sampler) -> DataLoader:
        workers = self.hparams.num_workers
        return ResumableLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                               persistent_workers=workers > 0)

    def _check_trainer(self) -> None:
        """Refuse a DDP Trainer that would wrap the sampler in a second, Lightning-made distributed sampler."""
        trainer = getattr(self, "trainer", None)
        connector = getattr(trainer, "_accelerator_connector", None)
        if connector is not None and connector.use_distributed_sampler and connector.is_distributed:
            raise ValueError("ForgetRetainDataModule shards its training data over the processes itself: create the "
                             "Trainer with use_distributed_sampler=False")

    # ---- records -------------------------------------------------------------------------------------

    def write_splits(self, run_dir: str | Path) -> list[Path]:
        """Write the split lists (`splits.csv`), the task (`task.json`) and the data settings (`data.json`).

        Returns:
            The written files.
        """
        run_dir = Path(run_dir)
        named = dict(self.splits)
        if self.proxy_retain is not None:
            named[PROXY_RETAIN] = self.proxy_retain
        files = [run_dir / SPLITS_FILE, run_dir / TASK_FILE, run_dir / DATA_FILE]
        atomic_write_text(files[0], split_table(named))
        atomic_write_text(files[1], json.dumps(self._task.to_config(), indent=2, sort_keys=True) + "\n")
        settings = {k: v for k, v in self.hparams.items() if k != "task"}
        settings["image_size"] = list(named["forget_train"].size)
        settings["counts"] = {name: len(images) for name, images in named.items()}
        atomic_write_text(files[2], json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n")
        return files
