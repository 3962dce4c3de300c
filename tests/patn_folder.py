"""A tiny hand-written PATN-format dataset folder for the data tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastpose.data.layout import PRESET_SIZE, Layout
from fastpose.pose.openpose import KEYPOINT_INDEX as J

# Two persons, three images each, in Market's naming (person id before the first '_').
NAMES = ["0001_c1s1_000001_00.png", "0001_c2s1_000002_00.png", "0001_c3s1_000003_00.png",
         "0002_c1s1_000004_00.png", "0002_c2s1_000005_00.png", "0002_c4s1_000006_00.png"]


def pose_for(index: int) -> list[list[int]]:
    """Integer (y, x) keypoints of a frontal figure in a 128x64 frame, shifted per image."""
    dx = index - 2
    pts = {"nose": (18, 32), "neck": (30, 32), "r_shoulder": (31, 22), "r_elbow": (48, 19),
           "r_wrist": (64, 18), "l_shoulder": (31, 42), "l_elbow": (48, 45), "l_wrist": (64, 46),
           "r_hip": (66, 26), "r_knee": (90, 26), "r_ankle": (114, 26), "l_hip": (66, 38),
           "l_knee": (90, 38), "l_ankle": (114, 38), "l_eye": (16, 35), "r_eye": (16, 29)}
    kp = [[-1, -1] for _ in range(18)]
    for name, (y, x) in pts.items():
        kp[J[name]] = [y, x + dx]
    return kp  # the ears are missing


def image_pixels(index: int, size=(128, 64)) -> np.ndarray:
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def parsing_pixels(index: int, size=(128, 64)) -> np.ndarray:
    """Labels: background 0, face 13 around the nose, upper_clothes 5 on the torso."""
    labels = np.zeros(size, dtype=np.uint8)
    kp = pose_for(index)
    ny, nx = kp[J["nose"]]
    labels[ny - 6:ny + 7, nx - 5:nx + 6] = 13
    labels[31:66, 22 + index - 2:43 + index - 2] = 5
    return labels


def write_annotation_csv(path: Path, rows: list[tuple[str, list[list[int]]]]) -> None:
    lines = ["name:keypoints_y:keypoints_x"]
    for name, kp in rows:
        ys = "[" + ", ".join(str(p[0]) for p in kp) + "]"
        xs = "[" + ", ".join(str(p[1]) for p in kp) + "]"
        lines.append(f"{name}:{ys}:{xs}")
    path.write_text("\n".join(lines) + "\n")


def make_patn_folder(root: Path, split: str = "train", parsing: bool = True) -> Layout:
    """Write images, annotation CSV, pairs CSV (and parsing PNGs) by hand; returns the layout."""
    layout = Layout.for_preset(root, "market")
    size = PRESET_SIZE["market"]
    layout.images(split).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(NAMES):
        Image.fromarray(image_pixels(i, size)).save(layout.images(split) / name)
        if parsing:
            path = layout.parsing(split, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(parsing_pixels(i, size), mode="L").save(path)
    write_annotation_csv(layout.annotations(split), [(n, pose_for(i)) for i, n in enumerate(NAMES)])
    pairs = [(NAMES[0], NAMES[1]), (NAMES[1], NAMES[2]), (NAMES[3], NAMES[5]), (NAMES[4], NAMES[3])]
    layout.pairs(split).write_text("from,to\n" + "".join(f"{a},{b}\n" for a, b in pairs))
    return layout


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time (to prove nothing is written)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def to_image_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
