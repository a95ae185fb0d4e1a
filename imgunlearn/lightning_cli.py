"""`imgunlearn pretrain` and `imgunlearn unlearn`: LightningCLI entry points driven by YAML configs.

Model and data run in subclass mode, so one model config (`model.init_args.model`, see configs/model/) serves
both commands: the pretraining config names `imgunlearn.training.Pretrainer` as the LightningModule, a method
config names the method's class. Configs compose with repeated `--config` (later files override earlier
ones); `--print_config` shows the resolved configuration.

Every run writes into one directory, `--out DIR` (default: a fresh `runs/<command>_N`, never an existing one)::

    DIR/config.yaml              the resolved configuration
    DIR/run.json                 status: running | failed | complete (written last)
    DIR/metrics.csv, hparams.yaml  the CSV logger's files (unless --trainer.logger false or another logger)
    DIR/checkpoints/last.ckpt    the latest checkpoint (plus Lightning's per-epoch / per-N-step one)
    DIR/splits.csv, task.json, data.json   the data splits and the task
    DIR/model/                   the trained model: config.json, model.safetensors, task.json

A directory that holds another run is refused unless `--overwrite` (which clears it first). A killed run
resumes with `--ckpt_path last --out DIR` (or a checkpoint path) when its configuration is unchanged.
`--checkpoint_every N` checkpoints every N optimiser steps (default: at the end of every epoch).

    imgunlearn pretrain --config configs/experiment/pretrain.yaml --config configs/model/unet_small.yaml \\
        --config configs/data/synthetic.yaml --config configs/trainer/cpu.yaml --out runs/original
    imgunlearn unlearn --config configs/method/noisy_label.yaml --config configs/data/synthetic.yaml \\
        --config configs/trainer/cpu.yaml --model.init_args.model runs/original/model --out runs/unlearned

Under DDP Lightning starts the other processes of a node by running this command again (with `LOCAL_RANK`
set), and SLURM / torchrun start every process themselves; only global rank zero manages the run directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.optim import check_strategy
from imgunlearn.pipeline import save
from imgunlearn.runs import Run, RunDirectoryError, fail_run, finish_run, prepare_run, read_run
from imgunlearn.training import Pretrainer, StepProgressBar

RUN_DIR_ENV = "IMGUNLEARN_RUN_DIR"
"""Set by rank zero for the processes Lightning starts, so that they write into the same run directory."""
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK")
NOT_CONFIG = ("config", "ckpt_path", "overwrite", "out", "__path__")
SELF_LOGGERS = ("CSVLogger", "TensorBoardLogger")


def is_rank_zero() -> bool:
    """Whether this process is global rank zero of its job, from the variables launchers set (before any
    process group exists)."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def launched_externally() -> bool:
    """Whether SLURM or torchrun started several processes of this job (each runs the whole command)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def fresh_run_dir(root: Path, command: str) -> Path:
    """A new directory `root/<command>_N` (created here, so two runs never get the same one)."""
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        path = root / f"{command}_{n}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def write_model_dir(module: L.LightningModule, task, target: Path) -> Path:
    """Save the trained model with its task into a temporary sibling of `target`, then move it into place."""
    work = target.with_name(f".{target.name}.incomplete-{secrets.token_hex(4)}")
    save(module.model, work, task)
    if target.exists():  # a resumed run that had saved its model before it was stopped
        aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.replace(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(work, target)
    return target


class SaveModel(L.Callback):
    """At the end of training: every process waits at a barrier, then rank zero writes `model/` and the splits."""

    def __init__(self, data: ForgetRetainDataModule, run_dir: Path) -> None:
        self.data = data
        self.run_dir = run_dir

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.strategy.barrier("imgunlearn-save-model")
        if trainer.is_global_zero:
            model_dir = write_model_dir(pl_module, self.data.task, self.run_dir / "model")
            self.data.write_splits(self.run_dir)
            print(f"saved {model_dir}")


class RunCLI(LightningCLI):
    """LightningCLI with a run directory (`--out`, `--overwrite`), resuming (`--ckpt_path`) and checkpoints."""

    def __init__(self, command: str, *args: Any, **kwargs: Any) -> None:
        self.command = command
        self.run: Run | None = None
        self.run_dir: Path | None = None
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--out", type=str | None, default=None,
                            help="Run directory (default: a new runs/<command>_N under trainer.default_root_dir)")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="Replace the results of another run in --out (removed first); a bare --overwrite "
                                 "means true, as in the other commands")
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="Resume from this checkpoint; 'last' = --out's checkpoints/last.ckpt")
        parser.add_argument("--checkpoint_every", type=int | None, default=None,
                            help="Checkpoint every N optimiser steps (default: at the end of every epoch)")
        if self.command == "unlearn":  # the method's task is the data's: forget targets' inputs are made alike
            parser.link_arguments("data", "model.init_args.task", compute_fn=lambda data: data.task,
                                  apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config
        if config.checkpoint_every is not None and config.checkpoint_every < 1:
            raise ValueError(f"--checkpoint_every must be >= 1, got {config.checkpoint_every}")
        self.run_dir = self._run_dir(config)
        self.run = self._prepare(config)
        config.trainer.default_root_dir = str(self.run_dir)
        logger = config.trainer.logger
        init = getattr(logger, "init_args", None)
        if init is not None and str(getattr(logger, "class_path", "")).rsplit(".", 1)[-1] in SELF_LOGGERS:
            init.save_dir, init.name, init.version = str(self.run_dir), "", ""

    def _run_dir(self, config) -> Path:
        if config.out is not None:
            return Path(config.out)
        if not is_rank_zero():
            if RUN_DIR_ENV not in os.environ:
                raise ValueError("this process is not rank zero and has no run directory: pass --out DIR")
            return Path(os.environ[RUN_DIR_ENV])
        if launched_externally():
            raise ValueError("several processes were started by SLURM or torchrun: pass --out DIR so that they "
                             "agree on the run directory")
        if config.ckpt_path is not None:
            raise ValueError(f"--ckpt_path {config.ckpt_path} resumes a run: pass its directory with --out")
        return fresh_run_dir(Path(config.trainer.default_root_dir or "runs"), self.command)

    def _prepare(self, config) -> Run:
        rank_zero = is_rank_zero()
        os.environ[RUN_DIR_ENV] = str(self.run_dir.resolve())  # inherited by the processes Lightning starts
        if config.ckpt_path is not None:
            config.ckpt_path = self._checkpoint(config.ckpt_path)
            metrics = self.run_dir / "metrics.csv"
            if rank_zero and metrics.is_file():  # the CSV logger starts a new file: keep the earlier one
                n = len(list(self.run_dir.glob("metrics.before-*.csv")))
                os.replace(metrics, self.run_dir / f"metrics.before-{n}.csv")
        model = getattr(getattr(config.model, "init_args", None), "model", None)
        weights = getattr(getattr(model, "init_args", None), "weights", None)  # EncoderDecoder's trained weights
        inputs = [model if isinstance(model, str) else weights, config.data.init_args.get("source"),
                  config.data.init_args.get("proxy_retain")]
        inputs = [p for p in inputs if isinstance(p, str) and Path(p).exists()]
        try:
            return prepare_run(self.run_dir, command=self.command, config=self._digestible(config),
                               overwrite=config.overwrite, resume=config.ckpt_path is not None, in_place=True,
                               inputs=inputs, rank_zero=rank_zero)
        except RunDirectoryError as error:
            record = read_run(self.run_dir) or {}
            if record.get("status") in ("running", "failed") and config.ckpt_path is None:
                raise RunDirectoryError(f"{error}; or resume it with --ckpt_path last") from None
            raise

    def _checkpoint(self, ckpt_path: str) -> str:
        path = self.run_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from: {path} is missing")
        return str(path)

    def _digestible(self, config) -> dict[str, Any]:
        """The resolved configuration without what may change between a run and its resumption."""
        dumped = yaml.safe_load(self.parser.dump(config, skip_check=True))
        for key in NOT_CONFIG:
            dumped.pop(key, None)
        dumped.get("trainer", {}).pop("default_root_dir", None)
        return dumped

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """A run that failed before training started leaves no trace in a directory it was the first to use."""
        if self.run is None or not self.run.rank_zero or self.run.resumed:
            return
        (self.run_dir / "run.json").unlink(missing_ok=True)
        if self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer_config = self.config_init["trainer"]
        callbacks = trainer_config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if trainer_config.get("enable_checkpointing") is not False:
            callbacks.append(ModelCheckpoint(dirpath=self.run_dir / "checkpoints", save_last=True,
                                             every_n_train_steps=self.config.checkpoint_every))
        if trainer_config.get("enable_progress_bar") is not False:
            callbacks.append(StepProgressBar())
        callbacks.append(SaveModel(self.datamodule, self.run_dir))
        trainer = super().instantiate_trainer(callbacks=callbacks, **kwargs)
        if trainer_config.get("logger") in (True, None):  # Lightning's default logger would nest version dirs
            trainer.logger = CSVLogger(self.run_dir, name="", version="")
        check_strategy(trainer)
        return trainer


# the run directory rule above decides what may be in an existing directory; the CSV logger need not warn
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")


def flag_values(argv: list[str]) -> list[str]:
    """`--overwrite` without a value means `--overwrite true` (the other commands' flag form)."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--overwrite" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("true")
    return out


def _cli(command: str, model_class: type[L.LightningModule], argv: list[str]) -> RunCLI:
    argv = flag_values(argv)
    return RunCLI(
        command,
        model_class,
        ForgetRetainDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={"accelerator": "auto", "default_root_dir": "runs", "use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        args=argv,
        run=False,
    )


def _fit(cli: RunCLI, **dataloaders: Any) -> int:
    try:
        cli.trainer.fit(cli.model, ckpt_path=cli.config.ckpt_path, **dataloaders)
    except BaseException as error:
        if cli.run is not None:
            fail_run(cli.run, error)
        raise
    if cli.trainer.is_global_zero and cli.run is not None:
        finish_run(cli.run)
    return 0


def pretrain_main(argv: list[str]) -> int:
    cli = _cli("pretrain", Pretrainer, argv)
    cli.datamodule.setup("fit")
    # the original model learns from the whole training set (forget ∪ retain), not from paired batches
    return _fit(cli, train_dataloaders=cli.datamodule.pretrain_dataloader())


def unlearn_main(argv: list[str]) -> int:
    cli = _cli("unlearn", UnlearningModule, argv)
    return _fit(cli, datamodule=cli.datamodule)
