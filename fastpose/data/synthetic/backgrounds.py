"""Backgrounds: cluttered street scenes that differ per camera (Market-like) and plain studio
backdrops (DeepFashion-like). All float32 ``[H, W, 3]`` in [0, 1]."""

from __future__ import annotations

import numpy as np


def value_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field ``[h, w]`` in [0, 1]: bilinear interpolation of a ``cells`` grid."""
    gh, gw = cells
    g = rng.random((gh + 1, gw + 1)).astype(np.float32)
    y = np.linspace(0, gh, h, dtype=np.float32)
    x = np.linspace(0, gw, w, dtype=np.float32)
    y0 = np.minimum(y.astype(int), gh - 1)
    x0 = np.minimum(x.astype(int), gw - 1)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    b = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return a * (1 - fy) + b * fy


def _box_blur(img: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return img
    k = 2 * r + 1
    p = np.pad(img, ((r, r), (r, r), (0, 0)), mode="edge")
    c = np.cumsum(np.cumsum(p, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0), (0, 0)))
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s / (k * k)


def _muted(rng: np.random.Generator, sat: float = 0.35, lo: float = 0.25, hi: float = 0.8
           ) -> np.ndarray:
    grey = rng.uniform(lo, hi)
    tint = rng.normal(0.0, sat * 0.35, 3)
    return np.clip(grey + tint, 0.02, 0.98).astype(np.float32)


def street_scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A Market-like camera view ``[h, w, 3]``: a wall or shop fronts, a paved ground with
    perspective joints, and clutter (poles, bushes, signs)."""
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    horizon = int(h * rng.uniform(0.3, 0.62))
    img = np.empty((h, w, 3), np.float32)
    # Wall: vertical panels of different colours with windows.
    wall = np.empty((horizon, w, 3), np.float32)
    x = 0
    while x < w:
        pw = int(rng.uniform(0.25, 0.8) * w)
        col = _muted(rng, sat=0.18, lo=0.3, hi=0.8)
        wall[:, x:x + pw] = col
        if rng.random() < 0.6:  # windows / shop glass
            glass = _muted(rng, sat=0.3, lo=0.1, hi=0.45) * np.array([0.85, 0.95, 1.1], np.float32)
            gx0 = x + int(pw * rng.uniform(0.08, 0.2))
            gx1 = x + int(pw * rng.uniform(0.75, 0.92))
            step = int(rng.uniform(0.15, 0.3) * h)
            for gy in range(int(rng.uniform(0.02, 0.1) * h), horizon - 4, max(step, 6)):
                wall[gy:gy + int(step * 0.6), gx0:gx1] = glass
        x += pw
    wall *= (0.8 + 0.4 * value_noise(rng, horizon, w, (4, 3)))[..., None]
    img[:horizon] = wall
    # Ground: pavement with perspective joints.
    g = _muted(rng, sat=0.12, lo=0.3, hi=0.7)
    gh = h - horizon
    gy = (ys[horizon:] - horizon) / max(gh, 1)
    depth = 1.0 / (0.15 + gy)  # farther rows are denser
    tiles = np.broadcast_to(np.abs(((depth * rng.uniform(0.8, 1.6)) % 1.0) - 0.5) < 0.06, (gh, w))
    vx = w * rng.uniform(0.2, 0.8)
    slope = (xs - vx) / (0.15 + gy)
    tiles = tiles | (np.abs(((slope / (w * rng.uniform(0.25, 0.5))) % 1.0) - 0.5) < 0.05)
    ground = g * (0.85 + 0.3 * value_noise(rng, gh, w, (5, 4)))[..., None]
    ground = np.where(tiles[..., None], ground * 0.82, ground)
    img[horizon:] = ground
    # Clutter.
    for _ in range(int(rng.integers(3, 9))):
        kind = rng.integers(0, 3)
        col = _muted(rng, sat=0.2, lo=0.15, hi=0.7)
        cx, cy = rng.uniform(0, w), rng.uniform(0.1 * h, 0.95 * h)
        if kind == 0:  # pole
            pw = rng.uniform(0.02, 0.06) * w
            m = (np.abs(xs - cx) < pw) & (ys < cy + 0.2 * h)
        elif kind == 1:  # bush / blob
            rx, ry = rng.uniform(0.08, 0.22) * w, rng.uniform(0.04, 0.1) * h
            m = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 < 1.0
            col = col * np.array([0.75, 0.9, 0.7], np.float32)
        else:  # sign / box
            rx, ry = rng.uniform(0.08, 0.3) * w, rng.uniform(0.03, 0.1) * h
            m = (np.abs(xs - cx) < rx) & (np.abs(ys - cy) < ry)
        img = np.where(m[..., None], col * (0.85 + 0.3 * value_noise(rng, h, w, (3, 2)))[..., None],
                       img)
    img = _box_blur(img, 1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def studio_backdrop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A DeepFashion-like plain light backdrop ``[h, w, 3]`` with a soft vertical gradient."""
    base = rng.uniform(0.86, 0.98)
    tint = np.clip(base + rng.normal(0, 0.012, 3), 0, 1).astype(np.float32)
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    grad = 1.0 - rng.uniform(0.0, 0.08) * ys
    return np.clip(np.broadcast_to(tint, (h, w, 3)) * grad, 0, 1).astype(np.float32)


def cast_shadow(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, strength: float
                ) -> np.ndarray:
    """Darken a soft ellipse (the person's contact shadow) into ``img`` ``[H, W, 3]``."""
    h, w = img.shape[:2]
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    d = ((xs - cx) / max(rx, 1.0)) ** 2 + ((ys - cy) / max(ry, 1.0)) ** 2
    return img * (1.0 - strength * np.exp(-2.0 * d))[..., None]
