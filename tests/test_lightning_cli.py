"""`imgunlearn pretrain` / `imgunlearn unlearn`: run directories, refusal and --overwrite, resuming a killed run,
the trainer configs, and one progress bar per step-limited run."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from cli_helpers import CONFIGS, DATA, run_cli
from torch.utils.data import DataLoader

import imgunlearn
from imgunlearn.cli import main
from imgunlearn.data.tasks import make_task
from imgunlearn.lightning_cli import RUN_DIR_ENV
from imgunlearn.models import create_model
from imgunlearn.runs import RunDirectoryError
from imgunlearn.training import Pretrainer, StepProgressBar

KILL_AT_STEP_5 = """
import os, signal, sys
from imgunlearn.methods.base import UnlearningModule
def stop(self, outputs, batch, batch_idx):
    if self.global_step == 5:  # after the step-4 checkpoint and one more step
        os.kill(os.getpid(), signal.SIGKILL)
UnlearningModule.on_train_batch_end = stop
from imgunlearn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def _run_dir_env(monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, "unset")  # restored (removed) after each test


@pytest.fixture
def original(tmp_path) -> Path:
    return imgunlearn.save(create_model("unet_tiny"), tmp_path / "original" / "model", make_task("restore"))


def pretrain_args(out: str | None, *extra: str) -> list[str]:
    return ["pretrain", "--config", f"{CONFIGS}/experiment/pretrain.yaml", "--config", f"{CONFIGS}/model/unet_small.yaml",
            "--model.init_args.model.init_args.channels", "[8, 16]", *DATA, "--trainer.max_steps", "2",
            *(["--out", out] if out else []), *extra]


def unlearn_args(original: Path, out: str | None, *extra: str, method: str = "noisy_label") -> list[str]:
    return ["unlearn", "--config", f"{CONFIGS}/method/{method}.yaml", "--model.init_args.model", str(original), *DATA,
            *(["--out", out] if out else []), *extra]


def test_pretrain_refuses_another_run_and_overwrite_replaces_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(pretrain_args("run"))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "complete"
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    first = imgunlearn.load_model(tmp_path / "run" / "model").state_dict()
    with pytest.raises(RunDirectoryError, match=r"run already holds a complete run of `imgunlearn pretrain`.*--overwrite"):
        main(pretrain_args("run"))
    stale = tmp_path / "run" / "checkpoints" / "stale.ckpt"
    stale.write_text("old")
    main(pretrain_args("run", "--overwrite", "--model.init_args.lr", "1e-2"))
    assert not stale.exists()  # the old content was removed first
    second = imgunlearn.load_model(tmp_path / "run" / "model").state_dict()
    assert not all(torch.equal(first[k], second[k]) for k in first)


def test_unlearn_refuses_its_input_and_runs_without_a_logger_never_share_a_model(tmp_path, original, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirectoryError, match="contains the input"):
        main(unlearn_args(original, str(tmp_path / "original"), "--trainer.max_steps", "1"))
    assert not (tmp_path / "original" / "run.json").exists()
    for _ in range(2):
        main(unlearn_args(original, None, "--trainer.max_steps", "1", "--trainer.logger", "false",
                          "--trainer.default_root_dir", "runs"))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["unlearn_0", "unlearn_1"]
    for run in ("unlearn_0", "unlearn_1"):
        assert {p.name for p in (tmp_path / "runs" / run / "model").iterdir()} == {"config.json", "model.safetensors",
                                                                                 "task.json"}
    main(unlearn_args(original, "done", "--trainer.max_steps", "1"))
    with pytest.raises(RunDirectoryError, match="done already holds a complete run of `imgunlearn unlearn`"):
        main(unlearn_args(original, "done", "--trainer.max_steps", "1"))
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from: .*fresh/checkpoints/last.ckpt"):
        main(unlearn_args(original, "fresh", "--trainer.max_steps", "1", "--ckpt_path", "last"))
    with pytest.raises(ValueError, match="pass its directory with --out"):
        main(unlearn_args(original, None, "--ckpt_path", "last"))


def test_a_killed_run_resumed_from_its_last_checkpoint_ends_like_an_uninterrupted_one(tmp_path, original,
                                                                                       monkeypatch):
    """6 forget tiles in batches of 2: the step-4 checkpoint is in the middle of the second epoch."""
    monkeypatch.chdir(tmp_path)
    settings = ["--trainer.max_steps", "8", "--checkpoint_every", "4", "--model.init_args.warmup_steps", "3"]
    main(unlearn_args(original, "whole", *settings))
    killed = run_cli(*unlearn_args(original, "killed", *settings), cwd=tmp_path, code=KILL_AT_STEP_5)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert json.loads((tmp_path / "killed" / "run.json").read_text())["status"] == "running"
    assert not (tmp_path / "killed" / "model").exists()
    with pytest.raises(RunDirectoryError, match="resume it with --ckpt_path last"):
        main(unlearn_args(original, "killed", *settings))
    with pytest.raises(RunDirectoryError, match="configuration differs"):
        main(unlearn_args(original, "killed", *settings[:-1], "4", "--ckpt_path", "last"))
    main(unlearn_args(original, "killed", *settings, "--ckpt_path", "last"))
    whole = imgunlearn.load_model(tmp_path / "whole" / "model").state_dict()
    resumed = imgunlearn.load_model(tmp_path / "killed" / "model").state_dict()
    before = imgunlearn.load_model(original).state_dict()
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) <= 1e-6
    assert any(not torch.equal(whole[k], before[k]) for k in whole)
    assert json.loads((tmp_path / "killed" / "run.json").read_text())["status"] == "complete"


def test_trainer_configs_parse(capsys, original):
    for name in ("gpu_ddp", "cpu"):
        with pytest.raises(SystemExit) as stop:
            main(unlearn_args(original, None, "--config", f"{CONFIGS}/trainer/{name}.yaml", "--print_config"))
        assert stop.value.code == 0
    printed = capsys.readouterr().out
    assert "strategy: ddp" in printed and "use_distributed_sampler: false" in printed


def test_step_limited_training_shows_one_bar_for_the_whole_run(monkeypatch):
    module = Pretrainer(create_model("unet_tiny"), warmup_steps=1)
    image = torch.rand(2, 3, 16, 16)
    batch = {"image": image, "input": image, "mask": torch.zeros(2, 1, 16, 16)}
    bar = StepProgressBar()
    made = []
    original_init = bar.init_train_tqdm
    monkeypatch.setattr(bar, "init_train_tqdm", lambda: made.append(1) or original_init())
    trainer = L.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False, callbacks=[bar],
                        enable_model_summary=False)
    trainer.fit(module, DataLoader([batch, batch], batch_size=None))  # 2 batches per epoch, 3 epochs
    assert trainer.current_epoch >= 2 and len(made) == 1
    assert bar.train_progress_bar.total == 5 and bar.train_progress_bar.n == 5


def test_api_passes_trainer_arguments_to_the_trainer_and_the_rest_to_the_method():
    from imgunlearn.data.datamodule import ForgetRetainDataModule

    seen = {}

    class Record(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.update(log_every=trainer.log_every_n_steps, lr=pl_module.hparams.lr,
                        sampler=trainer._accelerator_connector.use_distributed_sampler)

    data = ForgetRetainDataModule(size=16, num_forget=4, num_retain=4, num_holdout_forget=2, num_holdout_retain=2,
                                  batch_size=2)
    model = create_model("unet_tiny")
    imgunlearn.unlearn(model, data, method="finetune", max_steps=1, accelerator="cpu", progress=False,
                       log_every_n_steps=1, callbacks=[Record()], lr=1e-3)
    assert seen == {"log_every": 1, "lr": 1e-3, "sampler": False}
    with pytest.raises(TypeError, match="bogus"):
        imgunlearn.unlearn(model, data, method="finetune", max_steps=1, bogus=1)
