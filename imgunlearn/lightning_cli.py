"""`imgunlearn pretrain` and `imgunlearn unlearn`: LightningCLI entry points driven by YAML configs.

Model and data run in subclass mode, so one model config (`model.init_args.model`, see configs/model/) serves
both commands: the pretraining config names `imgunlearn.training.Pretrainer` as the LightningModule, a method
config names the method's class. Configs compose with repeated `--config` (later files override earlier
ones); `--print_config` shows the resolved configuration, which is also saved as `config.yaml` in every run
directory. At the end of a run the trained model is written with `save_pretrained` into `<run dir>/model`,
with `task.json` (how model inputs were made) beside it and the data splits in the run directory.

    imgunlearn pretrain --config configs/experiment/pretrain.yaml --config configs/model/unet_small.yaml \\
        --config configs/data/synthetic.yaml --config configs/trainer/cpu.yaml
    imgunlearn unlearn --config configs/method/noisy_label.yaml --config configs/data/synthetic.yaml \\
        --config configs/trainer/cpu.yaml --model.init_args.model runs/lightning_logs/version_0/model
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningCLI

from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.training import Pretrainer


class SaveModel(L.Callback):
    """Writes the trained model, its task and the data splits into the run directory when training ends."""

    def __init__(self, data: ForgetRetainDataModule) -> None:
        self.data = data

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        model_dir = pl_module.model.save_pretrained(run_dir / "model")
        self.data.write_splits(run_dir)
        (model_dir / "task.json").write_text(json.dumps(self.data.task.to_config(), indent=2))
        print(f"saved {model_dir}")


class UnlearnCLI(LightningCLI):
    """The method's task is the data's task: model inputs of forget targets are made like the data's."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data", "model.init_args.task", compute_fn=lambda data: data.task, apply_on="instantiate")


def _cli(cli_class: type[LightningCLI], model_class: type[L.LightningModule], argv: list[str]) -> LightningCLI:
    cli = cli_class(
        model_class,
        ForgetRetainDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={"accelerator": "auto", "default_root_dir": "runs"},
        save_config_kwargs={"overwrite": True},
        args=argv,
        run=False,
    )
    cli.trainer.callbacks.append(SaveModel(cli.datamodule))
    return cli


def pretrain_main(argv: list[str]) -> int:
    cli = _cli(LightningCLI, Pretrainer, argv)
    cli.datamodule.setup("fit")
    # the original model learns from the whole training set (forget ∪ retain), not from paired batches
    cli.trainer.fit(cli.model, train_dataloaders=cli.datamodule.pretrain_dataloader())
    return 0


def unlearn_main(argv: list[str]) -> int:
    cli = _cli(UnlearnCLI, UnlearningModule, argv)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return 0
