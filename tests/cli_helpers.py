"""Running the `imgunlearn` Lightning commands from tests at tiny size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATA = ["--config", f"{CONFIGS}/data/synthetic.yaml", "--data.init_args.size", "16",
        "--data.init_args.num_forget", "6", "--data.init_args.num_retain", "6",
        "--data.init_args.num_holdout_forget", "2", "--data.init_args.num_holdout_retain", "2",
        "--data.init_args.batch_size", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.accelerator", "cpu"]
"""Tiny synthetic data (16 px, 6 forget tiles in batches of 2) on the CPU."""
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]


def run_cli(*args: str, cwd: Path, code: str | None = None, script: Path | None = None) -> subprocess.CompletedProcess:
    """`imgunlearn ARGS` in a fresh process (Lightning's DDP launcher re-runs that command line per process), or
    Python `code` with ARGS as its arguments, or the Python file `script` (which the DDP launcher can re-run, unlike
    `-c` code)."""
    if code is not None and script is not None:
        raise ValueError("pass code or script, not both")
    if code is not None:
        command = [sys.executable, "-c", code, *args]
    elif script is not None:
        command = [sys.executable, str(script), *args]
    else:
        command = [sys.executable, "-m", "imgunlearn.cli", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "IMGUNLEARN_RUN_DIR")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result
