"""A user-style dataset that is not the embedded survey: 64 px tiles cut from real photographs, faces pasted on the
forget tiles, written as a CSV folder (`path,split,box,person_id`) that `source: DIR/splits.csv` reads.

The backgrounds are the colour and grey photographs scikit-image ships (cat, coffee, rocket, Hubble deep field,
tissue stain, retina, cameraman, brick, grass, gravel, coins, clock, moon; no download), cropped at random places
and scales (64-192 px squares resized to the tile side) and flipped at random. Forget tiles carry an LFW face
(`imgunlearn.data.faces.paste_faces`), training and held-out tiles different faces. Every split draws from every
photograph, so held-out tiles are new crops, not new scenes.

    python scripts/make_photo_dataset.py --out runs/photo_data       # 160 / 600 / 80 / 80 tiles
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from imgunlearn.data.faces import paste_faces, split_face_ids
from imgunlearn.data.splits import ImageSet
from imgunlearn.data.synthetic import SurveyData
from imgunlearn.evaluation.faces import default_detector

PHOTOS = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "camera", "brick",
          "grass", "gravel", "coins", "clock", "moon")


def photographs() -> list[np.ndarray]:
    """The bundled photographs as uint8 `[H, W, 3]`."""
    import skimage.data

    out = []
    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return out


def crop_tiles(photos: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random square crops (64-192 px, or the photo's short side) resized to `size`: uint8 `[N, 3, S, S]`."""
    tiles = np.empty((count, 3, size, size), dtype=np.uint8)
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(64, min(192, h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
        tiles[i] = crop.transpose(2, 0, 1)
    return tiles


def make_dataset(num_forget: int = 160, num_retain: int = 600, num_holdout_forget: int = 80,
                 num_holdout_retain: int = 80, size: int = 64, seed: int = 7, holdout_faces: int = 20) -> SurveyData:
    photos = photographs()
    train_faces, test_faces = split_face_ids(holdout_faces, seed)
    counts = {"forget_train": num_forget, "retain_train": num_retain, "forget_holdout": num_holdout_forget,
              "retain_holdout": num_holdout_retain}
    splits = {}
    for stream, (name, count) in enumerate(counts.items()):
        rng = np.random.default_rng([seed, 100 + stream])
        tiles = crop_tiles(photos, count, size, rng)
        boxes, ids = np.full((count, 4), -1, dtype=np.int64), np.full(count, -1, dtype=np.int64)
        if name.startswith("forget"):
            pool = train_faces if name == "forget_train" else test_faces
            ids = pool[rng.integers(0, len(pool), count)]
            boxes = paste_faces(tiles, ids, rng)
        splits[name] = ImageSet.from_arrays([f"{name}/{i:05d}" for i in range(count)], tiles, boxes, ids)
    return SurveyData(splits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write (must not exist)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose another --out")
    data = make_dataset(seed=args.seed)
    data.save(out)
    for name in ("forget_holdout", "retain_holdout"):
        images = data[name]
        detector = default_detector()
        found = np.mean([len(detector.detect(images.image(i).astype(np.float32) / 255.0)) > 0
                         for i in range(len(images))])
        print(f"{name}: {len(images)} tiles, Haar finds a face on {found:.0%}")
    print(f"wrote {out / 'splits.csv'}")


if __name__ == "__main__":
    main()
