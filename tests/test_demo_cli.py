"""End to end at tiny size: the demo command, the Python API round trip and the LightningCLI commands."""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

import imgunlearn
from imgunlearn.api import load_task, save
from imgunlearn.cli import main
from imgunlearn.data.tasks import make_task
from imgunlearn.models import create_model
from imgunlearn.runs import read_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["--size", "16", "--num-forget", "6", "--num-retain", "8", "--num-holdout", "4", "--model", "unet_tiny",
        "--pretrain-steps", "3", "--unlearn-steps", "2", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--out", str(out), "--method", "noisy_label,encoder_teacher", "--retrain_reference",
                 *TINY]) == 0
    return out


def test_demo_writes_models_metrics_and_grid(demo_run, tmp_path):
    out = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    for row in ("original", "unlearned", "encoder_teacher", "retrain"):
        for split in ("forget_train", "forget_holdout", "retain_holdout"):
            assert {"psnr", "ssim", "mse", "face_detect_rate"} <= set(metrics[row][split])
        assert "face_psnr" in metrics[row]["forget_holdout"]
    assert (out / "grid.png").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "| noisy_label |" in summary and "| encoder_teacher |" in summary and "| retrain (retain set only) |" in summary
    original, unlearned = imgunlearn.load_model(out / "original"), imgunlearn.load_model(out / "unlearned")
    assert not all(torch.equal(a, b) for a, b in zip(original.parameters(), unlearned.parameters(), strict=True))
    retrained = imgunlearn.load_model(out / "retrain")
    assert retrained.config == original.config
    assert not any(torch.equal(a, b) for a, b in zip(original.parameters(), retrained.parameters(), strict=True))
    task = load_task(out / "unlearned")
    image = torch.rand(2, 3, 16, 16)
    model_input, mask = task(image, torch.Generator().manual_seed(0))
    assert unlearned(model_input, mask).shape == (2, 3, 16, 16)
    demo = json.loads((out / "demo.json").read_text())
    assert demo["timings"]["pretrain_s"] > 0 and demo["methods"] == ["noisy_label", "encoder_teacher"]
    assert demo["timings"]["retrain_s"] > 0 and demo["retrain_reference"] is True
    assert demo["method_args"]["noisy_label"]["forget_target"] == "flat"  # the class's own (measured) defaults
    assert read_run(out)["status"] == "complete" and read_run(out)["command"] == "demo"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["num_forget"] == 6 and config["method"] == "noisy_label,encoder_teacher"

    # a second run reuses the saved original instead of pretraining again; config.yaml composes with --config
    again = tmp_path / "again"
    assert main(["demo", "--config", str(out / "config.yaml"), "--out", str(again), "--method", "finetune",
                 "--original", str(out / "original"), "--no-progress"]) == 0
    reused = imgunlearn.load_model(again / "original")
    assert all(torch.equal(a, b) for a, b in zip(original.parameters(), reused.parameters(), strict=True))
    assert json.loads((again / "demo.json").read_text())["timings"]["pretrain_s"] == demo["timings"]["pretrain_s"]
    assert "retrain" in json.loads((again / "metrics.json").read_text())  # asked for in the composed config.yaml


def test_demo_reuses_a_saved_retrain_reference_of_the_originals_architecture(demo_run, tmp_path, capsys):
    reused = tmp_path / "reused"
    assert main(["demo", "--out", str(reused), "--method", "finetune", "--original", str(demo_run / "original"),
                 "--retrain", str(demo_run / "retrain"), *TINY]) == 0
    saved, again = (imgunlearn.load_model(d / "retrain") for d in (demo_run, reused))
    assert all(torch.equal(a, b) for a, b in zip(saved.parameters(), again.parameters(), strict=True))
    assert "retrain" in json.loads((reused / "metrics.json").read_text())
    reused_demo, saved_demo = (json.loads((d / "demo.json").read_text()) for d in (reused, demo_run))
    assert reused_demo["retrain_reference"] is True
    assert reused_demo["timings"]["retrain_s"] == saved_demo["timings"]["retrain_s"]  # not the original's time
    other = tmp_path / "other"
    save(create_model("unet_tiny", channels=[4, 8]), other, load_task(demo_run / "original"))
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path / "refused"), "--method", "finetune", "--original",
                 str(demo_run / "original"), "--retrain", str(other), *TINY]) == 2
    assert re.search(r"the retrain reference .*other is a .*\[4, 8\].*the original a", capsys.readouterr().err)
    assert not (tmp_path / "refused" / "metrics.json").exists()


def test_demo_method_args_replace_a_methods_defaults(demo_run, tmp_path):
    from imgunlearn.demo import run_demo

    # 6 steps: at the first the student equals its reference, so the retain term has no gradient yet
    settings = dict(size=16, num_forget=6, num_retain=8, num_holdout=4, model="unet_tiny", unlearn_steps=6,
                    batch_size=4, original=str(demo_run / "original"), progress=False)
    run_demo(tmp_path / "default", ("encoder_teacher",), **settings)
    out = tmp_path / "alpha"
    run_demo(out, ("encoder_teacher",), method_args={"encoder_teacher": {"retain_alpha": 7.0}}, **settings)
    recorded = json.loads((out / "demo.json").read_text())["method_args"]["encoder_teacher"]
    assert recorded["retain_alpha"] == 7.0 and recorded["lr"] == 1e-3  # the rest stay the defaults
    assert yaml.safe_load((out / "config.yaml").read_text())["method_args"] == {"encoder_teacher": {"retain_alpha": 7.0}}
    default, changed = (imgunlearn.load_model(d / "unlearned") for d in (tmp_path / "default", out))
    assert not all(torch.equal(a, b) for a, b in zip(default.parameters(), changed.parameters(), strict=True))
    with pytest.raises(ValueError, match=r"method_args names methods the demo does not run: \['noisy_label'\]"):
        run_demo(tmp_path / "refused", ("encoder_teacher",), method_args={"noisy_label": {}}, **settings)


def test_evaluate_reproduces_the_demos_face_box_psnr(demo_run, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--reference-ckpt", str(demo_run / "original"), "--ckpt",
                 f"unlearned={demo_run / 'unlearned'}", "--data", "synthetic", "--task", "restore", "--out", str(out),
                 "--quiet"]) == 0
    demo, evaluated = (json.loads((d / "metrics.json").read_text()) for d in (demo_run, out))
    for row in ("original", "unlearned"):
        for split in ("forget_train", "forget_holdout", "retain_holdout"):
            for key in ("face_psnr", "psnr"):
                if key in demo[row][split]:
                    assert evaluated[row][split][key] == pytest.approx(demo[row][split][key], abs=1e-9), (row, split)


def test_demo_output_directory_rule(demo_run, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--method", "finetune", *TINY]) == 0
    stale = out / "methods" / "noisy_label"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    first = (out / "metrics.json").read_text()
    assert "retrain" not in json.loads(first)  # the retrain reference only when asked
    capsys.readouterr()

    assert main(["demo", "--out", str(out), "--method", "finetune", *TINY]) == 2  # refused, untouched
    err = capsys.readouterr().err
    assert "already holds a complete run of `imgunlearn demo`" in err and "--overwrite" in err
    assert stale.is_dir() and (out / "metrics.json").read_text() == first

    assert main(["demo", "--out", str(out), "--method", "finetune", "--overwrite", *TINY]) == 0
    assert not stale.exists() and read_run(out)["status"] == "complete"

    # a rerun that fails (here: an original trained for another task) leaves nothing that looks complete
    other_task = tmp_path / "other_original"
    save(create_model("unet_tiny"), other_task, make_task("inpaint", ratio=0.25))
    assert main(["demo", "--out", str(out), "--overwrite", "--original", str(other_task), *TINY]) == 2
    assert "was trained for task" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".demo.*"))

    # --out may not be or contain the original it reuses
    assert main(["demo", "--out", str(demo_run), "--overwrite", "--original", str(demo_run / "original"), *TINY]) == 2
    assert "contains the input" in capsys.readouterr().err
    assert (demo_run / "original" / "config.json").is_file()


def test_demo_rejects_unknown_method_before_any_work(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "x"), "--method", "forget_all", *TINY]) == 2
    assert "unknown method 'forget_all'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_demo_takes_a_family_name_and_rejects_unknown_models(tmp_path):
    from imgunlearn.demo import run_demo

    with pytest.raises(ValueError, match="unknown model 'gan'"):
        run_demo(tmp_path / "x", model="gan")
    args = [a for a in TINY if a not in ("--model", "unet_tiny")]
    assert main(["demo", "--out", str(tmp_path / "mae"), "--model", "mae", "--method", "finetune", *args]) == 0
    assert imgunlearn.load_model(tmp_path / "mae" / "original").config["name"] == "mae_small"


def test_save_keeps_the_task_beside_the_model(tmp_path):
    task = make_task("inpaint", ratio=0.25)
    save(create_model("unet_tiny"), tmp_path / "m", task)
    assert load_task(tmp_path / "m") == task
    with pytest.raises(FileNotFoundError, match="task.json is missing"):
        load_task(tmp_path)


def test_lightning_cli_pretrain_then_unlearn_saves_models_and_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = ["--config", f"{CONFIGS}/data/synthetic.yaml", "--data.init_args.size", "16",
            "--data.init_args.num_forget", "4", "--data.init_args.num_retain", "4",
            "--data.init_args.num_holdout_forget", "2", "--data.init_args.num_holdout_retain", "2",
            "--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
            "--out", "run"]
    main(["pretrain", "--config", f"{CONFIGS}/experiment/pretrain.yaml", "--config", f"{CONFIGS}/model/unet_small.yaml",
          "--model.init_args.model.init_args.channels", "[8, 16]", *data])
    pretrained = tmp_path / "run" / "model"
    assert imgunlearn.load_model(pretrained).config["channels"] == [8, 16]
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "splits.csv").is_file()
    data[-1] = "run2"
    main(["unlearn", "--config", f"{CONFIGS}/method/encoder_teacher.yaml", "--model.init_args.model", str(pretrained),
          *data])
    unlearned = imgunlearn.load_model(tmp_path / "run2" / "model")
    before = imgunlearn.load_model(pretrained)
    for a, b in zip(before.decoder_parameters(), unlearned.decoder_parameters(), strict=True):
        assert torch.equal(a, b)
    assert "EncoderTeacher" in (tmp_path / "run2" / "config.yaml").read_text()


@pytest.mark.parametrize("command", ["demo", "evaluate"])
def test_print_config_and_dashed_aliases(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--batch-size", "3", "--out", "somewhere", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["batch_size"] == 3 and printed["out"] == "somewhere" and printed["overwrite"] is False


def test_demo_headline_figures_point_the_right_way(tmp_path):
    """A shortened demo (48 px, tiny U-Net, a tenth of the steps): the figures move the way the full demo's do
    (face box -12.65 dB, detections 95% -> 2%, retain -0.41 dB), if by less."""
    out = tmp_path / "short"
    assert main(["demo", "--out", str(out), "--size", "48", "--num-forget", "16", "--num-retain", "32",
                 "--num-holdout", "16", "--model", "unet_tiny", "--pretrain-steps", "150", "--unlearn-steps", "60",
                 "--batch-size", "8", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    original, unlearned = metrics["original"], metrics["unlearned"]
    for split in ("forget_train", "forget_holdout"):
        drop = original[split]["face_psnr"] - unlearned[split]["face_psnr"]
        assert 0.3 < drop < 15, f"{split}: face-box PSNR dropped by {drop:.2f} dB"
    assert original["forget_train"]["face_detect_rate"] >= 0.25, "the original restores faces the detector finds"
    assert unlearned["forget_train"]["face_detect_rate"] < original["forget_train"]["face_detect_rate"]
    assert unlearned["forget_holdout"]["face_detect_rate"] <= original["forget_holdout"]["face_detect_rate"]
    # the short original is undertrained, so the retain term may still improve it; it must not damage it
    retain_change = unlearned["retain_holdout"]["psnr"] - original["retain_holdout"]["psnr"]
    assert -1.0 < retain_change < 3.0, f"retain PSNR changed by {retain_change:+.2f} dB"
