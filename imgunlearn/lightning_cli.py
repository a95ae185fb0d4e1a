"""`imgunlearn pretrain` and `imgunlearn unlearn`: LightningCLI entry points driven by YAML configs.

Configs compose with repeated `--config` (later files override earlier ones); `--print_config` shows the
resolved configuration, which is also saved as `config.yaml` in every run directory. At the end of a run the
trained model is written with `save_pretrained` into `<run dir>/model`, next to `task.json` (how model inputs
were made) and the data splits.

    imgunlearn pretrain --config configs/experiment/demo_pretrain.yaml
    imgunlearn unlearn --config configs/experiment/demo_unlearn.yaml --config configs/method/noisy_label.yaml \\
        --model.init_args.model runs/pretrain/version_0/model
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import DataLoader

from imgunlearn import methods  # noqa: F401  (registers the methods)
from imgunlearn.data.datamodule import ForgetRetainDataModule
from imgunlearn.methods.base import UnlearningModule
from imgunlearn.training import Pretrainer


class PretrainDataModule(ForgetRetainDataModule):
    """The same data, served as plain batches over the original training set (forget ∪ retain)."""

    def train_dataloader(self) -> DataLoader:
        return self.pretrain_dataloader()


class SaveModel(L.Callback):
    """Writes the trained model, its task and the data splits into the run directory when training ends."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        model_dir = pl_module.model.save_pretrained(run_dir / "model")
        datamodule = trainer.datamodule
        (model_dir / "task.json").write_text(json.dumps(datamodule.task.to_config(), indent=2))
        datamodule.write_splits(run_dir)
        print(f"saved {model_dir}")


def _cli(model_class: type[L.LightningModule], datamodule_class: type, argv: list[str], subclass_mode: bool) -> None:
    cli = LightningCLI(
        model_class,
        datamodule_class,
        subclass_mode_model=subclass_mode,
        trainer_defaults={"callbacks": [SaveModel()], "accelerator": "auto", "default_root_dir": "runs"},
        save_config_kwargs={"overwrite": True},
        args=argv,
        run=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def pretrain_main(argv: list[str]) -> int:
    _cli(Pretrainer, PretrainDataModule, argv, subclass_mode=False)
    return 0


def unlearn_main(argv: list[str]) -> int:
    _cli(UnlearningModule, ForgetRetainDataModule, argv, subclass_mode=True)
    return 0
