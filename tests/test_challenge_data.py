"""Synthetic faces, the face-age dataset, the person-disjoint splits and the loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgunlearn.challenge.data import (
    FaceAgeDataset,
    age_bins,
    age_groups,
    make_loaders,
    read_splits,
    split_faces,
)
from imgunlearn.challenge.synthetic_faces import generate_faces


@pytest.fixture(scope="module")
def faces():
    return generate_faces(60, images_per_person=(2, 12), seed=3)


@pytest.fixture(scope="module")
def dataset(faces):
    return FaceAgeDataset.from_faces(faces)


def test_synthetic_faces_are_deterministic_by_seed():
    a, b = generate_faces(12, seed=5), generate_faces(12, seed=5)
    c = generate_faces(12, seed=6)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.ages, b.ages)
    assert np.array_equal(a.person_ids, b.person_ids)
    assert not np.array_equal(a.images[: len(c)], c.images[: len(a)]) or not np.array_equal(a.ages, c.ages)


def test_synthetic_faces_shape_and_variety(faces):
    assert faces.images.shape == (len(faces), 32, 32, 3) and faces.images.dtype == np.uint8
    counts = np.bincount(faces.person_ids)
    assert counts.min() >= 2 and counts.max() <= 12 and len(np.unique(counts)) > 2  # variable images per person
    # the same person's images differ (pose / lighting / expression jitter)
    person = int(np.argmax(counts))
    own = faces.images[faces.person_ids == person].astype(float)
    assert np.abs(own[0] - own[1]).mean() > 1.0
    # skewed towards the young: the two youngest of 10 groups hold more images than the oldest five
    groups = age_groups(faces.ages, age_bins(faces.ages))
    assert (groups <= 1).sum() > (groups >= 5).sum()


def test_generate_faces_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_people"):
        generate_faces(0)
    with pytest.raises(ValueError, match="size"):
        generate_faces(3, size=30)
    with pytest.raises(ValueError, match="images_per_person"):
        generate_faces(3, images_per_person=(5, 2))


def test_age_groups_follow_the_challenge_formula():
    ages = np.array([1, 5, 9, 18, 40, 80])
    bins = age_bins(ages)
    assert np.allclose(bins, np.linspace(1, 81, 11))
    assert age_groups(ages, bins).tolist() == (np.digitize(ages, np.linspace(1, 81, 11)) - 1).tolist()
    assert age_groups(ages, bins).tolist() == [0, 0, 1, 2, 4, 9]


def test_items_are_challenge_shaped(dataset):
    item = dataset[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 32)
    assert item["image"].max() > 1 and torch.equal(item["image"], item["image"].round())  # uint8 values, not scaled
    assert item["age_group"].dtype == torch.int64 and 0 <= item["age_group"] < 10
    assert item["person_id"].dtype == torch.int64


def test_csv_round_trip(tmp_path, faces):
    csv_path = faces.save(tmp_path / "faces")
    loaded = FaceAgeDataset.from_csv(csv_path)
    direct = FaceAgeDataset.from_faces(faces)
    assert torch.equal(loaded.images, direct.images)
    assert np.array_equal(loaded.age_group, direct.age_group)
    assert np.array_equal(loaded.person_ids, direct.person_ids)


def _write_csv(tmp_path, text, image=True):
    if image:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "faces.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("image_id,person_id\na,1\n", ValueError, "'age' column"),
        ("name,age,person_id\na,3,1\n", ValueError, "'image_id' or 'path'"),
        ("image_id,age,person_id\na,three,1\n", ValueError, "'three'"),
        ("image_id,age,person_id\na,3,\n", ValueError, "'person_id'"),
        ("image_id,age,person_id\nmissing,3,1\n", FileNotFoundError, "'missing'"),
        ("path,age,age_group\na.png,3,12\n", ValueError, "age group 12"),
    ],
)
def test_csv_errors_are_named(tmp_path, text, error, message):
    with pytest.raises(error, match=message):
        FaceAgeDataset.from_csv(_write_csv(tmp_path, text))


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    path = _write_csv(tmp_path, "image_id,age,person_id\nbroken,3,1\n", image=False)
    with pytest.raises(ValueError, match="broken.png"):
        FaceAgeDataset.from_csv(path)


def test_missing_csv_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        FaceAgeDataset.from_csv(tmp_path / "nope.csv")


def test_forget_split_is_person_disjoint(dataset):
    splits = split_faces(dataset, forget_people=5, seed=1)
    idx = splits.indices
    forget_people = set(dataset.person_ids[idx["forget"]].tolist())
    assert forget_people == set(splits.forget_people) and len(forget_people) == 5
    for name in ("retain", "val", "test"):
        assert not forget_people & set(dataset.person_ids[idx[name]].tolist()), name
    # every image of a forget person is in the forget set
    assert np.array_equal(np.sort(idx["forget"]), np.flatnonzero(np.isin(dataset.person_ids, list(forget_people))))
    every = np.concatenate([idx["retain"], idx["forget"], idx["val"], idx["test"]])
    assert np.array_equal(np.sort(every), np.arange(len(dataset)))  # a partition
    assert np.array_equal(idx["train"], np.sort(np.concatenate([idx["retain"], idx["forget"]])))
    assert abs(len(idx["val"]) - 0.1 * len(dataset)) <= 1 and abs(len(idx["test"]) - 0.1 * len(dataset)) <= 1


def test_splits_are_deterministic_by_seed(dataset):
    a, b, c = (split_faces(dataset, 5, seed=s) for s in (1, 1, 2))
    for name in a.indices:
        assert np.array_equal(a.indices[name], b.indices[name])
    assert a.forget_people != c.forget_people or not np.array_equal(a.indices["val"], c.indices["val"])


def test_split_errors(dataset):
    people = len(np.unique(dataset.person_ids))
    with pytest.raises(ValueError, match=f"cannot forget {people} people"):
        split_faces(dataset, forget_people=people)
    with pytest.raises(ValueError, match="unknown person 999"):
        split_faces(dataset, forget_people=[0, 999])
    no_ids = FaceAgeDataset(dataset.images, dataset.ages)
    with pytest.raises(ValueError, match="person ids"):
        split_faces(no_ids)


def test_explicit_forget_people(dataset):
    splits = split_faces(dataset, forget_people=[2, 7], seed=0)
    assert set(dataset.person_ids[splits.indices["forget"]].tolist()) == {2, 7}


def test_write_and_read_splits(tmp_path, dataset):
    splits = split_faces(dataset, 4, seed=9)
    splits.write_splits(tmp_path)
    again = read_splits(tmp_path, dataset)
    for name, value in splits.indices.items():
        assert np.array_equal(value, again.indices[name])
    assert again.forget_people == splits.forget_people
    table = (tmp_path / "splits.csv").read_text().splitlines()
    assert table[0].startswith("image_id,person_id,age,age_group,split") and len(table) == len(dataset) + 1
    other = FaceAgeDataset.from_faces(generate_faces(20, seed=1))
    with pytest.raises(ValueError, match="another dataset"):
        read_splits(tmp_path, other)


def test_make_loaders(dataset):
    splits = split_faces(dataset, 4, seed=0)
    loaders = make_loaders(splits, batch_size=16, seed=0)
    assert set(loaders) >= {"retain", "forget", "val", "test"}
    batch = next(iter(loaders["retain"]))
    assert batch["image"].shape == (16, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["age_group"].dtype == torch.int64 and batch["person_id"].shape == (16,)
    test_order = torch.cat([b["age_group"] for b in loaders["test"]])
    assert torch.equal(test_order, torch.as_tensor(dataset.age_group[splits.indices["test"]]))
    again = make_loaders(splits, batch_size=16, seed=0)
    assert torch.equal(next(iter(again["retain"]))["image"], batch["image"])  # shuffled, reproducibly


def _faces_dir(tmp_path, count=4, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def test_one_file_under_two_people_is_refused(tmp_path):
    path = _write_csv(_faces_dir(tmp_path), "path,age,person_id\n0.png,20,1\n1.png,30,1\n0.png,20,2\n2.png,40,2\n",
                      image=False)
    with pytest.raises(ValueError, match=rf"^{path}: image .*0\.png is listed twice, in rows 2 and 4 "
                                         r"\(under person 1 and person 2\)"):
        FaceAgeDataset.from_csv(path)


def test_same_pixels_under_two_people_are_refused(tmp_path):
    _faces_dir(tmp_path)
    (tmp_path / "copy.png").write_bytes((tmp_path / "0.png").read_bytes())
    path = _write_csv(tmp_path, "image_id,age,person_id\n0,20,1\n1,30,1\ncopy,20,2\n2,40,2\n", image=False)
    with pytest.raises(ValueError, match=rf"^{path}: images '0' \(person 1\) and 'copy' \(person 2\) have the same "
                                         "pixels"):
        FaceAgeDataset.from_csv(path)
    images = np.stack([np.asarray(Image.open(tmp_path / f"{i}.png")) for i in (0, 1, 0)])
    with pytest.raises(ValueError, match="have the same pixels"):
        FaceAgeDataset(images, [20, 30, 40], person_ids=["a", "b", "c"])
    same_person = FaceAgeDataset(images, [20, 30, 40], person_ids=["a", "b", "a"])  # a person's duplicate is fine
    assert len(same_person) == 3


def test_fractional_age_groups_are_refused(tmp_path):
    path = _write_csv(tmp_path, "path,age,age_group,person_id\na.png,30,2.7,1\n")
    with pytest.raises(ValueError, match=rf"^{path}: age group 2.7 of image 'a.png' is not a whole number"):
        FaceAgeDataset.from_csv(path)
    path = _write_csv(tmp_path, "path,age,age_group,person_id\na.png,30,two,1\n")
    with pytest.raises(ValueError, match=rf"^{path}: age_group 'two' in row 2 is not a number"):
        FaceAgeDataset.from_csv(path)
    assert FaceAgeDataset.from_csv(_write_csv(tmp_path, "path,age,age_group\na.png,30,2.0\n")).age_group.tolist() == [2]
    with pytest.raises(ValueError, match="age group 0.5 of image '1' is not a whole number"):
        FaceAgeDataset(np.zeros((2, 32, 32, 3), np.uint8), [1, 2], age_group=[1, 0.5])


def test_implausible_ages_are_refused_and_the_range_is_configurable(tmp_path):
    _faces_dir(tmp_path)
    text = "image_id,age,person_id\n0,20,1\n1,-1e9,1\n2,40,2\n3,50,2\n"
    path = _write_csv(tmp_path, text, image=False)
    with pytest.raises(ValueError, match=rf"^{path}: age -1e\+09 of image '1' is outside the plausible range 0..120"):
        FaceAgeDataset.from_csv(path)
    path = _write_csv(tmp_path, text.replace("-1e9", "inf"), image=False)
    with pytest.raises(ValueError, match="age inf of image '1' is outside"):
        FaceAgeDataset.from_csv(path)
    path = _write_csv(tmp_path, text.replace("-1e9", "130"), image=False)
    with pytest.raises(ValueError, match="age 130 of image '1' is outside the plausible range 0..120"):
        FaceAgeDataset.from_csv(path)
    wide = FaceAgeDataset.from_csv(path, age_range=(0, 150))
    assert wide.age_group.tolist() == [0, 9, 1, 2] and wide.age_range == (0.0, 150.0)
    assert wide.subset([0, 2]).age_range == (0.0, 150.0)
    with pytest.raises(ValueError, match=r"age_range \(50, 10\)"):
        FaceAgeDataset.from_csv(path, age_range=(50, 10))


def test_face_csv_encodings_and_16_bit_images(tmp_path):
    values = np.full((32, 32), 32768, np.uint16)
    Image.fromarray(values).save(tmp_path / "g.png")
    path = tmp_path / "faces.csv"
    path.write_bytes("image_id,age,person_id\r\ng,30,1\r\n".encode("utf-8-sig"))
    dataset = FaceAgeDataset.from_csv(path)  # a byte-order mark and a 16-bit grey image
    assert dataset.images.unique().tolist() == [128]  # 32768 / 65535 * 255 = 127.5 -> 128, not clipped to 255
    path.write_bytes("image_id,age,person_id\ng,30,José\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"^{path}: not UTF-8 text \(byte 0xe9 on line 2\)"):
        FaceAgeDataset.from_csv(path)


def test_zero_padded_image_ids_stay_strings(tmp_path):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "007.png")
    dataset = FaceAgeDataset.from_csv(_write_csv(tmp_path, "image_id,age,person_id\n007,30,1\n", image=False))
    assert dataset.image_ids == ["007"]


def test_broken_face_image_is_named(tmp_path):
    _faces_dir(tmp_path, count=1)
    data = bytearray((tmp_path / "0.png").read_bytes())
    data[data.find(b"IDAT") + 6] ^= 0xFF
    (tmp_path / "0.png").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"cannot read image {tmp_path / '0.png'}: "):
        FaceAgeDataset.from_csv(_write_csv(tmp_path, "image_id,age,person_id\n0,3,1\n", image=False))
