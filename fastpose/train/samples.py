"""Sample grids: one row per fixed test pair, columns source | source pose | target pose |
generated | target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fastpose.pose import LIMBS, NUM_KEYPOINTS

# One colour per joint (hue wheel), RGB in [0, 1].
_COLOURS = torch.tensor([[0.5 + 0.5 * np.cos(2 * np.pi * (i / NUM_KEYPOINTS) + s) for s in (0, 2.1, 4.2)]
                         for i in range(NUM_KEYPOINTS)], dtype=torch.float32)


def render_pose(keypoints: Tensor, size: tuple[int, int], radius: float = 2.0) -> Tensor:
    """Draw a skeleton: keypoints ``[N, 18, 2]`` (y, x; -1 missing) -> RGB ``[N, 3, H, W]`` in
    [-1, 1] on black (limbs grey, joints coloured)."""
    n = keypoints.shape[0]
    h, w = size
    yy = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    img = torch.zeros(n, 3, h, w)
    kp = keypoints.float().cpu()
    valid = (kp >= 0).all(-1)  # [N, 18]
    for a, b in LIMBS:
        ok = valid[:, a] & valid[:, b]
        if not ok.any():
            continue
        pa, pb = kp[:, a].view(n, 2, 1, 1), kp[:, b].view(n, 2, 1, 1)
        d = pb - pa
        len2 = (d ** 2).sum(1).clamp_min(1e-6)
        t = (((yy - pa[:, 0]) * d[:, 0] + (xx - pa[:, 1]) * d[:, 1]) / len2).clamp(0, 1)
        dist2 = (yy - pa[:, 0] - t * d[:, 0]) ** 2 + (xx - pa[:, 1] - t * d[:, 1]) ** 2
        on = (dist2 <= 1.0) & ok.view(n, 1, 1)
        img = torch.where(on.unsqueeze(1), torch.full_like(img, 0.5), img)
    for j in range(NUM_KEYPOINTS):
        p = kp[:, j].view(n, 2, 1, 1)
        on = ((yy - p[:, 0]) ** 2 + (xx - p[:, 1]) ** 2 <= radius ** 2) & valid[:, j].view(n, 1, 1)
        img = torch.where(on.unsqueeze(1), _COLOURS[j].view(1, 3, 1, 1).expand_as(img), img)
    return img * 2 - 1


def make_grid(batch: dict, generated: Tensor) -> Tensor:
    """The grid image ``[3, N*H, 5*W]`` in [0, 1]."""
    src, tgt = batch["source_image"].float().cpu(), batch["target_image"].float().cpu()
    size = tuple(src.shape[-2:])
    cols = [src, render_pose(batch["source_keypoints"], size), render_pose(batch["target_keypoints"], size),
            generated.float().cpu(), tgt]
    rows = torch.cat(cols, dim=3)  # [N, 3, H, 5W]
    return ((torch.cat(list(rows), dim=1) + 1) * 0.5).clamp(0, 1)


def save_image(img: Tensor, path: str | Path) -> None:
    """Save ``[3, H, W]`` in [0, 1] as an 8-bit PNG/JPEG (by extension)."""
    from PIL import Image
    arr = (img.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def save_grid(batch: dict, generated: Tensor, path: str | Path) -> None:
    save_image(make_grid(batch, generated), path)
