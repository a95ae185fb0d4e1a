"""Procedural aerial ground: grass, soil, roads with cars, roofs with shadows, pools and trees.

Every layer is drawn for a whole chunk of tiles at once with numpy broadcasting: per-tile parameters are
arrays of shape `[N, K]` (K candidate objects per tile, each present or not) and pixel coordinates have
shape `[1, 1, H, W]`, so a mask of all objects is `[N, K, H, W]`. Sizes are given for a 64-pixel tile and
scaled to the requested side, so tiles of any side >= 16 look alike.
"""

from __future__ import annotations

import numpy as np

CHUNK = 256
"""Tiles drawn at once (bounds memory; the random stream does not depend on it)."""

ROOF_COLORS = np.array([[0.62, 0.30, 0.22], [0.45, 0.45, 0.48], [0.52, 0.38, 0.30], [0.70, 0.42, 0.30],
                        [0.35, 0.33, 0.36], [0.78, 0.76, 0.72]], dtype=np.float32)
CAR_COLORS = np.array([[0.85, 0.85, 0.85], [0.10, 0.10, 0.12], [0.70, 0.10, 0.10], [0.15, 0.25, 0.60],
                       [0.55, 0.56, 0.58], [0.80, 0.70, 0.20]], dtype=np.float32)


def render_ground(rng: np.random.Generator, num: int, size: int) -> np.ndarray:
    """Draw `num` aerial tiles.

    Args:
        rng: The random stream; the same stream state gives the same tiles.
        num: Number of tiles.
        size: Tile side in pixels (>= 16).

    Returns:
        uint8 array `[num, 3, size, size]`.
    """
    if size < 16:
        raise ValueError(f"tile size must be >= 16, got {size}")
    if num < 0:
        raise ValueError(f"number of tiles must be >= 0, got {num}")
    out = np.empty((num, 3, size, size), dtype=np.uint8)
    for start in range(0, num, CHUNK):
        n = min(CHUNK, num - start)
        tiles = _render_chunk(rng, n, size)  # [n, H, W, 3]
        out[start : start + n] = np.round(tiles.clip(0.0, 1.0) * 255.0).astype(np.uint8).transpose(0, 3, 1, 2)
    return out


def _render_chunk(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    s = size / 64.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    yy, xx = yy[None, None], xx[None, None]  # [1, 1, H, W]

    img = _grass_and_soil(rng, n, size)
    _roads_and_cars(rng, img, yy, xx, s)
    _houses(rng, img, yy, xx, s)
    _trees(rng, img, yy, xx, s)
    light = _uniform(rng, 0.85, 1.15, (n, 1, 1, 1))
    grain = 0.015 * rng.standard_normal(img.shape, dtype=np.float32)
    return img * light + grain


def value_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random `(cells + 1)²` grid bilinearly interpolated to `[n, size, size]`."""
    grid = rng.random((n, cells + 1, cells + 1), dtype=np.float32)
    u = (np.arange(size, dtype=np.float32) + 0.5) * cells / size
    i0 = np.minimum(u.astype(np.int64), cells - 1)
    f = u - i0
    f = f * f * (3.0 - 2.0 * f)  # smoothstep: no visible grid lines
    rows = grid[:, i0] * (1.0 - f)[None, :, None] + grid[:, i0 + 1] * f[None, :, None]  # [n, size, cells + 1]
    return rows[:, :, i0] * (1.0 - f)[None, None, :] + rows[:, :, i0 + 1] * f[None, None, :]  # [n, size, size]


def _grass_and_soil(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    grass = np.array([0.30, 0.46, 0.20], dtype=np.float32) + _uniform(rng, -0.06, 0.06, (n, 1, 1, 3))
    soil = np.array([0.52, 0.42, 0.30], dtype=np.float32) + _uniform(rng, -0.06, 0.06, (n, 1, 1, 3))
    coarse = value_noise(rng, n, size, 3)[..., None]  # [n, H, W, 1]
    fine = value_noise(rng, n, size, max(4, size // 4))[..., None]
    soil_level = _uniform(rng, 0.35, 1.1, (n, 1, 1, 1))  # > 1: no soil on this tile
    soil_share = np.clip((coarse - soil_level) * 8.0, 0.0, 1.0)
    base = grass * (1.0 - soil_share) + soil * soil_share
    return base * (0.8 + 0.25 * coarse + 0.2 * (fine - 0.5))  # [n, H, W, 3]


def _uniform(rng: np.random.Generator, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(low, high, shape)


def _paint(img: np.ndarray, mask: np.ndarray, color: np.ndarray | float) -> None:
    """Set `img` `[n, H, W, 3]` to `color` (broadcastable to it) where the boolean `mask` `[n, H, W]` holds."""
    np.copyto(img, np.broadcast_to(np.asarray(color, dtype=np.float32), img.shape), where=mask[..., None])


def _shade(img: np.ndarray, mask: np.ndarray, factor: float) -> None:
    """Darken `img` by `factor` where the boolean `mask` holds."""
    img *= np.where(mask, np.float32(factor), np.float32(1.0))[..., None]


def _roads_and_cars(rng: np.random.Generator, img: np.ndarray, yy: np.ndarray, xx: np.ndarray, s: float) -> None:
    n, size = img.shape[0], img.shape[1]
    has_road = rng.random(n) < 0.55
    straight = rng.integers(0, 2, n) * np.pi / 2  # mostly along the tile's axes
    angle = np.where(rng.random(n) < 0.7, straight, rng.uniform(0, np.pi, n)).astype(np.float32)
    cos, sin = np.cos(angle)[:, None, None, None], np.sin(angle)[:, None, None, None]
    offset = _uniform(rng, 0.25, 0.75, n)[:, None, None, None] * size
    half_width = _uniform(rng, 3.5, 5.5, n)[:, None, None, None] * s
    across = (xx - size / 2) * cos + (yy - size / 2) * sin + size / 2 - offset  # [n, 1, H, W]
    along = -(xx - size / 2) * sin + (yy - size / 2) * cos
    road = (np.abs(across) < half_width)[:, 0] & has_road[:, None, None]
    asphalt = _uniform(rng, 0.32, 0.45, (n, 1, 1, 1))
    _paint(img, road, asphalt * np.ones(3, dtype=np.float32))
    dash = (np.abs(across) < 0.5 * s) & (np.mod(along, 8 * s) < 4 * s)
    _paint(img, (dash[:, 0] & road), np.float32(0.85))

    k = 3  # car candidates per road
    present = (rng.random((n, k)) < 0.5) & has_road[:, None]
    lane = np.where(rng.random((n, k)) < 0.5, -1.0, 1.0)[..., None, None] * half_width * 0.5  # [n, k, 1, 1]
    at = _uniform(rng, -0.5, 0.5, (n, k))[..., None, None] * size
    car = (np.abs(across - lane) < 1.2 * s) & (np.abs(along - at) < 2.5 * s) & present[..., None, None]  # [n, k, H, W]
    colors = CAR_COLORS[rng.integers(0, len(CAR_COLORS), (n, k))]  # [n, k, 3]
    for j in range(k):
        _paint(img, car[:, j], colors[:, j, None, None, :])


def _houses(rng: np.random.Generator, img: np.ndarray, yy: np.ndarray, xx: np.ndarray, s: float) -> None:
    n, size = img.shape[0], img.shape[1]
    k = 2
    present = rng.random((n, k)) < 0.55
    cy, cx = _uniform(rng, 0.1, 0.9, (2, n, k, 1, 1)) * size
    hh, hw = _uniform(rng, 4.0, 11.0, (2, n, k, 1, 1)) * s
    sun = _uniform(rng, 1.5, 3.5, (n, 1, 1, 1)) * s  # shadow offset towards the bottom right
    roof = ROOF_COLORS[rng.integers(0, len(ROOF_COLORS), (n, k))]  # [n, k, 3]
    roof = roof * _uniform(rng, 0.85, 1.1, (n, k, 1))
    ridge_vertical = rng.random((n, k)) < 0.5
    pool = present & (rng.random((n, k)) < 0.35)
    pool_dy, pool_dx = _uniform(rng, -1.0, 1.0, (2, n, k, 1, 1))
    pr = _uniform(rng, 2.5, 4.5, (n, k, 1, 1)) * s

    def inside(oy: float | np.ndarray, ox: float | np.ndarray) -> np.ndarray:  # [n, k, H, W]
        return (np.abs(yy - cy - oy) < hh) & (np.abs(xx - cx - ox) < hw) & present[..., None, None]

    shadow = inside(sun, sun).any(axis=1)
    _shade(img, shadow, 0.5)
    # a pool beside the house: a rounded square with a light rim
    py, px = cy + pool_dy * (hh + pr + 2 * s), cx + pool_dx * (hw + pr + 2 * s)
    d = np.maximum(np.abs(yy - py), np.abs(xx - px)) * 0.6 + np.hypot(yy - py, xx - px) * 0.4
    rim = (d < pr + s) & pool[..., None, None]
    water = (d < pr) & pool[..., None, None]
    _paint(img, rim.any(axis=1), np.float32(0.85))
    _paint(img, water.any(axis=1), np.array([0.25, 0.65, 0.80], dtype=np.float32))
    body = inside(0.0, 0.0)
    lit = np.where(ridge_vertical[..., None, None], xx < cx, yy < cy)  # one roof face catches the sun
    for j in range(k):
        _paint(img, body[:, j], roof[:, j, None, None, :])
        _shade(img, (body[:, j] & ~lit[:, j]), 0.78)


def _trees(rng: np.random.Generator, img: np.ndarray, yy: np.ndarray, xx: np.ndarray, s: float) -> None:
    n, size = img.shape[0], img.shape[1]
    k = 6
    density = _uniform(rng, 0.0, 0.8, (n, 1))
    present = rng.random((n, k)) < density
    cy, cx = _uniform(rng, 0.0, 1.0, (2, n, k, 1, 1)) * size
    r = _uniform(rng, 2.5, 5.0, (n, k, 1, 1)) * s
    sun = 0.5 * r
    shadow = ((yy - cy - sun) ** 2 + (xx - cx - sun) ** 2 < r**2) & present[..., None, None]
    _shade(img, shadow.any(axis=1), 0.55)
    green = np.array([0.16, 0.30, 0.12], dtype=np.float32) * _uniform(rng, 0.8, 1.25, (n, k, 1))  # [n, k, 3]
    crowns = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2) & present[..., None, None]  # [n, k, H, W]
    top = k - 1 - np.argmax(crowns[:, ::-1], axis=1)[:, None]  # [n, 1, H, W]: the last tree drawn wins
    pick = lambda a: np.take_along_axis(np.broadcast_to(a, crowns.shape), top, axis=1)[:, 0]  # noqa: E731
    ty, tx, tr = pick(cy), pick(cx), pick(r)  # [n, H, W]
    dist = np.sqrt((yy[0] - ty + 0.3 * tr) ** 2 + (xx[0] - tx + 0.3 * tr) ** 2)
    highlight = np.clip(1.3 - 0.6 * dist / tr, 0.6, 1.3)[..., None]  # lit from the top left
    color = green[np.arange(n)[:, None, None], top[:, 0]]  # [n, H, W, 3]
    _paint(img, crowns.any(axis=1), color * highlight)
