"""Contact sheets: a grid of people (rows = identities, columns = their images) for a person to
look at, and the same grid with the parsing maps and skeletons for checking the labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fastpose.pose.openpose import KEYPOINT_NAMES, LIMBS

# One colour per CIHP label (background black).
PARSING_PALETTE = np.array([
    [0, 0, 0], [128, 0, 0], [255, 0, 0], [0, 85, 0], [170, 0, 51], [255, 85, 0], [0, 0, 85],
    [0, 119, 221], [85, 85, 0], [0, 85, 85], [85, 51, 0], [52, 86, 128], [0, 128, 0],
    [0, 0, 255], [51, 170, 221], [0, 255, 255], [85, 255, 170], [170, 255, 85], [255, 255, 0],
    [255, 170, 0]], np.uint8)
SHEET = "contact_sheet.png"
ANNOTATED = "contact_sheet_annotated.png"


def _grid(cells: list[list[np.ndarray]], names: list[str], pad: int = 2, margin: int = 34
          ) -> np.ndarray:
    """One row per identity (its name in the left margin); long lists go in two panels."""
    if len(cells) > 8:
        half = (len(cells) + 1) // 2
        left, right = _grid(cells[:half], names[:half]), _grid(cells[half:], names[half:])
        right = np.pad(right, ((0, left.shape[0] - right.shape[0]), (0, 0), (0, 0)),
                       constant_values=255)
        return np.concatenate([left, np.full((left.shape[0], 12, 3), 255, np.uint8), right], 1)
    h, w = cells[0][0].shape[:2]
    cols = max(len(r) for r in cells)
    out = np.full((len(cells) * (h + pad) + pad, margin + cols * (w + pad) + pad, 3), 255,
                  np.uint8)
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            y, x = pad + i * (h + pad), margin + pad + j * (w + pad)
            out[y:y + h, x:x + w] = c
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    for i, name in enumerate(names):
        draw.text((2, pad + i * (h + pad) + h // 2 - 6), name, fill=(60, 60, 60))
    return np.asarray(pil)


def _annotate(image: np.ndarray, parsing: np.ndarray, kps: np.ndarray, zoom: int) -> np.ndarray:
    blend = (0.45 * image + 0.55 * PARSING_PALETTE[parsing]).astype(np.uint8)
    pil = Image.fromarray(blend).resize((blend.shape[1] * zoom, blend.shape[0] * zoom),
                                        Image.NEAREST)
    draw = ImageDraw.Draw(pil)
    pts = [(float(x) * zoom + zoom / 2, float(y) * zoom + zoom / 2) if y >= 0 else None
           for y, x in kps]
    for a, b in LIMBS:
        if pts[a] is not None and pts[b] is not None:
            draw.line([pts[a], pts[b]], fill=(255, 255, 255), width=max(1, zoom // 2))
    for i, p in enumerate(pts):
        if p is not None:
            r = max(1.5, zoom * 0.9)
            # Person's left joints in magenta, right in green, centre ones in white.
            col = {"l": (255, 0, 255), "r": (0, 200, 0)}.get(_side(i), (255, 255, 255))
            draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=col)
    return np.asarray(pil)


def _side(i: int) -> str:
    return KEYPOINT_NAMES[i][0] if KEYPOINT_NAMES[i][1] == "_" else "c"


def contact_sheets(root: Path, people: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
                   names: list[str], preset: str) -> None:
    """Write ``contact_sheet.png`` and ``contact_sheet_annotated.png`` into ``root``.

    ``people[i][j]`` = (image [H, W, 3] uint8, parsing [H, W] uint8, keypoints [18, 2]) of the
    j-th image of the identity called ``names[i]``."""
    if not people:
        return
    zoom = 2 if preset == "market" else 1
    imgs = [[np.asarray(Image.fromarray(im).resize((im.shape[1] * zoom, im.shape[0] * zoom),
                                                   Image.NEAREST)) for im, _, _ in row]
            for row in people]
    Image.fromarray(_grid(imgs, names)).save(root / SHEET)
    ann = [[_annotate(im, pa, kp, zoom) for im, pa, kp in row] for row in people]
    Image.fromarray(_grid(ann, names)).save(root / ANNOTATED)
