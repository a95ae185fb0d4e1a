"""Face detection and FaceLeakRate on real face crops from scikit-image's bundled LFW subset."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.data import lfw_subset

from imgunlearn.evaluation.faces import FaceDetector, box_overlap
from imgunlearn.metrics import FaceLeakRate


@pytest.fixture(scope="module")
def face_tiles():
    """Two 64×64 RGB tiles, each holding an LFW face upscaled to 32 px at (16, 16), and a flat tile."""
    faces = torch.tensor(lfw_subset()[:2], dtype=torch.float32)[:, None]  # [2, 1, 25, 25]
    faces = F.interpolate(faces, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    tiles = torch.full((3, 3, 64, 64), 0.45)
    tiles[:2, :, 16:48, 16:48] = faces.expand(-1, 3, -1, -1)
    forget_mask = torch.zeros(3, 1, 64, 64)
    forget_mask[:2, :, 16:48, 16:48] = 1
    return tiles, forget_mask


def test_detector_finds_the_face_and_nothing_on_a_flat_tile(face_tiles):
    tiles, _ = face_tiles
    detector = FaceDetector()
    for tile in tiles[:2]:
        boxes = detector.detect(tile)
        assert len(boxes) >= 1
        x, y, w, h = boxes[0]
        assert 8 <= x + w / 2 <= 56 and 8 <= y + h / 2 <= 56 and 12 <= w <= 48  # inside the tile, face-sized
    assert len(detector.detect(tiles[2])) == 0
    uint8 = (tiles[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert len(detector.detect(uint8)) >= 1


def test_face_leak_rate_counts_images_with_faces(face_tiles):
    tiles, forget_mask = face_tiles
    metric = FaceLeakRate()
    metric.update(tiles)
    assert metric.compute().item() == pytest.approx(2 / 3)
    noise = torch.rand(tiles.shape, generator=torch.Generator().manual_seed(0))
    scrubbed = tiles * (1 - forget_mask) + noise * forget_mask  # the face boxes replaced by noise
    metric = FaceLeakRate()
    metric.update(scrubbed)
    assert metric.compute().item() == 0.0


def test_face_leak_rate_in_region_ignores_faces_outside_the_box(face_tiles):
    tiles, forget_mask = face_tiles
    inside = FaceLeakRate(in_region=True)
    inside.update(tiles, forget_mask=forget_mask)
    assert inside.compute().item() == 1.0  # the flat tile has no forget pixel and is skipped
    moved = torch.zeros_like(forget_mask)
    moved[:, :, :10, :10] = 1  # a box far from the faces
    elsewhere = FaceLeakRate(in_region=True)
    elsewhere.update(tiles, forget_mask=moved)
    assert elsewhere.compute().item() == 0.0
    assert box_overlap(np.array([16, 16, 32, 32]), forget_mask[0, 0].numpy()) == 1.0


def test_bad_detector_settings_and_inputs():
    with pytest.raises(ValueError, match="scale_factor"):
        FaceDetector(scale_factor=1.0)
    with pytest.raises(FileNotFoundError, match="nowhere.xml"):
        FaceDetector(cascade_path="nowhere.xml")
    with pytest.raises(ValueError, match="forget_mask"):
        FaceLeakRate(in_region=True).update(torch.rand(1, 3, 16, 16))


def test_repeated_detection_is_remembered_without_sharing_arrays(face_tiles):
    tiles, _ = face_tiles
    detector = FaceDetector()
    first = detector.detect(tiles[0])
    first[:] = -1  # the caller's copy; the remembered boxes must not change
    again = detector.detect(tiles[0])
    assert len(again) >= 1 and (again >= 0).all()
    assert len(detector.detect(tiles[2])) == 0  # a different image is searched afresh
