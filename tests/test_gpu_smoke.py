"""scripts/gpu_smoke.py runs every path it covers on the CPU too (the same script a GPU machine runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_smoke.py"


def test_gpu_smoke_refuses_a_missing_cuda_device():
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda:7"], capture_output=True, text=True,
                            timeout=120)
    if "no CUDA device visible" not in result.stdout:
        pytest.skip("a CUDA device is visible")
    assert result.returncode == 1


@pytest.mark.slow
def test_gpu_smoke_passes_every_path_on_cpu(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--model", "unet_tiny", "--size", "32", "--images", "8",
         "--batch-size", "4", "--steps", "3", "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=1800)
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert result.returncode == 0, "\n".join(lines) + result.stderr[-2000:]
    names = {line.split()[1] for line in lines}
    assert {"pretrain", "evaluate", "api:throughput", "challenge:score"} <= names
    assert any(name.startswith("unlearn:encoder_teacher") for name in names)
    assert (tmp_path / "pool" / "score.json").is_file()
