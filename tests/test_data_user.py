import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgunlearn.data import SPLITS, ForgetRetainDataModule, make_task, read_csv, read_folder


def write_image(path: Path, size=(16, 16), value: int | None = None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8) if value is None else np.full((*size, 3), value, np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_csv(path: Path, rows: list[str], header: str = "path,split,box") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """Two forget, three retain and one held-out image of each kind, 16x16, all different."""
    for i in range(2):
        write_image(tmp_path / "forget" / f"f{i}.png", seed=i)
    for i in range(3):
        write_image(tmp_path / "retain" / f"r{i}.png", seed=10 + i)
    write_image(tmp_path / "holdout_forget" / "hf.png", seed=20)
    write_image(tmp_path / "holdout_retain" / "hr.png", seed=21)
    return tmp_path


def good_rows() -> list[str]:
    return ['forget/f0.png,forget,"2,3,8,6"', "forget/f1.png,forget,", "retain/r0.png,retain,",
            "retain/r1.png,retain,", "retain/r2.png,retain,", "holdout_forget/hf.png,holdout_forget,\"1,1,4,4\"",
            "holdout_retain/hr.png,holdout_retain,"]


def module(source, **kwargs) -> ForgetRetainDataModule:
    kwargs = {"batch_size": 2, "task": "inpaint", "task_args": {"ratio": 0.25}, **kwargs}
    dm = ForgetRetainDataModule(source=str(source), **kwargs)
    dm.setup("fit")
    return dm


def test_csv_source_reads_splits_boxes_and_ids(data_dir):
    csv = write_csv(data_dir / "list.csv", [r + ",7" if i == 0 else r + "," for i, r in enumerate(good_rows())],
                    header="path,split,box,person_id")
    splits = read_csv(csv)
    assert [len(splits[n]) for n in SPLITS] == [2, 3, 1, 1]
    assert splits["forget_train"].boxes.tolist() == [[2, 3, 8, 6], [-1, -1, -1, -1]]
    assert splits["forget_train"].ids.tolist() == [7, -1]
    dm = module(csv)
    item = dm.split_dataset("forget").__getitem__(0)
    expected = np.zeros((16, 16))
    expected[2:10, 3:9] = 1
    assert np.array_equal(item["forget_mask"][0].numpy(), expected)
    assert dm.split_dataset("forget")[1]["forget_mask"].min() == 1  # no box: the whole image is forgotten
    assert dm.split_dataset("holdout_retain")[0]["forget_mask"].max() == 0
    pixels = np.asarray(Image.open(data_dir / "forget" / "f0.png")).transpose(2, 0, 1) / 255.0
    assert np.allclose(item["image"].numpy(), pixels, atol=1e-6)


def test_folder_source(data_dir):
    splits = read_folder(data_dir)
    assert [Path(p).name for p in splits["retain_train"].names] == ["r0.png", "r1.png", "r2.png"]
    assert (splits["forget_train"].boxes == -1).all()
    batch = next(iter(module(data_dir).train_dataloader()))
    assert batch["forget"]["image"].shape == (2, 3, 16, 16)


def test_proxy_retain_replaces_the_retain_side_of_training(data_dir, tmp_path_factory):
    proxy = tmp_path_factory.mktemp("proxy")
    proxy_pixels = [write_image(proxy / f"p{i}.png", value=40 * i + 20) for i in range(3)]
    dm = module(data_dir, proxy_retain=str(proxy))
    seen = set()
    for batch in dm.train_dataloader():
        for image, index in zip(batch["retain"]["image"], batch["retain"]["index"], strict=True):
            assert np.allclose(image.numpy(), (40 * int(index) + 20) / 255.0, atol=1e-6)  # the proxy image
            seen.add(int(index))
        assert batch["retain"]["forget_mask"].max() == 0
    assert seen and seen <= {0, 1, 2} and len(proxy_pixels) == 3
    table = (dm.write_splits(tmp_path_factory.mktemp("run"))[0]).read_text()
    assert table.count("proxy_retain,") == 3


def test_proxy_retain_allows_an_absent_retain_set(data_dir, tmp_path_factory):
    shutil.rmtree(data_dir / "retain")
    with pytest.raises(ValueError, match="retain set is empty"):
        module(data_dir)
    proxy = tmp_path_factory.mktemp("proxy")
    write_image(proxy / "p.png", seed=99)
    batch = next(iter(module(data_dir, proxy_retain=str(proxy)).train_dataloader()))
    assert batch["retain"]["image"].shape == (2, 3, 16, 16)


def test_mixed_sizes_are_refused_unless_resized(tmp_path):
    write_image(tmp_path / "a.png", size=(32, 32), seed=1)
    write_image(tmp_path / "b.png", size=(16, 24), seed=2)
    write_image(tmp_path / "c.png", size=(16, 16), seed=3)
    within = write_csv(tmp_path / "within.csv", ['a.png,forget,"8,8,16,8"', "c.png,forget,", "b.png,retain,"])
    with pytest.raises(ValueError, match=r"forget images have mixed sizes .*a\.png is 32x32.*set resize"):
        read_csv(within)
    across = write_csv(tmp_path / "across.csv", ['a.png,forget,"8,8,16,8"', "b.png,retain,"])
    with pytest.raises(ValueError, match=r"retain images are 16x24 \(.*b\.png\) but forget images are 32x32"):
        module(across)
    splits = read_csv(within, resize=16)
    assert splits["forget_train"].boxes.tolist() == [[4, 4, 8, 4], [-1, -1, -1, -1]]
    assert splits["retain_train"].image(0).shape == (3, 16, 16)
    dm = module(within, resize=16)
    assert dm.split_dataset("retain")[0]["image"].shape == (3, 16, 16)
    assert dm.split_dataset("forget")[0]["forget_mask"][0, 4:12, 4:8].min() == 1
    assert dm.split_dataset("forget")[0]["forget_mask"].sum() == 8 * 4


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["forget/f0.png,forget,", "retain/r0.png,retian,"], "line 3: unknown split 'retian'"),
        (['forget/f0.png,forget,"1,2,3"', "retain/r0.png,retain,"], "line 2: malformed box '1,2,3'"),
        (['forget/f0.png,forget,"1,2,a,4"', "retain/r0.png,retain,"], "malformed box '1,2,a,4'"),
        (['forget/f0.png,forget,"10,10,8,8"', "retain/r0.png,retain,"],
         r"box \(top=10, left=10, height=8, width=8\) of .*f0\.png is outside its 16x16 image"),
        (["forget/f0.png,forget,", 'retain/r0.png,retain,"1,1,2,2"'], "box '1,1,2,2' given for a retain image"),
        (["forget/f0.png,forget,", "retain/r0.png,retain,", "forget/f0.png,retain,"],
         r"f0\.png is in both forget and retain"),
        (["forget/f0.png,forget,", "forget/f0.png,forget,", "retain/r0.png,retain,"], r"f0\.png is listed twice"),
        (["retain/r0.png,retain,"], "the forget set is empty"),
        (["forget/f0.png,forget,"], "the retain set is empty"),
        (["forget/f0.png,forget,", "retain/r0.png,retain,", "forget/f0.png,holdout_forget,"],
         r"f0\.png is in both forget and holdout_forget"),
    ],
)
def test_csv_errors_name_the_bad_value(data_dir, rows, message):
    csv = write_csv(data_dir / "list.csv", rows)
    with pytest.raises(ValueError, match=message):
        module(csv)


def test_missing_and_unreadable_images_are_named(data_dir):
    csv = write_csv(data_dir / "list.csv", ["forget/nope.png,forget,", "retain/r0.png,retain,"])
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*nope\.png"):
        module(csv)
    (data_dir / "forget" / "bad.png").write_bytes(b"not an image at all")
    csv = write_csv(data_dir / "list.csv", ["forget/bad.png,forget,", "retain/r0.png,retain,"])
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png"):
        module(csv)


def test_same_content_in_forget_and_retain_is_refused(data_dir):
    shutil.copy(data_dir / "forget" / "f0.png", data_dir / "retain" / "copy.png")
    with pytest.raises(ValueError, match=r"same image is a forget image .*f0\.png.*retain image .*copy\.png"):
        module(data_dir)


def test_images_smaller_than_the_task_mask_are_refused(tmp_path):
    write_image(tmp_path / "forget" / "f.png", size=(2, 2), seed=1)
    write_image(tmp_path / "retain" / "r.png", size=(2, 2), seed=2)
    with pytest.raises(ValueError, match=r"images of 2x2 \(e\.g\. .*\) are too small for the outpaint task"):
        ForgetRetainDataModule(source=str(tmp_path), task=make_task("outpaint", ratio=0.4)).setup()


def test_csv_with_unknown_columns_and_bad_folders(data_dir, tmp_path):
    csv = write_csv(data_dir / "list.csv", ["forget/f0.png,forget,,x"], header="path,split,box,bbox")
    with pytest.raises(ValueError, match=r"unknown: \['bbox'\]"):
        read_csv(csv)
    (data_dir / "holdout").mkdir()
    with pytest.raises(ValueError, match=r"unknown split folders \['holdout'\]"):
        read_folder(data_dir)
    with pytest.raises(FileNotFoundError, match="has no 'forget' folder"):
        read_folder(data_dir / "retain")
    with pytest.raises(FileNotFoundError, match="data source not found: .*missing.csv"):
        ForgetRetainDataModule(source=str(tmp_path / "missing.csv"))
