"""The evaluation runner: generation, saved outputs, rescoring, tables, pictures and the report."""

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from skimage.data import lfw_subset
from torch import nn

from imgunlearn.data.tasks import make_task
from imgunlearn.evaluation import compute_metrics, evaluate_models, evaluate_saved, generate
from imgunlearn.models import create_model

SIZE = 32
SPLITS = ("forget_train", "forget_holdout", "retain_train", "retain_holdout")


class TileSplit(torch.utils.data.Dataset):
    """Smooth random tiles; forget tiles carry an LFW face in a 16 px box at (8, 8)."""

    def __init__(self, n, forget, seed, task="inpaint"):
        g = torch.Generator().manual_seed(seed)
        image = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(SIZE, SIZE), mode="bilinear",
                              align_corners=False)
        forget_mask = torch.zeros(n, 1, SIZE, SIZE)
        if forget:
            faces = torch.tensor(lfw_subset()[seed * n:(seed + 1) * n], dtype=torch.float32)[:, None]
            faces = F.interpolate(faces, size=(16, 16), mode="bicubic", align_corners=False).clamp(0, 1)
            image[:, :, 8:24, 8:24] = faces
            forget_mask[:, :, 8:24, 8:24] = 1
        self.image, self.forget_mask = image, forget_mask
        self.input, self.mask = make_task(task, ratio=0.25)(image, g)

    def __len__(self):
        return len(self.image)

    def __getitem__(self, i):
        return {"image": self.image[i], "input": self.input[i], "mask": self.mask[i], "forget_mask": self.forget_mask[i],
                "index": i}


class Passthrough(nn.Module):
    """Returns its input unchanged: its scores must equal the `input` reference row."""

    def forward(self, model_input, mask):
        return model_input


class Grey(nn.Module):
    def forward(self, model_input, mask):
        return torch.full_like(model_input, 0.5)


def datasets(n=5, task="inpaint"):
    return {s: TileSplit(n, s.startswith("forget"), seed, task) for seed, s in enumerate(SPLITS)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    models = {"original": create_model("unet_tiny"), "unlearned": Passthrough(), "grey": Grey()}
    results = evaluate_models(models, datasets(), batch_size=2, output_dir=out, progress=False,
                              info={"task": "inpaint 1/4"})
    return out, results


def test_metrics_json_has_required_keys(run):
    out, results = run
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved) == {"original", "unlearned", "grey", "input", "ground_truth"}
    for model in ("original", "unlearned"):
        assert set(saved[model]) == set(SPLITS)
        for split in SPLITS:
            metrics = saved[model][split]
            for key in ("psnr", "ssim", "mse", "face_detect_rate", "fid", "kid", "embedding_cosine", "hidden_psnr"):
                assert isinstance(metrics[key], float), (model, split, key)
            assert ("face_psnr" in metrics) == split.startswith("forget")
    assert "psnr" not in saved["ground_truth"]["forget_holdout"]  # nothing to compare the truth with
    assert saved["ground_truth"]["forget_holdout"]["face_detect_rate"] > 0  # the LFW faces are found


def test_scores_follow_the_outputs(run):
    _, results = run
    for split in SPLITS:  # a model that returns its input scores exactly like the input reference row
        for key, val in results["input"][split].items():
            assert results["unlearned"][split][key] == pytest.approx(val, rel=1e-9, abs=1e-12), (split, key)
    data = datasets()["retain_holdout"]
    truth = (data.image * 255).round() / 255
    expected = torch.stack([-10 * torch.log10(((truth[i] - 128 / 255) ** 2).mean()) for i in range(len(data))]).mean()
    assert results["grey"]["retain_holdout"]["psnr"] == pytest.approx(expected.item(), rel=1e-5)


def test_evaluate_saved_reproduces_metrics(run, tmp_path):
    out, results = run
    before = (out / "metrics.json").read_text()
    again = evaluate_saved(out, progress=False)
    assert again == results
    assert (out / "metrics.json").read_text() == before


def test_tables_pictures_and_report(run):
    out, results = run
    with open(out / "metrics.csv") as f:
        rows = {(r["split"], r["metric"]): r for r in csv.DictReader(f)}
    row = rows[("forget_holdout", "face_psnr")]
    assert row["goal"] == "lower"
    assert float(row["delta_unlearned"]) == pytest.approx(float(row["unlearned"]) - float(row["original"]))
    assert rows[("retain_holdout", "psnr")]["goal"] == "higher"
    table = (out / "metrics.md").read_text()
    assert "Δ unlearned" in table and "### retain_holdout" in table
    for picture in ("grid.png", "tradeoff.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for needle in ("grid.png", "tradeoff.png", "## What each number means", "PSNR, face box", "inpaint 1/4"):
        assert needle in report
    assert (out / "outputs" / "unlearned" / "forget_holdout.npz").is_file()


@pytest.mark.parametrize("task", ["restore", "outpaint"])
def test_other_tasks_and_no_saving(task, tmp_path):
    results = evaluate_models({"original": Passthrough()}, {"retain_holdout": TileSplit(3, False, 0, task)},
                              metrics=["psnr", "hidden_psnr", "ssim", "hidden_ssim"], output_dir=tmp_path,
                              save_outputs=False, report=False, progress=False)
    metrics = results["original"]["retain_holdout"]
    assert ("hidden_psnr" in metrics) == (task == "outpaint")  # restore without holes hides nothing
    assert not (tmp_path / "outputs").exists()
    with pytest.raises(ValueError, match="save_outputs=False"):
        evaluate_saved(tmp_path, progress=False)


def test_generate_returns_uint8_and_keeps_model_mode():
    model = create_model("unet_tiny").train()
    data, outputs = generate({"m": model}, {"retain_holdout": TileSplit(3, False, 0)}, batch_size=2, progress=False)
    assert model.training
    assert outputs["m"]["retain_holdout"].dtype == torch.uint8
    assert outputs["m"]["retain_holdout"].shape == (3, 3, SIZE, SIZE)
    assert data["retain_holdout"]["index"].tolist() == [0, 1, 2]
    results = compute_metrics(data, outputs, metrics=["psnr", "face_detect_rate"], feature=None, progress=False)
    assert not math.isnan(results["m"]["retain_holdout"]["psnr"])


def test_bad_arguments_raise_clear_errors(tmp_path):
    ds = {"retain_holdout": TileSplit(2, False, 0)}
    with pytest.raises(ValueError, match="invalid model or split name 'input'"):
        evaluate_models({"input": Grey()}, ds, progress=False)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_models({"m": Grey()}, ds, metrics=["psnr", "sharpness"], progress=False)

    class Shrink(nn.Module):
        def forward(self, x, mask):
            return x[..., :8, :8]

    with pytest.raises(ValueError, match="returned"):
        evaluate_models({"m": Shrink()}, ds, progress=False)

    class NoMask(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"image": torch.zeros(3, SIZE, SIZE), "input": torch.zeros(3, SIZE, SIZE)}

    with pytest.raises(ValueError, match="no 'mask'"):
        evaluate_models({"m": Grey()}, {"retain_holdout": NoMask()}, progress=False)
    with pytest.raises(ValueError, match="unknown feature"):
        evaluate_models({"m": Grey()}, ds, feature="incepton", progress=False)


def test_user_module_feature_must_be_passed_again(tmp_path):
    class Pool(nn.Module):
        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 2).flatten(1)

    ds = {"retain_holdout": TileSplit(3, False, 0)}
    first = evaluate_models({"m": Grey()}, ds, metrics=["fid"], feature=Pool(), output_dir=tmp_path, report=False,
                            progress=False)
    with pytest.raises(ValueError, match="pass it again"):
        evaluate_saved(tmp_path, progress=False)
    again = evaluate_saved(tmp_path, feature=Pool(), report=False, progress=False)
    assert again == first


def test_report_describes_a_task_config(tmp_path):
    task = make_task("outpaint", ratio=0.25)
    evaluate_models({"original": Passthrough()}, {"forget_holdout": TileSplit(3, True, 0, "outpaint")},
                    metrics=["psnr", "face_psnr"], output_dir=tmp_path, info={"task": task.to_config()},
                    progress=False)
    report = (tmp_path / "report.md").read_text()
    assert "outpainting: borders of width 0.25 of the side are hidden" in report
    assert not (tmp_path / "tradeoff.png").exists()  # no retain split: nothing to plot against
