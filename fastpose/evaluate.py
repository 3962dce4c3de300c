"""``python -m fastpose.evaluate --run DIR`` (or ``--checkpoint FILE``): metrics on test pairs.

Metrics are a registry (``@register_metric``) of per-image scores over a batch; each declares the
pose encodings it needs. Every metric is also computed for the *copy-the-source* baseline (the
source image offered as the generated target), the floor a model must beat.

Conventions (the papers' evaluation code):
- ``ssim``: Gaussian window 11, sigma 1.5, population covariance, per channel, on images quantised
  to 8 bits and scaled to 0..255 with ``data_range=255`` (= scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255, channel_axis=-1)``). PATN's script takes ``data_range`` from the generated image
  (``gen.max() - gen.min()``); ``--ssim-range generated`` reproduces that.
- ``mask_ssim``: the same on both images multiplied by the target pose mask (PG2's mask: limbs +
  joint disks + closing).
- ``pssim``: part-based SSIM of Shi et al. (equation (9)) on [0, 1] images with the target pose's
  10 Gaussian part masks + background (computed from the target keypoints), window 7, sigma 0.8;
  an empty part scores 1 and stays in the mean, as in the published ``getPartSSIM.py``
  (``--pssim-empty exclude`` averages over visible parts only).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from fastpose.metrics.ssim import ssim_per_image
from fastpose.ops import ssim

MASK_ENCODING = "pose_mask_pg2"  # mask-SSIM's target pose mask


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Tensor, dict, dict], Tensor]  # (fake [N,3,H,W] in [-1,1], batch, opts) -> [N]
    encodings: tuple[str, ...]  # target pose encodings the metric reads from the batch
    higher_is_better: bool = True
    available: Callable[[], bool] = lambda: True  # whether its dependencies are installed/built


METRICS: dict[str, Metric] = {}


def register_metric(name: str, encodings: Sequence[str] = (), higher_is_better: bool = True,
                    available: Callable[[], bool] = lambda: True):
    """Decorator registering a per-image metric ``fn(fake, batch, opts) -> [N]``."""
    def deco(fn):
        METRICS[name] = Metric(name, fn, tuple(encodings), higher_is_better, available)
        return fn
    return deco


def available_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """The metrics of ``names`` whose dependencies are present."""
    return tuple(n for n in names if n in METRICS and METRICS[n].available())




def to_uint8_range(x: Tensor) -> Tensor:
    """[-1, 1] -> 8-bit levels 0..255 as float64 (what saved PNGs hold)."""
    return ((x.double().clamp(-1, 1) + 1) * 127.5).round()


def _paper_ssim(a: Tensor, b: Tensor, opts: dict) -> Tensor:
    """SSIM per image of 0..255 images a (generated) and b (reference), by the metrics library's
    implementation of the papers' convention (``--ssim-range generated``: per generated image
    max - min, 255 for a constant image)."""
    values, _ = ssim_per_image(a.to(torch.uint8), b.to(torch.uint8),
                               data_range=opts.get("ssim_range", "fixed"),
                               impl=opts.get("impl", "auto"))
    return values


@register_metric("ssim")
def _ssim_metric(fake: Tensor, batch: dict, opts: dict) -> Tensor:
    return _paper_ssim(to_uint8_range(fake), to_uint8_range(batch["target_image"]), opts)


@register_metric("mask_ssim", encodings=(MASK_ENCODING,))
def _mask_ssim_metric(fake: Tensor, batch: dict, opts: dict) -> Tensor:
    m = batch[f"target_{MASK_ENCODING}"].double()
    m = m.unsqueeze(1) if m.dim() == 3 else m[:, :1]
    return _paper_ssim(to_uint8_range(fake) * m, to_uint8_range(batch["target_image"]) * m, opts)


@register_metric("pssim")
def _pssim_metric(fake: Tensor, batch: dict, opts: dict) -> Tensor:
    from fastpose.losses import PSSIMConfig, pssim
    from fastpose.pose import part_masks
    x = to_uint8_range(fake).float() / 255.0
    y = to_uint8_range(batch["target_image"]).float() / 255.0
    # The published metric scores an empty part (missing joint) as 1 and keeps it in the mean.
    empty = opts.get("pssim_empty", "one")
    masks = part_masks(batch["target_keypoints"].float(), tuple(x.shape[-2:]))
    return pssim(x, y, masks, config=PSSIMConfig(empty=empty, reduction="per_image"),
                 impl=opts.get("impl", "auto")).double()


def list_metrics() -> list[str]:
    return sorted(METRICS)


def metric_encodings(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; available: {list_metrics()}")
    return tuple(dict.fromkeys(e for n in names for e in METRICS[n].encodings))


@torch.no_grad()
def evaluate_model(model, dataset: Dataset, metrics: Sequence[str] = ("ssim", "mask_ssim", "pssim"),
                   pairs: int = 0, batch_size: int = 32, device: torch.device | str = "cpu",
                   impl: str = "auto", ssim_range: str = "fixed", baseline: bool = True,
                   progress: bool = False, pssim_empty: str = "one") -> dict:
    """Mean of each metric over ``pairs`` test pairs spread evenly over the test set (0 = all),
    for the model and for the copy-the-source baseline.
    Returns ``{"model": {...}, "copy_source": {...}, "pairs": n}``."""
    from fastpose.train.data import collate, spread_indices
    metric_encodings(metrics)
    if pairs and pairs < len(dataset):
        dataset = Subset(dataset, spread_indices(len(dataset), pairs))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    opts = {"impl": impl, "ssim_range": ssim_range, "pssim_empty": pssim_empty}
    sums = {"model": {m: 0.0 for m in metrics}, "copy_source": {m: 0.0 for m in metrics}}
    n = 0
    was_training = model.training
    model.eval()
    it = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc="evaluate", leave=False)
    for batch in it:
        batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        outputs = {"model": model.generate(batch).float()}
        if baseline:
            outputs["copy_source"] = batch["source_image"].float()
        cpu = {k: v.cpu() if isinstance(v, Tensor) else v for k, v in batch.items()}
        for who, fake in outputs.items():
            for m in metrics:
                sums[who][m] += float(METRICS[m].fn(fake.cpu(), cpu, opts).sum())
        n += batch["source_image"].shape[0]
    model.train(was_training)
    result = {who: {m: s / max(n, 1) for m, s in d.items()} for who, d in sums.items()
              if who == "model" or baseline}
    result["pairs"] = n
    return result


def format_table(result: dict) -> str:
    names = list(result["model"])
    rows = [("metric", "model", "copy source")] + [
        (m, f"{result['model'][m]:.4f}",
         f"{result['copy_source'][m]:.4f}" if "copy_source" in result else "-") for m in names]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines) + f"\n({result['pairs']} test pairs)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastpose.evaluate",
                                description="Metrics of a trained model on held-out test pairs.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory (uses checkpoints/latest.pt)")
    src.add_argument("--checkpoint", help="checkpoint file")
    p.add_argument("--data", default=None, help="override the run's data (synthetic | market:DIR | deepfashion:DIR)")
    p.add_argument("--metrics", default="ssim,mask_ssim,pssim", help=f"comma list of {list_metrics()}")
    p.add_argument("--pairs", type=int, default=0,
                   help="number of test pairs, spread evenly over the test set (0 = all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--impl", default="auto", choices=("auto", "ext", "ref"))
    p.add_argument("--ssim-range", default="fixed", choices=("fixed", "generated"),
                   help="SSIM data_range: 255 (fixed) or the generated image's max-min (PATN's script)")
    p.add_argument("--pssim-empty", default="one", choices=("one", "exclude"),
                   help="pSSIM's empty parts: scored 1 as published, or excluded")
    p.add_argument("--json", default=None, help="output JSON (default: <run>/eval.json)")
    args = p.parse_args(argv)

    from fastpose.train.checkpoint import CheckpointError
    from fastpose.train.data import DataError
    from fastpose.train.restore import load_model_for_inference, run_data_for
    try:
        model, cfg, ckpt = load_model_for_inference(args.run or args.checkpoint, device=args.device,
                                                    impl=args.impl)
        metrics = [m for m in args.metrics.split(",") if m]
        bundle = run_data_for(cfg, model, metric_encodings(metrics), data=args.data)
    except (CheckpointError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = next(model.parameters()).device
    result = evaluate_model(model, bundle.test, metrics, args.pairs, args.batch_size, device,
                            args.impl, args.ssim_range, progress=True, pssim_empty=args.pssim_empty)
    result.update(checkpoint=ckpt["path"], step=ckpt["step"], model_name=cfg.model, data=cfg.data)
    print(format_table(result))
    ckpt_dir = Path(ckpt["path"]).parent
    run_dir = ckpt_dir.parent if ckpt_dir.name == "checkpoints" else ckpt_dir
    out = Path(args.json) if args.json else run_dir / "eval.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
