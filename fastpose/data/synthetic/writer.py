"""Write a synthetic dataset in the PATN layout, atomically.

Everything is rendered into a hidden temporary folder next to the destination and renamed into
place at the very end, so an interrupted run never leaves a half dataset that looks complete;
``synthetic.json`` (the manifest) is the last file written before the rename.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import uuid
from pathlib import Path


from PIL import Image

from fastpose.data.layout import SPLITS, Layout
from fastpose.data.synthetic.config import SyntheticConfig
from fastpose.data.synthetic.contact import contact_sheets
from fastpose.data.synthetic.scene import render_sample
from fastpose.pose.openpose import KEYPOINT_INDEX

MANIFEST = "synthetic.json"
# PATN's pair rule: both shoulders and both hips visible in both images.
PAIR_JOINTS = tuple(KEYPOINT_INDEX[n] for n in ("r_shoulder", "l_shoulder", "r_hip", "l_hip"))
PNG_LEVEL = 1  # zlib level: lossless either way; 1 is ~5x faster than the default 6, files +15%


def split_ids(cfg: SyntheticConfig) -> dict[str, range]:
    """Identity numbers of each split: disjoint by construction."""
    return {"train": range(1, cfg.train_ids + 1),
            "test": range(cfg.train_ids + 1, cfg.train_ids + cfg.test_ids + 1)}


def _jobs(cfg: SyntheticConfig) -> list[tuple[str, int, int]]:
    ids = split_ids(cfg)
    return [(split, pid, k) for split in SPLITS for pid in ids[split]
            for k in range(cfg.images_per_id)]


# Worker state: set once per process by _init (fork or spawn alike).
_STATE: dict = {}


def _init(cfg: SyntheticConfig, root: str, keep: frozenset) -> None:
    _STATE.update(cfg=cfg, layout=Layout.for_preset(root, cfg.preset), keep=keep)


def _work(job: tuple[str, int, int]):
    cfg, layout = _STATE["cfg"], _STATE["layout"]
    split, pid, k = job
    s = render_sample(cfg, split, pid, k)
    Image.fromarray(s.image).save(layout.images(split) / s.name, compress_level=PNG_LEVEL)
    Image.fromarray(s.parsing).save(layout.parsing(split, s.name), compress_level=PNG_LEVEL)
    keep = pid in _STATE["keep"]
    return (split, pid, s.name, s.keypoints.tolist(),
            (s.image, s.parsing, s.keypoints) if keep else None)


def _write_annotations(path: Path, rows: list[tuple[str, list]]) -> None:
    with open(path, "w", newline="") as f:
        f.write("name:keypoints_y:keypoints_x\n")
        for name, kps in rows:
            ys = json.dumps([int(p[0]) for p in kps])
            xs = json.dumps([int(p[1]) for p in kps])
            f.write(f"{name}:{ys}:{xs}\n")


def pairs_for(rows: list[tuple[int, str, list]]) -> list[tuple[str, str]]:
    """All ordered pairs of different images of one identity in which both images show both
    shoulders and both hips (PATN's rule). ``rows`` = (identity, name, keypoints)."""
    by_id: dict[int, list[str]] = {}
    for pid, name, kps in rows:
        if all(kps[j][0] >= 0 for j in PAIR_JOINTS):
            by_id.setdefault(pid, []).append(name)
    return [(a, b) for names in by_id.values() for a in names for b in names if a != b]


def _write_pairs(path: Path, pairs: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        f.write("from,to\n")
        f.writelines(f"{a},{b}\n" for a, b in pairs)


def is_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a finished synthetic dataset (its manifest exists)."""
    return (Path(root) / MANIFEST).is_file()


def generate(cfg: SyntheticConfig, out: str | Path, *, overwrite: bool = False,
             progress: bool = True) -> Path:
    """Render ``cfg`` into the folder ``out`` and return its path.

    Raises ``FileExistsError`` when ``out`` exists (unless ``overwrite``). The result does not
    depend on ``cfg.workers``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to "
                              f"replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        _generate_into(cfg, tmp, progress)
        if out.exists():
            if not overwrite:  # someone else created it meanwhile: keep theirs
                raise FileExistsError(f"{out} appeared while generating; not replacing it")
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)  # move the old one aside first so the swap is quick
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _generate_into(cfg: SyntheticConfig, root: Path, progress: bool) -> None:
    layout = Layout.for_preset(root, cfg.preset)
    for split in SPLITS:
        layout.images(split).mkdir(parents=True)
        layout.parsing(split, "x").parent.mkdir(parents=True)
    jobs = _jobs(cfg)
    keep = frozenset(list(split_ids(cfg)["train"])[:cfg.contact_ids])
    bar = _progress(len(jobs), cfg, progress)
    results = []
    try:
        # A daemonic process (e.g. a DataLoader worker) may not start a pool: render serially.
        if cfg.workers == 1 or mp.current_process().daemon:
            _init(cfg, str(root), keep)
            for job in jobs:
                results.append(_work(job))
                bar.update(1)
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(cfg.workers, initializer=_init, initargs=(cfg, str(root), keep)) as pool:
                for r in pool.imap(_work, jobs, chunksize=16):
                    results.append(r)
                    bar.update(1)
    finally:
        bar.close()
    counts = {}
    for split in SPLITS:
        rows = [r for r in results if r[0] == split]
        _write_annotations(layout.annotations(split), [(r[2], r[3]) for r in rows])
        pairs = pairs_for([(r[1], r[2], r[3]) for r in rows])
        _write_pairs(layout.pairs(split), pairs)
        counts[split] = {"identities": len(split_ids(cfg)[split]), "images": len(rows),
                         "pairs": len(pairs)}
    kept: dict[int, list] = {}
    for r in results:
        if r[4] is not None:
            kept.setdefault(r[1], []).append(r[4])
    contact_sheets(root, [kept[p] for p in sorted(kept)], [f"id {p}" for p in sorted(kept)],
                   cfg.preset)
    manifest = {"generator": "fastpose.data.synthetic", "config": cfg.content(),
                "digest": cfg.digest(), "counts": counts, "image_format": "png"}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, cfg: SyntheticConfig, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but the generator does not need it to work
        return _NoBar()
    return tqdm(total=total, unit="img", desc=f"synthetic {cfg.preset} people")


def read_manifest(root: str | Path) -> dict:
    return json.loads((Path(root) / MANIFEST).read_text())
