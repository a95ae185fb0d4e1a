"""`imgunlearn evaluate` end to end on tiny saved models and the embedded synthetic survey."""

import json

import pytest
import torch
import yaml

from imgunlearn.api import save
from imgunlearn.cli import main as imgunlearn_main
from imgunlearn.data.tasks import make_task
from imgunlearn.evaluation.cli import main
from imgunlearn.models import create_model
from imgunlearn.runs import read_run

DATA = ["--data", "synthetic", "--size", "32", "--num-forget", "3", "--num-retain", "3", "--num-holdout-forget", "3",
        "--num-holdout-retain", "3", "--quiet"]
QUICK = ["--metrics", "psnr,face_psnr", "--splits", "forget_holdout,retain_holdout"]
SAVED_TASK = make_task("restore", noise_std=0.05, downsample=1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    create_model("unet_tiny").save_pretrained(root / "original")
    torch.manual_seed(1)
    create_model("unet_tiny").save_pretrained(root / "run" / "model")  # a run folder holding model/
    torch.manual_seed(2)
    save(create_model("unet_tiny"), root / "with_task", SAVED_TASK)
    broken = create_model("unet_tiny")
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    broken.save_pretrained(root / "nan")
    return root


def test_evaluate_writes_results_and_rescore_reproduces_them_in_place(checkpoints, tmp_path, capsys):
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
    assert read_run(out)["status"] == "complete" and read_run(out)["command"] == "evaluate"
    assert yaml.safe_load((out / "config.yaml").read_text())["ratio"] == 0.25
    before = (out / "metrics.json").read_text()
    (out / "metrics.json").write_text("{}")  # rescoring rewrites it from the saved outputs
    assert main(["--rescore", "--out", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").read_text() == before
    record = read_run(out)
    assert record["status"] == "complete" and "rescored" in record


def test_rescore_refuses_a_directory_that_is_not_a_complete_run(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "evaluation.json").write_text("{}")
    assert main(["--rescore", "--out", str(tmp_path / "old")]) == 2
    assert "--rescore needs a complete evaluate or demo run" in capsys.readouterr().err


def test_task_all_writes_one_folder_per_task(checkpoints, tmp_path):
    out = tmp_path / "all"
    argv = ["--ckpt", f"mine={checkpoints / 'with_task'}", *DATA, "--task", "all", "--out", str(out),
            "--metrics", "psnr,hidden_psnr,face_psnr", "--splits", "forget_holdout,retain_holdout",
            "--no-save-outputs"]
    assert main(argv) == 0
    for folder, hidden in (("restore", False), ("inpaint_0.25", True), ("inpaint_0.5", True), ("outpaint_0.25", True)):
        results = json.loads((out / folder / "metrics.json").read_text())
        assert set(results["mine"]) == {"forget_holdout", "retain_holdout"}
        assert ("hidden_psnr" in results["mine"]["retain_holdout"]) == hidden
        assert "face_psnr" in results["mine"]["forget_holdout"]
    evaluation = json.loads((out / "restore" / "evaluation.json").read_text())
    assert evaluation["info"]["task_settings"] == SAVED_TASK.to_config()  # restoration as the model was trained
    assert json.loads((out / "inpaint_0.5" / "evaluation.json").read_text())["info"]["task_settings"]["ratio"] == 0.5


def task_used(out):
    return json.loads((out / "evaluation.json").read_text())["info"]["task_settings"]


def test_the_checkpoints_saved_task_is_used_unless_told_otherwise(checkpoints, tmp_path, capsys):
    base = ["--ckpt", str(checkpoints / "with_task"), *DATA, *QUICK, "--no-save-outputs"]
    assert main([*base, "--out", str(tmp_path / "saved")]) == 0
    assert task_used(tmp_path / "saved") == SAVED_TASK.to_config()
    assert main([*base, "--task", "restore", "--out", str(tmp_path / "restore")]) == 0
    assert task_used(tmp_path / "restore") == SAVED_TASK.to_config()  # the saved kind keeps its settings
    assert json.loads((tmp_path / "saved" / "metrics.json").read_text()) == json.loads(
        (tmp_path / "restore" / "metrics.json").read_text())
    assert main([*base, "--task", "inpaint", "--out", str(tmp_path / "inpaint")]) == 0
    assert task_used(tmp_path / "inpaint") == make_task("inpaint", ratio=0.25).to_config()
    capsys.readouterr()

    assert main(["--ckpt", str(checkpoints / "original"), *DATA, *QUICK, "--out", str(tmp_path / "x")]) == 2
    assert "no task saved with the checkpoints" in capsys.readouterr().err
    other = tmp_path / "other"
    save(create_model("unet_tiny"), other, make_task("inpaint", ratio=0.5))
    assert main(["--ckpt", f"a={checkpoints / 'with_task'}", "--ckpt", f"b={other}", *DATA, *QUICK, "--out",
                 str(tmp_path / "x")]) == 2
    assert "saved with different tasks" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_output_directory_rule(checkpoints, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--ckpt", str(checkpoints / "run"), *DATA, "--task", "restore", *QUICK, "--out", str(out)]
    assert main(argv) == 0
    stale = out / "outputs" / "gone_model" / "forget_holdout.npz"
    stale.parent.mkdir()
    stale.write_bytes(b"an earlier run's output")
    first = (out / "metrics.json").read_text()
    capsys.readouterr()

    assert main(argv) == 2  # another run's results: refused, untouched
    err = capsys.readouterr().err
    assert "already holds a complete run of `imgunlearn evaluate`" in err and "pass --overwrite" in err
    assert stale.is_file() and (out / "metrics.json").read_text() == first

    assert main([*argv, "--overwrite"]) == 0  # old content removed first: nothing stale survives
    assert not stale.exists() and (out / "metrics.json").is_file()

    # a failed run (a model with NaN outputs) leaves neither a complete-looking directory nor a temporary one
    failed = tmp_path / "failed"
    assert main(["--ckpt", str(checkpoints / "nan"), *DATA, "--task", "restore", *QUICK, "--out", str(failed)]) == 2
    assert not failed.exists() and not list(tmp_path.glob(".failed*"))

    # --out may not be or contain an input
    assert main(["--ckpt", str(checkpoints / "run"), *DATA, "--task", "restore", "--out", str(checkpoints)]) == 2
    assert "contains the input" in capsys.readouterr().err
    assert main(["--ckpt", str(checkpoints / "run"), *DATA, "--task", "restore", "--out", str(checkpoints / "run")]) == 2
    assert "is the input" in capsys.readouterr().err


def test_a_model_with_non_finite_outputs_is_refused_by_name(checkpoints, tmp_path, capsys):
    argv = ["--reference-ckpt", str(checkpoints / "original"), "--ckpt", f"broken={checkpoints / 'nan'}", *DATA,
            "--task", "restore", "--splits", "forget_holdout", "--metrics", "psnr", "--out", str(tmp_path / "e")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "non-finite outputs of broken on forget_holdout: " in err and " NaN" in err
    assert not (tmp_path / "e").exists()


def test_clear_errors(checkpoints, tmp_path, capsys):
    base = ["--ckpt", str(checkpoints / "original"), *DATA, "--task", "restore", "--out", str(tmp_path / "e")]
    assert main(["--ckpt", str(tmp_path / "nowhere"), *base[2:]]) == 2
    assert "no saved model" in capsys.readouterr().err
    assert main([*base, "--feature", "inception"]) == 2
    assert "inception" in capsys.readouterr().err
    assert main([*base, "--metrics", "psnr,sharpness"]) == 2
    assert "unknown metrics" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "e"), "--ckpt", str(checkpoints / "original")]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert main([*base, "--task", "blur"]) == 2
    assert "unknown --task 'blur'" in capsys.readouterr().err
    assert main([*base, "--ratio", "0.3"]) == 2
    assert "--ratio 0.3 does not apply to --task restore" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
