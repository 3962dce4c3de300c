"""``python -m fastpose.evaluate``: the papers' metrics (the registry of :mod:`fastpose.metrics`)
on held-out test pairs, printed as the papers' table with the copy-source baseline and real data.

What is scored:

* ``--run DIR`` / ``--checkpoint FILE``: a trained model generates the test pairs of its run's
  data (or ``--data``); its outputs are quantised to 8 bits as saving them would, so scores
  equal those of the saved images;
* ``--generated DIR --data market:DIR|deepfashion:DIR|synthetic``: a folder of images generated
  by any codebase, matched to the dataset's test pairs by file name
  (:mod:`fastpose.metrics.folder`: ``<from>___<to>.png`` or PATN's ``<from>___<to>_vis.png``
  strips with ``--panel -1``).

Rows: ``model`` (the scored images), ``copy_source`` (the source image offered as the generated
target, the floor a model must beat), ``real`` (the target itself). Metrics whose weights or
dependencies are missing are reported as unavailable, with the file and where it was looked for;
they are never computed with random weights. The trainer uses :func:`evaluate_model`,
:func:`format_table`, :func:`available_metrics` and :func:`metric_encodings` for the metrics it
prints at the end of a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from fastpose.metrics import (METRICS, MetricOptions, available_metrics, evaluate_batches,
                              evaluate_folder, from_pair_batch, list_metrics, metric_encodings)
from fastpose.metrics.folder import save_generated
from fastpose.metrics.pose_estimator import POSE_ESTIMATORS
from fastpose.metrics.report import LIBRARY_ROWS, format_report, report_dict
from fastpose.metrics.table import DATASET_COLUMNS, default_metrics

__all__ = ["TRAINING_METRICS", "available_metrics", "evaluate_model", "format_table", "main",
           "metric_encodings", "parse_metric_names"]

# What the trainer prints at the end of a run (cheap, no pretrained networks).
TRAINING_METRICS = ("ssim", "mask_ssim", "pssim")
ROWS = tuple(LIBRARY_ROWS)  # "model", "copy_source", "real"


def format_table(result: dict, digits: int = 4) -> str:
    """The papers' table of an :func:`evaluate_model` result (or a loaded ``eval.json``)."""
    return format_report(result, digits=digits)


def parse_metric_names(text: str) -> list[str]:
    """``"ssim, fid"`` -> ``["ssim", "fid"]``; unknown names raise ValueError listing the known."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError(f"no metric named in {text!r}; known: {', '.join(list_metrics())}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; known: {', '.join(list_metrics())}")
    return names


def _library_rows(rows: Sequence[str]) -> tuple[str, ...]:
    bad = [r for r in rows if r not in LIBRARY_ROWS]
    if bad:
        raise ValueError(f"unknown rows {bad}; expected some of {list(LIBRARY_ROWS)}")
    return tuple(LIBRARY_ROWS[r] for r in rows)


@torch.no_grad()
@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode for the block, then back in the mode it had (a trainer's is training)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def evaluate_model(model, dataset: Dataset, metrics: Sequence[str] = TRAINING_METRICS,
                   pairs: int = 0, batch_size: int = 32, device: torch.device | str = "cpu",
                   impl: str = "auto", *, options: Optional[MetricOptions] = None,
                   rows: Sequence[str] = ("model", "copy_source"), table: str = "market",
                   method_name: Optional[str] = None, progress: bool = False,
                   workers: int = 0, save_dir: Optional[str | Path] = None) -> dict[str, Any]:
    """The metrics of ``model``'s images for ``pairs`` test pairs spread evenly over
    ``dataset`` (0 = all), and of the other ``rows``.

    Args:
        model: a :class:`fastpose.models.base` model (``generate(batch)`` -> [-1, 1] images).
        dataset: pair samples (:class:`fastpose.data.PairDataset`'s dicts); a
            ``target_pose_mask_pg2`` entry is used by the mask metrics (see
            :func:`metric_encodings`), else they draw the mask from the keypoints.
        metrics: registry names (:func:`fastpose.metrics.list_metrics`).
        device: where the model runs (and the metrics, unless ``options`` says otherwise).
        impl: SSIM/pSSIM kernels ("auto", "ext", "ref") when ``options`` is None.
        options: metric settings (default ``MetricOptions(device=device, impl=impl)``).
        rows: of ``"model"``, ``"copy_source"`` (the source image as the generated one),
            ``"real"`` (the target itself).
        table: ``"market"`` or ``"deepfashion"``: whose columns the table shows.
        method_name: label of the model row in the table.
        save_dir: also write the model's images there as ``<from>___<to>.png`` (needs the
            samples' ``source_name`` / ``target_name``), to score them again with
            ``--generated`` or with another codebase's scripts.

    Returns:
        :func:`fastpose.metrics.report.report_dict`'s dict: ``{"model": {metric: mean},
        "copy_source": {...}, "pairs": n, "unavailable": {...}, ...}`` (JSON-ready).
    """
    from fastpose.train.data import collate, spread_indices

    names = list(dict.fromkeys(metrics))
    metric_encodings(names)  # unknown names fail before any work
    options = options or MetricOptions(device=device, impl=impl)
    if pairs and pairs < len(dataset):
        dataset = Subset(dataset, spread_indices(len(dataset), pairs))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                        num_workers=workers)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc="evaluate", leave=False)

    def batches():
        for batch in loader:
            batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            scored = from_pair_batch(batch, model.generate(batch))
            if save_dir is not None:
                if "source_name" not in batch or "target_name" not in batch:
                    raise ValueError("save_dir: the dataset's samples carry no source_name / "
                                     "target_name to name the files by")
                save_generated(save_dir, batch["source_name"], batch["target_name"],
                               scored.generated)
            yield scored

    with eval_mode(model):
        results = evaluate_batches(batches(), names, options, rows=_library_rows(rows))
    return report_dict(results, pairs=len(dataset), dataset=table, method_name=method_name)


# --- the command line --------------------------------------------------------------------------

# flag -> MetricOptions field holding a weight file's path
WEIGHT_FLAGS = {"--fid-inception": "fid_inception_weights",
                "--inception-v3": "inception_v3_weights", "--alexnet": "alexnet_weights",
                "--vgg16": "vgg16_weights", "--lpips-dir": "lpips_lin_weights"}


def table_dataset(spec: str, synthetic_preset: str = "market") -> str:
    """Whose table columns a data spec gets: deepfashion or market (also for synthetic / test
    data shaped like Market)."""
    kind = spec.split(":", 1)[0]
    if kind == "synthetic":
        return synthetic_preset if synthetic_preset in DATASET_COLUMNS else "market"
    return kind if kind in DATASET_COLUMNS else "market"


def dataset_folder(spec: str) -> tuple[str, Path]:
    """(preset, folder) of ``market:DIR``, ``deepfashion:DIR`` or ``synthetic`` (the cached
    synthetic Market-style set, generated on first use)."""
    kind, _, root = spec.partition(":")
    if kind == "synthetic":
        from fastpose.data.synthetic import ensure_synthetic
        return "market", ensure_synthetic(preset="market")
    if kind not in DATASET_COLUMNS or not root:
        raise ValueError(f"--data must be market:DIR, deepfashion:DIR or synthetic, got {spec!r}")
    return kind, Path(root)


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 128x64, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"image size must be positive, got {text!r}")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastpose.evaluate",
        description="The papers' metrics (SSIM, IS, mask-SSIM, mask-IS, pSSIM, FID, LPIPS, PCKh) "
                    "of a trained model or of a folder of generated images, on the test pairs, "
                    "beside the copy-source baseline and real data.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help="run directory (uses checkpoints/latest.pt)")
    src.add_argument("--checkpoint", help="checkpoint file")
    src.add_argument("--generated", help="folder of generated images <from>___<to>[_vis].png "
                                         "(needs --data)")
    p.add_argument("--data", default=None,
                   help="market:DIR | deepfashion:DIR | synthetic (with --run: overrides the "
                        "run's data)")
    p.add_argument("--metrics", default=None,
                   help="comma list (default: the dataset's table columns); --list-metrics")
    p.add_argument("--list-metrics", action="store_true", help="list the metrics and exit")
    p.add_argument("--rows", default=",".join(ROWS),
                   help="comma list of model, copy_source, real (default: all)")
    p.add_argument("--pairs", type=int, default=0,
                   help="number of test pairs (0 = all); a model's are spread evenly over the "
                        "test set, a folder's are its first ones")
    p.add_argument("--name", default=None, help="label of the scored row in the table")
    p.add_argument("--save-generated", default=None, metavar="DIR",
                   help="with --run/--checkpoint: also save the model's images as "
                        "DIR/<from>___<to>.png (score them again with --generated)")
    conv = p.add_argument_group("the papers' conventions")
    conv.add_argument("--paper", action="store_true",
                      help="PATN's published scripts: --ssim-range generated, and for "
                           "DeepFashion --white-border 40")
    conv.add_argument("--ssim-range", choices=("fixed", "generated"), default=None,
                      help="SSIM data range: 255 (fixed, default) or each generated image's "
                           "max - min (PATN's script)")
    conv.add_argument("--white-border", type=int, default=None,
                      help="white columns added on both sides before SSIM and IS (PATN's "
                           "DeepFashion: 40, 176 -> 256 wide)")
    conv.add_argument("--pssim-empty", choices=("one", "exclude"), default="one",
                      help="pSSIM's empty parts: scored 1 as published, or excluded")
    conv.add_argument("--inception", choices=("fid", "torchvision"), default="fid",
                      help="IS network: the FID Inception (as the papers) or torchvision's")
    conv.add_argument("--is-splits", type=int, default=10)
    conv.add_argument("--pckh-reference", choices=("annotations", "detected"),
                      default="annotations")
    conv.add_argument("--pose-estimator", default="mediapipe", choices=sorted(POSE_ESTIMATORS),
                      help="keypoint detector for PCKh")
    w = p.add_argument_group("weight files (else $FASTPOSE_*, then torch.hub's cache)")
    for flag in WEIGHT_FLAGS:
        w.add_argument(flag, default=None, metavar="PATH")
    g = p.add_argument_group("--generated")
    g.add_argument("--panel", type=int, default=None,
                   help="panel of strip images to score (PATN's _vis strips: -1)")
    g.add_argument("--image-size", type=parse_size, default=None, metavar="HxW",
                   help="size of the generated images when not the dataset's (the dataset is "
                        "resized to it)")
    g.add_argument("--allow-missing", action="store_true",
                   help="score the pairs that have an image when some have none")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="data loader workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--impl", default="auto", choices=("auto", "ext", "ref"))
    p.add_argument("--digits", type=int, default=4, help="decimals in the table")
    p.add_argument("--json", default=None,
                   help="write the results as JSON (default with --run: <run>/eval.json)")
    return p


def metric_options(args: argparse.Namespace, dataset: str, device: torch.device) -> MetricOptions:
    base = MetricOptions.paper(dataset) if args.paper else MetricOptions()
    weights = {field: getattr(args, flag[2:].replace("-", "_"))
               for flag, field in WEIGHT_FLAGS.items()}
    return replace(base, device=device, impl=args.impl, pssim_empty=args.pssim_empty,
                   inception=args.inception, is_splits=args.is_splits,
                   pckh_reference=args.pckh_reference, pose_estimator=args.pose_estimator,
                   ssim_data_range=args.ssim_range or base.ssim_data_range,
                   white_border=(base.white_border if args.white_border is None
                                 else args.white_border),
                   **{k: v for k, v in weights.items() if v is not None})


def list_metrics_text() -> str:
    width = max(map(len, METRICS))
    return "\n".join(f"{n.ljust(width)}  {'↑' if METRICS[n].higher_is_better else '↓'}"
                     f"  {METRICS[n].description}" for n in list_metrics())


def add_model_metrics(model, result: dict, dataset: Dataset, pairs: int, batch_size: int,
                      device) -> dict:
    """Merge a model's own held-out metrics into ``result`` (e.g. SPGNet's ``parsing_acc``).

    Models may define ``extra_metrics(dataset, pairs, batch_size, device) -> {row: {name: value}}``
    (rows ``model`` / ``copy_source``); the table prints them after the requested metrics.
    """
    extra = getattr(model, "extra_metrics", None)
    if extra is None:
        return result
    # In eval mode like evaluate_model: a trainer's model is in train mode, and BatchNorm would
    # otherwise normalise with the test batches' statistics (and update its running statistics).
    with eval_mode(model), torch.no_grad():
        values = extra(dataset, pairs, batch_size, device)
    for who, vals in values.items():
        result.setdefault(who, {}).update(vals)
    return result


def _score_model(args, rows: Sequence[str]) -> tuple[dict, Optional[Path]]:
    from fastpose.train.restore import load_model_for_inference, run_data_for

    model, cfg, ckpt = load_model_for_inference(args.run or args.checkpoint, device=args.device,
                                                impl=args.impl)
    dataset = table_dataset(args.data or cfg.data, cfg.synthetic_preset)
    names = parse_metric_names(args.metrics) if args.metrics else default_metrics(dataset)
    bundle = run_data_for(cfg, model, metric_encodings(names), data=args.data)
    device = next(model.parameters()).device
    result = evaluate_model(model, bundle.test, names, args.pairs, args.batch_size, device,
                            args.impl, options=metric_options(args, dataset, device), rows=rows,
                            table=dataset, method_name=args.name or
                            f"{cfg.model} (step {ckpt['step']})", progress=True,
                            workers=args.workers, save_dir=args.save_generated)
    add_model_metrics(model, result, bundle.test, args.pairs, args.batch_size, device)
    result.update(checkpoint=ckpt["path"], step=ckpt["step"], model_name=cfg.model,
                  data=args.data or cfg.data)
    ckpt_dir = Path(ckpt["path"]).parent
    run_dir = ckpt_dir.parent if ckpt_dir.name == "checkpoints" else ckpt_dir
    return result, run_dir / "eval.json"


def _score_folder(args, rows: Sequence[str]) -> tuple[dict, Optional[Path]]:
    from fastpose.train.restore import pick_device

    if not args.data:
        raise ValueError("--generated needs --data market:DIR, deepfashion:DIR or synthetic "
                         "(the test pairs the images were generated for)")
    dataset, root = dataset_folder(args.data)
    names = parse_metric_names(args.metrics) if args.metrics else default_metrics(dataset)
    report = evaluate_folder(args.generated, root, dataset=dataset, metrics=names,
                             options=metric_options(args, dataset, pick_device(args.device)),
                             rows=_library_rows(rows), panel=args.panel,
                             image_size=args.image_size, batch_size=args.batch_size,
                             num_workers=args.workers, limit=args.pairs or None,
                             allow_missing=args.allow_missing, progress=True)
    result = report.to_dict(args.name or Path(args.generated).name)
    result.update(generated=str(args.generated), data=args.data)
    return result, None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_metrics:
        print(list_metrics_text())
        return 0
    if not (args.run or args.checkpoint or args.generated):
        parser.error("one of --run, --checkpoint or --generated is required")
    if args.generated and args.save_generated:
        parser.error("--save-generated goes with --run or --checkpoint")

    from fastpose.data.errors import DataError
    from fastpose.metrics.weights import MetricUnavailable
    from fastpose.train.checkpoint import CheckpointError
    try:
        rows = [r.strip() for r in args.rows.split(",") if r.strip()]
        _library_rows(rows)
        if args.metrics:
            parse_metric_names(args.metrics)  # fail before loading anything
        score = _score_folder if args.generated else _score_model
        result, default_json = score(args, rows)
    except (CheckpointError, DataError, MetricUnavailable, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result, digits=args.digits))
    out = Path(args.json) if args.json else default_json
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
