"""`imgunlearn evaluate` end to end on tiny saved models and the embedded synthetic survey."""

import json

import pytest
import torch

from imgunlearn.cli import main as imgunlearn_main
from imgunlearn.evaluation.cli import main
from imgunlearn.models import create_model

DATA = ["--data", "synthetic", "--size", "32", "--num-forget", "3", "--num-retain", "3", "--num-holdout-forget", "3",
        "--num-holdout-retain", "3", "--quiet"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    create_model("unet_tiny").save_pretrained(root / "original")
    torch.manual_seed(1)
    create_model("unet_tiny").save_pretrained(root / "run" / "model")  # a run folder holding model/
    return root


def test_evaluate_writes_results_and_rescore_reproduces_them(checkpoints, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--reference-ckpt", str(checkpoints / "original"), "--ckpt", str(checkpoints / "run"), *DATA,
            "--task", "inpaint", "--ratio", "0.25", "--out", str(out)]
    assert imgunlearn_main(["evaluate", *argv]) == 0
    assert "unlearned: forget_holdout face_psnr" in capsys.readouterr().out
    results = json.loads((out / "metrics.json").read_text())
    assert set(results) == {"original", "unlearned", "input", "ground_truth"}
    for split in ("forget_train", "forget_holdout", "retain_train", "retain_holdout"):
        for key in ("psnr", "ssim", "mse", "face_detect_rate"):
            assert results["unlearned"][split][key] is not None
    assert results["original"]["forget_holdout"]["face_psnr"] != results["unlearned"]["forget_holdout"]["face_psnr"]
    assert "centred box of side 0.25" in (out / "report.md").read_text()
    before = (out / "metrics.json").read_text()
    assert main(["--rescore", "--out", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").read_text() == before


def test_task_all_writes_one_folder_per_task(checkpoints, tmp_path):
    out = tmp_path / "all"
    argv = ["--ckpt", f"mine={checkpoints / 'original'}", *DATA, "--task", "all", "--out", str(out),
            "--metrics", "psnr,hidden_psnr,face_psnr", "--splits", "forget_holdout,retain_holdout",
            "--no-save-outputs"]
    assert main(argv) == 0
    for folder, hidden in (("restore", False), ("inpaint_0.25", True), ("inpaint_0.5", True), ("outpaint_0.25", True)):
        results = json.loads((out / folder / "metrics.json").read_text())
        assert set(results["mine"]) == {"forget_holdout", "retain_holdout"}
        assert ("hidden_psnr" in results["mine"]["retain_holdout"]) == hidden
        assert "face_psnr" in results["mine"]["forget_holdout"]


def test_clear_errors(checkpoints, tmp_path, capsys):
    base = ["--ckpt", str(checkpoints / "original"), *DATA, "--task", "restore", "--out", str(tmp_path / "e")]
    assert main(["--ckpt", str(tmp_path / "nowhere"), *base[2:]]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert main([*base, "--feature", "inception"]) == 2
    assert "inception" in capsys.readouterr().err
    assert main([*base, "--metrics", "psnr,sharpness"]) == 2
    assert "unknown metrics" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "e"), "--ckpt", str(checkpoints / "original")]) == 2
    assert "--data and --task are required" in capsys.readouterr().err
