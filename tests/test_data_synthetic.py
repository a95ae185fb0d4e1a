import cv2
import numpy as np
import pytest

from imgunlearn.data import SPLITS, SurveyData, generate_survey, lfw_faces, read_csv, split_face_ids
from imgunlearn.evaluation.faces import FaceDetector

COUNTS = dict(num_forget=12, num_retain=12, num_holdout_forget=6, num_holdout_retain=6)


@pytest.fixture(scope="module")
def survey() -> SurveyData:
    return generate_survey(**COUNTS, size=32, seed=3)


def test_same_seed_same_survey_and_other_seed_differs(survey):
    again = generate_survey(**COUNTS, size=32, seed=3)
    other = generate_survey(**COUNTS, size=32, seed=4)
    for name in SPLITS:
        assert np.array_equal(survey[name].images, again[name].images)
        assert np.array_equal(survey[name].boxes, again[name].boxes)
        assert np.array_equal(survey[name].ids, again[name].ids)
        assert not np.array_equal(survey[name].images, other[name].images)
    assert not np.array_equal(survey.forget_train.boxes, other.forget_train.boxes)


def test_each_split_has_its_own_stream():
    base = generate_survey(**COUNTS, size=16, seed=0)
    more_retain = generate_survey(**{**COUNTS, "num_retain": 30}, size=16, seed=0)
    assert np.array_equal(base.forget_train.images, more_retain.forget_train.images)
    assert np.array_equal(base.retain_holdout.images, more_retain.retain_holdout.images)


@pytest.mark.parametrize("size", [16, 32])
def test_tile_shapes_and_boxes_inside_the_tile(size):
    data = generate_survey(**COUNTS, size=size, seed=1)
    for name, count in zip(SPLITS, COUNTS.values(), strict=True):
        images = data[name]
        assert images.images.shape == (count, 3, size, size) and images.images.dtype == np.uint8
        assert images.size == (size, size)
    for name in ("forget_train", "forget_holdout"):
        top, left, h, w = data[name].boxes.T
        assert (top >= 0).all() and (left >= 0).all() and (top + h <= size).all() and (left + w <= size).all()
        assert (h >= size // 3 - 1).all() and (h <= size // 2 + 1).all() and (h == w).all()
    for name in ("retain_train", "retain_holdout"):
        assert (data[name].boxes == -1).all() and (data[name].ids == -1).all()


def test_box_marks_the_pasted_face(survey):
    """The grey pixels in each box correlate with the resized LFW crop of the recorded face; elsewhere they do not."""
    faces = lfw_faces()
    for tile, (top, left, h, w), face_id in zip(survey.forget_train.images, survey.forget_train.boxes,
                                                survey.forget_train.ids, strict=True):
        grey = tile.astype(np.float64).mean(axis=0)
        crop = cv2.resize(faces[face_id], (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
        assert _best_correlation(grey[top : top + h, left : left + w], crop) > 0.9
        shifted = np.roll(grey, (h // 2, w // 2), axis=(0, 1))[top : top + h, left : left + w]
        assert _best_correlation(shifted, crop) < 0.8


def _best_correlation(patch: np.ndarray, face: np.ndarray) -> float:
    """Pixel correlation of `patch` with `face` or its mirror image (faces are pasted flipped at random)."""
    return max(np.corrcoef(patch.ravel(), f.ravel())[0, 1] for f in (face, face[:, ::-1]))


def test_holdout_faces_are_disjoint_from_training_faces():
    train, holdout = split_face_ids(20, seed=5)
    assert len(train) == 80 and len(holdout) == 20 and not set(train) & set(holdout)
    data = generate_survey(num_forget=40, num_retain=1, num_holdout_forget=20, num_holdout_retain=1, size=16,
                           seed=5, num_holdout_faces=20)
    assert set(data.forget_train.ids) <= set(train)
    assert set(data.forget_holdout.ids) <= set(holdout)
    assert len(set(data.forget_holdout.ids)) == 20  # spread evenly: every held-out face once
    assert split_face_ids(20, seed=6)[1].tolist() != holdout.tolist()


def test_haar_cascade_finds_faces_on_forget_tiles_and_not_on_retain_tiles():
    data = generate_survey(num_forget=40, num_retain=40, num_holdout_forget=0, num_holdout_retain=0, size=64, seed=0)
    detector = FaceDetector()
    forget_hits = [detector.detect(tile) for tile in data.forget_train.images.transpose(0, 2, 3, 1)]
    rate = np.mean([len(h) > 0 for h in forget_hits])
    false_positives = np.mean([len(detector.detect(t)) > 0 for t in data.retain_train.images.transpose(0, 2, 3, 1)])
    assert rate >= 0.85 and false_positives <= 0.05
    # detections sit on the recorded box
    for hits, (top, left, h, w) in zip(forget_hits, data.forget_train.boxes, strict=True):
        for hl, ht, hw, hh in hits:  # (x, y, w, h)
            assert ht < top + h and top < ht + hh and hl < left + w and left < hl + hw


def test_save_and_load_round_trip_in_the_user_csv_format(survey, tmp_path):
    survey.save(tmp_path)
    assert (tmp_path / "forget" / "00000.png").is_file() and (tmp_path / "splits.csv").is_file()
    loaded = SurveyData.load(tmp_path)
    from_csv = read_csv(tmp_path / "splits.csv")
    for name in SPLITS:
        assert np.array_equal(loaded[name].images, survey[name].images)
        assert np.array_equal(loaded[name].boxes, survey[name].boxes)
        assert np.array_equal(loaded[name].ids, survey[name].ids)
        assert np.array_equal(from_csv[name].boxes, survey[name].boxes)


def test_load_without_csv_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="splits.csv"):
        SurveyData.load(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"size": 8}, "size must be >= 16, got 8"), ({"num_forget": -1}, "forget_train tiles must be >= 0, got -1"),
     ({"num_holdout_faces": 100}, "num_holdout_faces must be in 1..99, got 100"), ({"seed": -1}, "seed must be >= 0")],
)
def test_bad_survey_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_survey(**{**COUNTS, **kwargs})
