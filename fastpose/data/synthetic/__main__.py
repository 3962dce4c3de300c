"""``python -m fastpose.data.synthetic --out DIR --preset market|deepfashion [...]``."""

from __future__ import annotations

import argparse
import sys
import time

from fastpose.data.synthetic.cache import ensure_synthetic
from fastpose.data.synthetic.config import SyntheticConfig
from fastpose.data.synthetic.writer import generate, read_manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastpose.data.synthetic",
                                description="Generate the synthetic people dataset (PATN layout).")
    p.add_argument("--out", help="dataset folder to create (default: the cache folder that "
                                 "training uses, see $FASTPOSE_CACHE)")
    p.add_argument("--preset", default="market", choices=["market", "deepfashion"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-ids", type=int, help="identities in the train split")
    p.add_argument("--test-ids", type=int, help="identities in the test split")
    p.add_argument("--images-per-id", type=int, help="images of each identity")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (output does "
                                                          "not depend on it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    overrides = {k: v for k, v in dict(seed=a.seed, train_ids=a.train_ids, test_ids=a.test_ids,
                                       images_per_id=a.images_per_id, workers=a.workers).items()
                 if v is not None}
    t0 = time.perf_counter()
    try:
        if a.out is None:
            path = ensure_synthetic(a.preset, progress=not a.no_progress, **overrides)
        else:
            cfg = SyntheticConfig.for_preset(a.preset, **overrides)
            path = generate(cfg, a.out, overwrite=a.overwrite, progress=not a.no_progress)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = read_manifest(path)["counts"]
    summary = ", ".join(f"{s}: {c['identities']} ids, {c['images']} images, {c['pairs']} pairs"
                        for s, c in counts.items())
    print(f"{path} ({summary}; {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
