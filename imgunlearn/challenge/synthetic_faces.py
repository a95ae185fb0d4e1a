"""An embedded, procedurally drawn face-age dataset (32×32 RGB), made with vectorised numpy.

Each person has fixed identity parameters: face shape, skin tone, hair colour and style, eye spacing and size,
eyebrows, beard, glasses, shirt colour and stripes, a background colour and a low-resolution background
texture. Age changes what is drawn: children have rounder faces with the eyes lower and larger; adults get
longer faces and noses; from about 35 on, wrinkles, grey hair, a receding hairline and a heavier jaw appear.
Every image adds pose, scale, lighting, colour, expression and pixel-noise jitter.

The label is the person's *true* age, but each person is drawn as if `age_offset_std`-ish years older or
younger (a per-person offset), so the drawn age alone predicts the label only roughly. A model that has
seen a person learns that person's label from the identity details; a model that has not must guess from the
drawn age. That is the gap between an original model and one retrained without the forget people which
membership and unlearning metrics measure.

Ages are skewed towards the young (most images fall into the youngest age groups) and people have a
variable number of images, taken over a few years.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imgunlearn.io import atomic_write_text

MAX_AGE = 80


@dataclass
class SyntheticFaces:
    """Generated faces.

    Attributes:
        images: `[N, H, W, 3]` uint8.
        ages: `[N]` int64 labelled (true) ages.
        person_ids: `[N]` int64.
    """

    images: np.ndarray
    ages: np.ndarray
    person_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ages)

    def save(self, directory: str | Path) -> Path:
        """Write `images/NNNNN.png` and `faces.csv` (`image_id,path,age,person_id`) into `directory`.

        Returns:
            The path of the CSV file.
        """
        directory = Path(directory)
        (directory / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        for i, (image, age, person) in enumerate(zip(self.images, self.ages, self.person_ids, strict=True)):
            rel = f"images/{i:05d}.png"
            Image.fromarray(image).save(directory / rel)
            rows.append((f"{i:05d}", rel, int(age), int(person)))
        csv_path = directory / "faces.csv"
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(["image_id", "path", "age", "person_id"])
        writer.writerows(rows)
        atomic_write_text(csv_path, table.getvalue())
        return csv_path


def _people(rng: np.random.Generator, num_people: int, images_per_person: int | tuple[int, int],
            age_offset_std: float) -> dict[str, np.ndarray]:
    """Per-person identity parameters, one row per person."""
    n = num_people
    if isinstance(images_per_person, int):
        counts = np.full(n, images_per_person)
    else:
        lo, hi = images_per_person
        counts = np.minimum(lo + np.floor(rng.exponential((hi - lo) / 3.0, n)), hi).astype(int)
    skin = rng.uniform(0, 1, n)
    skin_rgb = np.stack([0.95 - 0.55 * skin, 0.78 - 0.52 * skin, 0.66 - 0.48 * skin], 1)
    hair_rgb = rng.choice(np.array([[0.08, 0.06, 0.05], [0.35, 0.2, 0.1], [0.8, 0.65, 0.35], [0.6, 0.22, 0.08],
                                    [0.2, 0.13, 0.08]]), n) * rng.uniform(0.8, 1.2, (n, 1))
    return {
        "count": counts,
        "base_age": np.minimum(1 + rng.gamma(1.2, 13.0, n), MAX_AGE - 4),
        "offset": rng.normal(0, age_offset_std, n),
        "width": rng.uniform(0.88, 1.1, n), "length": rng.uniform(0.9, 1.12, n),
        "skin": skin_rgb + rng.normal(0, 0.03, (n, 3)), "hair": hair_rgb,
        "grey_rate": rng.uniform(0.4, 1.3, n), "bald_rate": rng.uniform(0, 1, n) ** 2,
        "long_hair": rng.random(n) < 0.4, "fringe": rng.uniform(0.0, 0.35, n),
        "eye_gap": rng.uniform(0.28, 0.42, n), "eye_size": rng.uniform(0.8, 1.25, n),
        "iris": rng.uniform(0.05, 0.5, (n, 3)), "brow": rng.uniform(0.5, 1.5, n),
        "beard": rng.random(n) < 0.25, "glasses": rng.random(n) < 0.2,
        "glasses_rgb": rng.uniform(0, 0.6, (n, 3)), "lips": rng.uniform(0.5, 0.85, (n, 1)) * [1.0, 0.45, 0.45],
        "shirt": rng.uniform(0.05, 0.95, (n, 3)), "stripe_freq": rng.uniform(3, 14, n),
        "stripe_phase": rng.uniform(0, 2 * np.pi, n), "stripe_amp": rng.uniform(0, 0.3, n),
        "background": rng.uniform(0.1, 0.95, (n, 3)), "texture": rng.uniform(-0.18, 0.18, (n, 3, 4, 4)),
    }


def _soft(distance: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage of a shape from a signed distance (negative inside), in image units of 2/size."""
    return np.clip(0.5 - distance * size / 2.0, 0.0, 1.0)


def _ellipse(u, v, cx, cy, rx, ry, size):
    d = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2) - 1.0  # [B, H, W]
    return _soft(d * np.minimum(rx, ry), size)


def _paint(canvas: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Blend `color` ([B, 3] or [B, 3, H, W]) into `canvas` ([B, 3, H, W]) where `alpha` ([B, H, W]) is set."""
    if color.ndim == 2:
        color = color[:, :, None, None]
    canvas += alpha[:, None] * (color - canvas)


def _render(p: dict[str, np.ndarray], age: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw one batch of faces; `p` holds per-image identity parameters, `age` the drawn ages. -> [B, H, W, 3]."""
    b = len(age)
    col = lambda x: x[:, None, None]  # noqa: E731  [B] -> [B, 1, 1]
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    scale = col(rng.uniform(0.92, 1.08, b))
    u = (grid[None, None, :] - col(rng.uniform(-0.1, 0.1, b))) / scale  # [B, 1, W]
    v = (grid[None, :, None] - col(rng.uniform(-0.08, 0.08, b))) / scale  # [B, H, 1]
    u, v = np.broadcast_arrays(u, v)  # [B, H, W]
    yaw = col(rng.uniform(-0.07, 0.07, b))
    grow = col(np.clip(age / 18.0, 0, 1))  # 0 for a newborn, 1 for an adult
    old = col(np.clip((age - 35.0) / 40.0, 0, 1))  # 0 until 35, 1 at 75

    # background: person colour plus a coarse person texture, then shirt with person stripes
    texture = np.repeat(np.repeat(p["texture"], size // 4, axis=2), size // 4, axis=3)  # [B, 3, H, W]
    canvas = p["background"][:, :, None, None] + texture
    shirt = p["shirt"][:, :, None, None] * (1 + col(p["stripe_amp"])[:, None]
                                            * np.sin(u * col(p["stripe_freq"]) * 3 + col(p["stripe_phase"]))[:, None])
    _paint(canvas, _ellipse(u, v, 0, 1.12, 0.85, 0.42, size), shirt)

    rx = col(p["width"]) * (0.5 + 0.05 * (1 - grow)) * (1 + 0.05 * old)
    ry = col(p["length"]) * (0.58 + 0.1 * grow)
    cy = -0.08 + 0.04 * (1 - grow)
    jaw_rx = rx * (1 + 0.12 * old)
    if_long = col(p["long_hair"].astype(float))
    hair = p["hair"] + col(np.clip(old[:, 0, 0] * p["grey_rate"], 0, 1))[:, :, 0] * (0.75 - p["hair"])
    _paint(canvas, _ellipse(u, v, 0, cy + 0.25, rx * 1.25, ry * 1.05, size) * if_long, hair)  # long hair behind
    _paint(canvas, _soft(np.maximum(np.abs(u) - rx * 0.45, v - 0.8), size) * (v > cy), p["skin"] * 0.92)  # neck
    _paint(canvas, _ellipse(u, v, -rx * 1.02 + yaw, cy + 0.02, 0.07, 0.12, size), p["skin"] * 0.95)  # ears
    _paint(canvas, _ellipse(u, v, rx * 1.02 + yaw, cy + 0.02, 0.07, 0.12, size), p["skin"] * 0.95)
    face = np.maximum(_ellipse(u, v, 0, cy, rx, ry, size), _ellipse(u, v, 0, cy + 0.1, jaw_rx, ry * 0.9, size) * (v > cy))
    _paint(canvas, face, p["skin"])

    # hair on top: cap above a hairline that recedes with age for some people
    hairline = cy - ry * (0.55 - col(p["fringe"]) + 0.45 * old * col(p["bald_rate"]))
    cap = _ellipse(u, v, 0, cy - 0.03, rx * 1.08, ry * 1.04, size) * _soft(v - hairline, size)
    _paint(canvas, cap, hair)

    # eyes lower and larger in children; brows; nose; mouth
    eye_y = cy + ry * (0.02 + 0.18 * (1 - grow))
    gap = col(p["eye_gap"]) * rx
    eye_r = 0.075 * col(p["eye_size"]) * (1.25 - 0.25 * grow) * (1 - 0.15 * old)
    for side in (-1, 1):
        ex = side * gap + yaw
        _paint(canvas, _ellipse(u, v, ex, eye_y, eye_r * 1.3, eye_r * (0.85 - 0.3 * old), size), np.full((b, 3), 0.95))
        _paint(canvas, _ellipse(u, v, ex, eye_y, eye_r * 0.65, eye_r * 0.65, size), p["iris"])
        brow = _soft(np.maximum(np.abs(u - ex) - eye_r * 1.5, np.abs(v - (eye_y - eye_r * 2.1)) - 0.025 * col(p["brow"])),
                     size)
        _paint(canvas, brow * 0.9, hair * 0.8)
        wrinkle = _soft(np.maximum(np.abs(u - side * (gap + eye_r * 2.2) - yaw) - 0.03, np.abs(v - eye_y) - 0.06), size)
        _paint(canvas, wrinkle * 0.6 * old * face, p["skin"] * 0.55)  # crow's feet
    nose_len = 0.1 + 0.1 * grow
    nose = _soft(np.maximum(np.abs(u - yaw * 1.4) - 0.03, np.abs(v - eye_y - nose_len * 0.6) - nose_len * 0.5), size)
    _paint(canvas, nose * 0.5, p["skin"] * 0.7)
    mouth_y = eye_y + nose_len + 0.1 + 0.05 * grow
    smile = col(rng.uniform(-0.5, 1.5, b))
    curve = v - mouth_y + smile * 0.8 * (0.16 * rx) ** 2 - smile * 0.8 * (u - yaw) ** 2
    mouth = _soft(np.maximum(np.abs(u - yaw) - rx * 0.38, np.abs(curve) - 0.03 - 0.02 * col(rng.random(b))), size)
    _paint(canvas, mouth, p["lips"])
    for k in range(3):  # forehead lines
        line = _soft(np.maximum(np.abs(u - yaw) - rx * 0.5, np.abs(v - (eye_y - eye_r * 3.2 - 0.08 * k)) - 0.012), size)
        _paint(canvas, line * 0.7 * old * face * (v > hairline), p["skin"] * 0.6)
    for side in (-1, 1):  # nasolabial folds
        fold = _soft(np.abs(u - side * (0.12 + 0.25 * (v - eye_y - nose_len)) - yaw) - 0.02, size)
        band = (v > eye_y + nose_len * 0.7) & (v < mouth_y + 0.06)
        _paint(canvas, fold * band * 0.6 * old * face, p["skin"] * 0.6)
    beard = col(p["beard"].astype(float)) * col((age > 17).astype(float)) * face * _soft(mouth_y - 0.08 - v, size)
    _paint(canvas, beard * (0.3 + 0.6 * grow), hair * 0.9)
    glasses = col(p["glasses"].astype(float))
    for side in (-1, 1):
        ring = np.sqrt(((u - side * gap - yaw) / (eye_r * 2.1)) ** 2 + ((v - eye_y) / (eye_r * 1.7)) ** 2)
        _paint(canvas, _soft(np.abs(ring - 1) * eye_r * 1.7 - 0.015, size) * glasses, p["glasses_rgb"])

    # lighting, colour cast and sensor noise
    light = col(rng.uniform(0.75, 1.2, b)) + col(rng.uniform(-0.25, 0.25, b)) * u + col(rng.uniform(-0.1, 0.1, b)) * v
    canvas = canvas * light[:, None] * (1 + rng.normal(0, 0.04, (b, 3, 1, 1)))
    canvas += rng.normal(0, 0.02, canvas.shape)
    return (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def generate_faces(
    num_people: int,
    images_per_person: int | tuple[int, int] = (3, 30),
    size: int = 32,
    seed: int = 0,
    age_offset_std: float = 6.0,
    age_span: float = 4.0,
    batch_size: int = 1024,
) -> SyntheticFaces:
    """Draw a face-age dataset; the same arguments give the same faces.

    Args:
        num_people: Number of people.
        images_per_person: A fixed count, or `(min, max)`: counts are drawn skewed towards `min` (mean about
            `min + (max - min) / 3`).
        size: Image side in pixels; a multiple of 4.
        seed: Seeds every draw.
        age_offset_std: Standard deviation (years) of the per-person offset between drawn and labelled age.
        age_span: A person's images are taken over this many years.
        batch_size: Faces rendered per vectorised batch (memory vs speed).

    Returns:
        `SyntheticFaces` with `[N, size, size, 3]` uint8 images, ages and person ids, grouped by person.
    """
    if num_people < 1:
        raise ValueError(f"num_people must be at least 1, got {num_people}")
    if size < 8 or size % 4:
        raise ValueError(f"size must be a multiple of 4 and at least 8, got {size}")
    if isinstance(images_per_person, int):
        if images_per_person < 1:
            raise ValueError(f"images_per_person must be at least 1, got {images_per_person}")
    elif len(images_per_person) != 2 or not 1 <= images_per_person[0] <= images_per_person[1]:
        raise ValueError(f"images_per_person must be an int or (min, max) with 1 <= min <= max, got {images_per_person}")
    rng = np.random.default_rng(seed)
    people = _people(rng, num_people, images_per_person, age_offset_std)
    person_ids = np.repeat(np.arange(num_people), people["count"])
    true_age = np.clip(people["base_age"][person_ids] + rng.uniform(0, age_span, len(person_ids)), 1, MAX_AGE)
    drawn_age = np.clip(true_age + people["offset"][person_ids], 0, MAX_AGE + 10)
    chunks = []
    for start in range(0, len(person_ids), batch_size):
        idx = person_ids[start:start + batch_size]
        per_image = {k: val[idx] for k, val in people.items()}
        chunks.append(_render(per_image, drawn_age[start:start + batch_size], rng, size))
    return SyntheticFaces(np.concatenate(chunks), np.floor(true_age).astype(np.int64), person_ids.astype(np.int64))
