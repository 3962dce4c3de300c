"""``python -m fastpose.experiments.loss_study``: the loss study of Shi et al. 2020 (Tables 1-4) on
the synthetic people set.

Trains PATN (the ``synthetic`` preset of :mod:`fastpose.models.patn`) once per loss combination of
the paper's Tables 1-4 (12 distinct combinations, one seed each, same data and initial seed),
evaluates SSIM, mask-SSIM and pSSIM on held-out pairs with the training loop's own evaluation
(:func:`fastpose.evaluate.evaluate_model`), and writes ``study.md`` (the tables, the copy-the-source
row, the paper's Market-1501 values beside ours, and the paper's claimed directions checked on our
numbers) and ``study.json`` into ``--out``. IS, mask-IS and DS are not computed (no Inception / SSD
weights offline).

The schedule is CPU-sized through ``--steps`` (total iterations per configuration, split 5:2 into
constant and linearly decaying lr as the authors' 500 + 200 epochs) and ``--batch-size``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from fastpose.models.patn_losses import loss_label, parse_loss_names

# The paper's tables: their rows, as loss combinations (labels parse with parse_loss_names).
TABLES: dict[str, tuple[str, ...]] = {
    "Table 1 (single losses)": ("L1", "Per", "GAN", "SSIM"),
    "Table 2 (GAN + one loss)": ("GAN+L1", "GAN+Per", "GAN+SSIM"),
    "Table 3 (with / without pSSIM)": ("GAN+L1", "GAN+L1+pSSIM", "GAN+Per", "GAN+Per+pSSIM",
                                       "GAN+Per+L1+pSSIM"),
    "Table 4 (SSIM-type losses)": ("GAN+Per+SSIM", "GAN+Per+pSSIM*", "GAN+Per+pSSIM"),
}
# The paper's Market-1501 values (SSIM, mask-SSIM, pSSIM) of those rows.
PAPER: dict[str, tuple[float, float, float]] = {
    "L1": (0.327, 0.822, 0.676), "Per": (0.311, 0.820, 0.668), "GAN": (0.192, 0.731, 0.508),
    "SSIM": (0.352, 0.825, 0.678), "GAN+L1": (0.275, 0.794, 0.611), "GAN+Per": (0.299, 0.804, 0.619),
    "GAN+SSIM": (0.308, 0.807, 0.626), "GAN+L1+pSSIM": (0.291, 0.799, 0.630),
    "GAN+Per+pSSIM": (0.312, 0.810, 0.642), "GAN+Per+L1+pSSIM": (0.306, 0.807, 0.633),
    "GAN+Per+SSIM": (0.307, 0.808, 0.627), "GAN+Per+pSSIM*": (0.303, 0.807, 0.636),
}
METRICS = ("ssim", "mask_ssim", "pssim")
# Directions the paper reports: (better, worse, metric) = "better scores higher than worse".
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("SSIM", "L1", "ssim"), ("SSIM", "Per", "ssim"), ("L1", "GAN", "ssim"),  # Table 1
    ("GAN+SSIM", "GAN+L1", "ssim"), ("GAN+SSIM", "GAN+Per", "ssim"),  # Table 2
    ("GAN+L1+pSSIM", "GAN+L1", "ssim"), ("GAN+L1+pSSIM", "GAN+L1", "pssim"),  # Table 3
    ("GAN+Per+pSSIM", "GAN+Per", "ssim"), ("GAN+Per+pSSIM", "GAN+Per", "mask_ssim"),
    ("GAN+Per+pSSIM", "GAN+Per", "pssim"), ("GAN+Per+pSSIM", "GAN+Per+L1+pSSIM", "pssim"),
    ("GAN+Per", "GAN+L1", "ssim"),
    ("GAN+Per+pSSIM", "GAN+Per+SSIM", "pssim"), ("GAN+Per+pSSIM", "GAN+Per+pSSIM*", "pssim"),  # Table 4
    ("GAN+Per+pSSIM", "GAN+Per+SSIM", "ssim"),
)


def combinations() -> list[str]:
    """The distinct combinations of all tables, in first-appearance order."""
    return list(dict.fromkeys(label for rows in TABLES.values() for label in rows))


def slug(label: str) -> str:
    return "-".join(parse_loss_names(label)).replace("_", "")


def run_one(label: str, args: argparse.Namespace, data) -> dict:
    """Train one combination; returns the loop's metrics dict (``model``, ``copy_source``, ...)."""
    from fastpose.train.config import apply_overrides, default_config
    from fastpose.train.loop import train
    out = Path(args.out)
    cached = out / slug(label) / "metrics.json"
    if args.reuse and cached.is_file():
        return json.loads(cached.read_text())
    cfg = default_config("patn", "synthetic")
    constant = round(args.steps * 5 / 7)
    apply_overrides(cfg, dict(
        losses=",".join(parse_loss_names(label)), constant_steps=constant, decay_steps=args.steps - constant,
        batch_size=args.batch_size, seed=args.seed, impl=args.impl, device=args.device, out=str(out),
        run_name=slug(label), eval_pairs=args.eval_pairs, sample_every=0, checkpoint_every=0,
        log_every=max(1, args.steps // 20), workers=0))
    return train(cfg, data=data, progress=False)


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown(results: dict[str, dict], args: argparse.Namespace, seconds: float) -> str:
    """The study's tables (ours beside the paper's Market-1501 values) and the claims checked."""
    copy = next(iter(results.values()))["copy_source"]
    head = ("| loss | SSIM | mask-SSIM | pSSIM | paper SSIM | paper mask-SSIM | paper pSSIM |\n"
            "|---|---|---|---|---|---|---|")
    lines = [f"PATN loss study on the synthetic set: {args.steps} steps x batch {args.batch_size} per "
             f"configuration, seed {args.seed}, {next(iter(results.values()))['pairs']} held-out pairs; "
             f"{seconds / 60:.1f} min in all. Paper columns: Market-1501 (Shi et al. 2020).", ""]
    for title, rows in TABLES.items():
        lines += [f"**{title}**", "", head]
        best = {m: max(results[r]["model"][m] for r in rows) for m in METRICS}
        for r in rows:
            vals = [results[r]["model"][m] for m in METRICS]
            cells = [f"**{v:.3f}**" if v == best[m] else f"{v:.3f}" for v, m in zip(vals, METRICS)]
            lines.append(f"| {r} | " + " | ".join(cells) + " | "
                         + " | ".join(_fmt(p) for p in PAPER[r]) + " |")
        lines.append("| copy source | " + " | ".join(f"{copy[m]:.3f}" for m in METRICS) + " | - | - | - |")
        lines.append("")
    lines += ["**The paper's directions, checked here** (a > b on the metric)", "",
              "| claim | paper | here |", "|---|---|---|"]
    agree = 0
    for better, worse, m in CLAIMS:
        idx = METRICS.index(m)
        paper = PAPER[better][idx] - PAPER[worse][idx]
        ours = results[better]["model"][m] - results[worse]["model"][m]
        same = (paper > 0) == (ours > 0)
        agree += same
        verdict = "(agrees)" if same else "(differs)"
        lines.append(f"| {better} > {worse} on {m} | {paper:+.3f} | {ours:+.3f} {verdict} |")
    lines += ["", f"{agree} of {len(CLAIMS)} directions agree."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastpose.experiments.loss_study",
                                description="Train PATN with each loss combination of Shi et al.'s "
                                            "Tables 1-4 on the synthetic set and tabulate SSIM, "
                                            "mask-SSIM and pSSIM.")
    p.add_argument("--steps", type=int, default=180,
                   help="iterations per configuration (5:2 constant / decaying lr)")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    p.add_argument("--eval-pairs", type=int, default=256, help="held-out pairs for the metrics (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of every configuration")
    p.add_argument("--impl", default="auto", choices=("auto", "ext", "ref"), help="fastpose ops")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--only", default="", help="comma list of labels to run (e.g. GAN+Per,GAN+Per+pSSIM); "
                                              "default all 12; the tables need all")
    p.add_argument("--out", default="runs/loss-study", help="folder of the runs, study.md and study.json")
    p.add_argument("--reuse", action="store_true", help="reuse runs that already have metrics.json")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 2 or args.batch_size < 1:
        print("error: --steps must be >= 2 and --batch-size >= 1", file=sys.stderr)
        return 2
    labels = combinations()
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        canon = {loss_label(parse_loss_names(lbl)): lbl for lbl in labels}
        try:
            chosen = [loss_label(parse_loss_names(w)) for w in wanted]
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        unknown = [c for c in chosen if c not in canon]
        if unknown:
            print(f"error: {unknown} are not rows of the paper's tables: {labels}", file=sys.stderr)
            return 2
        labels = [canon[c] for c in chosen]
    from fastpose.evaluate import available_metrics, metric_encodings
    from fastpose.models import get_model
    from fastpose.train.config import default_config
    from fastpose.train.data import build_data
    cfg = default_config("patn", "synthetic")
    enc = get_model("patn").encodings_for(cfg.model_cfg) + metric_encodings(available_metrics(METRICS))
    data = build_data("synthetic", None, tuple(dict.fromkeys(enc)), (cfg.image_h, cfg.image_w),
                      synthetic_preset=cfg.synthetic_preset, progress=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    for i, label in enumerate(labels):
        t = time.perf_counter()
        results[label] = run_one(label, args, data)
        vals = "  ".join(f"{m} {results[label]['model'][m]:.4f}" for m in METRICS)
        print(f"[{i + 1}/{len(labels)}] {label:18s} {vals}  ({time.perf_counter() - t:.0f} s)", flush=True)
    seconds = time.perf_counter() - t0
    (out / "study.json").write_text(json.dumps({"args": vars(args), "seconds": seconds, "results": results},
                                               indent=2) + "\n")
    complete = set(labels) == set(combinations())  # the tables need every row
    if complete:
        text = markdown(results, args, seconds)
        (out / "study.md").write_text(text)
        print(text)
    print(f"wrote {out / 'study.json'}" + (f" and {out / 'study.md'}" if complete else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
