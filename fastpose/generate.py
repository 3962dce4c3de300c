"""``python -m fastpose.generate --checkpoint C --source IMG --source-pose KP --target-pose KP --out IMG``

Generates the person of the source image in the target pose with a trained model.

KP is one of:
- a JSON file or inline JSON: 18 ``[y, x]`` pairs (OpenPose-18 order, -1 = missing), or an object
  with ``keypoints_y`` and ``keypoints_x`` lists (PATN's columns);
- ``ANNOTATION_CSV:IMAGE_NAME``: the row of that image in a PATN annotation CSV;
- a CSV row itself, ``name:[y0, y1, ...]:[x0, x1, ...]``.

Keypoints are pixel coordinates in the source image's frame; the image is resized to the model's
size and both poses are scaled with it. Models that read the source's human parsing (SPGNet) also
need ``--source-parsing PNG``: the CIHP label map (20 labels) of the source image, resized with
nearest neighbours; the target parsing is predicted by the model.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from fastpose.pose import NUM_KEYPOINTS


class KeypointError(ValueError):
    """A keypoint argument cannot be parsed."""


def _from_lists(ys, xs, where: str) -> Tensor:
    if len(ys) != NUM_KEYPOINTS or len(xs) != NUM_KEYPOINTS:
        raise KeypointError(f"{where}: expected {NUM_KEYPOINTS} y and x values, got {len(ys)} and {len(xs)}")
    return torch.tensor([[float(y), float(x)] for y, x in zip(ys, xs)])


def _from_json(obj, where: str) -> Tensor:
    if isinstance(obj, dict):
        if "keypoints_y" in obj and "keypoints_x" in obj:
            return _from_lists(obj["keypoints_y"], obj["keypoints_x"], where)
        if "keypoints" in obj:
            obj = obj["keypoints"]
    arr = np.asarray(obj, dtype=np.float64)
    if arr.shape != (NUM_KEYPOINTS, 2):
        raise KeypointError(f"{where}: expected {NUM_KEYPOINTS} (y, x) pairs, got shape {arr.shape}")
    return torch.from_numpy(arr).float()


def _csv_row(row: str, where: str) -> Tensor:
    parts = row.strip().split(":")
    if len(parts) != 3:
        raise KeypointError(f"{where}: an annotation row is name:[ys]:[xs], got {row[:80]!r}")
    try:
        return _from_lists(json.loads(parts[1]), json.loads(parts[2]), where)
    except json.JSONDecodeError as exc:
        raise KeypointError(f"{where}: bad keypoint list ({exc})") from exc


def parse_keypoints(spec: str) -> Tensor:
    """KP argument -> ``[18, 2]`` (y, x) float tensor (see the module docstring)."""
    p = Path(spec)
    if p.is_file():
        text = p.read_text()
        try:
            return _from_json(json.loads(text), str(p))
        except json.JSONDecodeError as exc:
            raise KeypointError(f"{p} is not JSON ({exc})") from exc
    if spec.lstrip().startswith(("[", "{")):
        try:
            return _from_json(json.loads(spec), "inline keypoints")
        except json.JSONDecodeError as exc:
            raise KeypointError(f"inline keypoints are not valid JSON ({exc})") from exc
    if ":" in spec:
        path, name = spec.rsplit(":", 1)
        if Path(path).is_file():
            with open(path, newline="") as f:
                for row in csv.reader(f, delimiter=":"):
                    if row and row[0] == name:
                        return _csv_row(":".join(row), f"{path}, row {name}")
            raise KeypointError(f"{path} has no row for image {name!r}")
        if spec.count(":") == 2 and "[" in spec:
            return _csv_row(spec, "annotation row")
    raise KeypointError(f"{spec!r} is neither a JSON file, inline JSON, CSV:NAME nor an annotation row")


def load_image(path: str | Path, size: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
    """RGB image -> ``[3, H, W]`` in [-1, 1] at ``size``, and its original (H, W)."""
    from PIL import Image
    try:
        img = Image.open(path).convert("RGB")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    orig = (img.height, img.width)
    if orig != tuple(size):
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)
    return arr / 127.5 - 1, orig


def scale_keypoints(kp: Tensor, orig: tuple[int, int], size: tuple[int, int]) -> Tensor:
    s = torch.tensor([size[0] / orig[0], size[1] / orig[1]])
    return torch.where(kp < 0, torch.full_like(kp, -1.0), kp * s)


def load_parsing_map(path: str | Path, size: tuple[int, int]) -> Tensor:
    """CIHP parsing PNG -> ``[H, W]`` int64 labels at ``size`` (nearest neighbour)."""
    from PIL import Image

    from fastpose.data.images import load_parsing, parsing_to_tensor
    image = load_parsing(path)
    if (image.height, image.width) != tuple(size):
        image = image.resize((size[1], size[0]), Image.NEAREST)
    return parsing_to_tensor(image, path)


def make_sample(source: Tensor, source_kp: Tensor, target_kp: Tensor, encodings: Sequence[str],
                source_parsing: Optional[Tensor] = None) -> dict:
    """A batch of one pair with the encodings a model needs (the target image is unknown: the
    source stands in for it, models never read it in ``generate``).

    ``source_parsing`` ``[H, W]`` labels is required when ``encodings`` holds ``"parsing"``.
    """
    from fastpose.pose import encode
    from fastpose.pose.encodings.registry import ENCODINGS
    size = tuple(source.shape[-2:])
    sample = {"source_image": source, "target_image": source.clone(),
              "source_keypoints": source_kp, "target_keypoints": target_kp}
    pose_encodings = tuple(e for e in encodings if e in ENCODINGS)
    for side, kp in (("source", source_kp), ("target", target_kp)):
        for name, value in encode(kp, pose_encodings, size).items():
            sample[f"{side}_{name}"] = value
    if "parsing" in encodings:
        if source_parsing is None:
            raise ValueError("this model reads the source image's human parsing: give it with "
                             "--source-parsing PNG (CIHP labels 0-19)")
        if tuple(source_parsing.shape) != size:
            raise ValueError(f"source parsing has shape {tuple(source_parsing.shape)}, expected {size}")
        sample["source_parsing"] = source_parsing
    return {k: v.unsqueeze(0) for k, v in sample.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastpose.generate",
                                description="Generate a person in a target pose with a trained model.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory")
    p.add_argument("--source", required=True, help="source image")
    p.add_argument("--source-pose", required=True, metavar="KP", help="source keypoints (see --help)")
    p.add_argument("--target-pose", required=True, metavar="KP", help="target keypoints")
    p.add_argument("--out", required=True, help="output image (PNG/JPEG by extension)")
    p.add_argument("--source-parsing", default=None, metavar="PNG",
                   help="CIHP parsing map of the source image (models that read parsing: spgnet)")
    p.add_argument("--device", default="auto")
    p.add_argument("--impl", default="auto", choices=("auto", "ext", "ref"))
    p.add_argument("--grid", action="store_true",
                   help="write source | source pose | target pose | generated instead of the image alone")
    args = p.parse_args(argv)

    from fastpose.train.checkpoint import CheckpointError
    from fastpose.train.restore import load_model_for_inference
    from fastpose.train.samples import render_pose, save_image
    try:
        model, cfg, ckpt = load_model_for_inference(args.checkpoint, args.device, args.impl)
        size = tuple(ckpt.get("image_size") or (cfg.image_h, cfg.image_w))
        src, orig = load_image(args.source, size)
        skp = scale_keypoints(parse_keypoints(args.source_pose), orig, size)
        tkp = scale_keypoints(parse_keypoints(args.target_pose), orig, size)
        parsing = load_parsing_map(args.source_parsing, size) if args.source_parsing else None
        batch = make_sample(src, skp, tkp, model.encodings, parsing)
    except (CheckpointError, KeypointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = next(model.parameters()).device
    with torch.no_grad():
        fake = model.generate({k: v.to(device) for k, v in batch.items()}).float().cpu()[0]
    if args.grid:
        cols = [src, render_pose(skp[None], size)[0], render_pose(tkp[None], size)[0], fake]
        img = (torch.cat(cols, dim=2) + 1) * 0.5
    else:
        img = (fake + 1) * 0.5
    save_image(img, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
