import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from imgunlearn.data import SPLITS, ForgetRetainDataModule, PairedSampler, Task, make_task, task_from_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"
SMALL = dict(num_forget=6, num_retain=10, num_holdout_forget=3, num_holdout_retain=3)


def datamodule(size=32, **kwargs) -> ForgetRetainDataModule:
    return ForgetRetainDataModule(**{"size": size, "batch_size": 4, "seed": 1, **SMALL, **kwargs})


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("task", ["restore", "inpaint", "outpaint", "hybrid"])
def test_paired_batches_have_the_item_contract(size, task):
    dm = datamodule(size, task=task, task_args={"ratio": 0.25})
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"forget", "retain"}
    for side in batch.values():
        assert set(side) == {"image", "input", "mask", "forget_mask", "index"}
        assert side["image"].shape == side["input"].shape == (4, 3, size, size)
        assert side["mask"].shape == side["forget_mask"].shape == (4, 1, size, size)
        assert side["image"].min() >= 0 and side["image"].max() <= 1
        assert set(side["mask"].unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(side["input"] * side["mask"], torch.zeros_like(side["input"]))  # hidden pixels are zero
    assert batch["retain"]["forget_mask"].max() == 0
    boxes = dm.splits["forget_train"].boxes[batch["forget"]["index"].numpy()]
    for region, (top, left, h, w) in zip(batch["forget"]["forget_mask"], boxes, strict=True):
        assert region.sum() == h * w and region[0, top : top + h, left : left + w].min() == 1


def test_one_epoch_is_one_pass_over_forget_with_retain_matched():
    dm = datamodule(num_forget=10, num_retain=4)
    batches = list(dm.train_dataloader())
    assert [len(b["forget"]["index"]) for b in batches] == [4, 4, 2]
    forget = torch.cat([b["forget"]["index"] for b in batches]).tolist()
    retain = torch.cat([b["retain"]["index"] for b in batches]).tolist()
    assert sorted(forget) == list(range(10))
    assert max(Counter(retain).values()) - min(Counter(retain).values()) <= 1 and set(retain) == set(range(4))


def test_training_is_reproducible_and_fresh_each_epoch():
    first, second = datamodule().train_dataloader(), datamodule().train_dataloader()
    epoch0 = [b["forget"]["input"] for b in first]
    assert all(torch.equal(a, b["forget"]["input"]) for a, b in zip(epoch0, second, strict=True))
    epoch1 = [b["forget"]["input"] for b in first]  # the sampler moves to the next epoch
    assert not torch.equal(torch.cat(epoch0), torch.cat(epoch1))
    first.batch_sampler.set_epoch(0)
    assert all(torch.equal(a, b["forget"]["input"]) for a, b in zip(epoch0, first, strict=True))
    other_seed = datamodule(seed=2).train_dataloader()
    assert not torch.equal(torch.cat(epoch0), torch.cat([b["forget"]["input"] for b in other_seed]))


def test_training_draws_do_not_depend_on_the_number_of_workers():
    single = [b["forget"]["input"] for b in datamodule(size=16).train_dataloader()]
    workers = [b["forget"]["input"] for b in datamodule(size=16, num_workers=2).train_dataloader()]
    assert len(single) == 2 and all(torch.equal(a, b) for a, b in zip(single, workers, strict=True))


def test_split_dataset_is_fixed_and_training_draws_are_fresh():
    dm = datamodule()
    fixed = dm.split_dataset("forget_holdout")
    assert torch.equal(fixed[1]["input"], fixed[1]["input"])
    assert torch.equal(fixed[1]["input"], datamodule().split_dataset("holdout_forget")[1]["input"])
    fresh = dm.split_dataset("forget_holdout", fixed=False)
    assert not torch.equal(fresh[1]["input"], fresh[1]["input"])
    assert torch.equal(fresh[(1, 5)]["input"], fresh[(1, 5)]["input"])  # a given draw seed is reproducible
    with pytest.raises(IndexError, match="index 3 out of range"):
        fixed[3]
    with pytest.raises(ValueError, match="unknown split 'forgotten'"):
        dm.split_dataset("forgotten")


def test_pretrain_loader_covers_the_training_splits_once_per_epoch():
    dm = datamodule()
    batches = list(dm.pretrain_dataloader())
    indices = torch.cat([b["index"] for b in batches]).tolist()
    assert sorted(indices) == list(range(16))
    regions = torch.cat([b["forget_mask"] for b in batches]).flatten(1).amax(dim=1)
    assert int(regions.sum()) == 6  # the six forget tiles carry a region, the ten retain tiles none


def test_write_splits_records_lists_task_and_settings(tmp_path):
    dm = datamodule(task="inpaint", task_args={"ratio": 0.25})
    files = dm.write_splits(tmp_path / "run")
    assert [f.name for f in files] == ["splits.csv", "task.json", "data.json"]
    rows = list(csv.DictReader((tmp_path / "run" / "splits.csv").open()))
    assert Counter(r["split"] for r in rows) == {"forget_train": 6, "retain_train": 10, "forget_holdout": 3,
                                                 "retain_holdout": 3}
    assert all(r["box"] for r in rows if r["split"].startswith("forget"))
    assert not any(r["box"] for r in rows if r["split"].startswith("retain"))
    assert task_from_config(json.loads(files[1].read_text())) == dm.task
    settings = json.loads(files[2].read_text())
    assert settings["seed"] == 1 and settings["image_size"] == [32, 32] and settings["counts"]["forget_train"] == 6
    assert not list((tmp_path / "run").glob("*.tmp"))
    again = datamodule(task="inpaint", task_args={"ratio": 0.25}).write_splits(tmp_path / "again")
    assert again[0].read_text() == files[0].read_text()  # splits are deterministic from the seed


def test_task_given_as_object_or_name():
    task = make_task("outpaint", ratio=0.25)
    assert datamodule(task=task).task is task
    assert datamodule(task="inpaint", task_args={"ratio": 0.25}).task == Task("inpaint", ratio=0.25)
    with pytest.raises(ValueError, match="task_args"):
        datamodule(task=task, task_args={"ratio": 0.5})
    with pytest.raises(ValueError, match="unknown task 'paint'"):
        datamodule(task="paint")


def test_paired_sampler_needs_both_sides():
    with pytest.raises(ValueError, match="got 0 and 3"):
        PairedSampler(0, 3)


def test_yaml_configs_build_the_datamodule(tmp_path):
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning import LightningDataModule

    parser = ArgumentParser()
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(LightningDataModule, "data")
    cfg = parser.parse_args(["--config", str(CONFIGS / "synthetic.yaml"), "--data.init_args.num_forget=2",
                             "--data.init_args.num_retain=2", "--data.init_args.size=16"])
    dm = parser.instantiate_classes(cfg).data
    assert isinstance(dm, ForgetRetainDataModule) and dm.task.name == "restore"
    assert [len(dm.splits[n]) for n in SPLITS] == [2, 2, 100, 100]

    from imgunlearn.data import generate_survey

    generate_survey(2, 2, 1, 1, size=16, seed=0).save(tmp_path / "survey")
    cfg = parser.parse_args(["--config", str(CONFIGS / "csv_example.yaml"),
                             f"--data.init_args.source={tmp_path / 'survey' / 'splits.csv'}"])
    dm = parser.instantiate_classes(cfg).data
    assert dm.task == Task("inpaint", ratio=0.25) and len(dm.splits["forget_train"]) == 2
