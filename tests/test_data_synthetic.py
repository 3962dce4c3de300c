"""The synthetic people generator: layout, CSV formats, determinism, splits, label agreement."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastpose.data.cihp import CIHP_INDEX, NUM_CIHP_LABELS
from fastpose.data.layout import SPLITS, Layout
from fastpose.data.synthetic import SyntheticConfig, ensure_synthetic, generate, is_complete
from fastpose.data.synthetic import writer as writer_mod
from fastpose.data.synthetic.__main__ import main as cli_main
from fastpose.data.synthetic.appearance import sample_identity
from fastpose.data.synthetic.kinematics import POSE_FAMILIES, build_skeleton, yaw_basis
from fastpose.data.synthetic.render import Camera, render_person
from fastpose.pose.openpose import KEYPOINT_INDEX, NUM_KEYPOINTS

TINY = dict(train_ids=4, test_ids=2, images_per_id=4, contact_ids=3)
KP = KEYPOINT_INDEX
TORSO = tuple(KP[j] for j in ("r_shoulder", "l_shoulder", "r_hip", "l_hip"))  # PATN's pair rule


def tiny(preset: str = "market", **kw) -> SyntheticConfig:
    return SyntheticConfig.for_preset(preset, **{**TINY, **kw})


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return generate(tiny(workers=1), tmp_path_factory.mktemp("syn") / "market", progress=False)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def read_annotations(path: Path) -> dict[str, np.ndarray]:
    """Parse an annotation CSV with plain csv/json, checking its format on the way."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=":"))
    assert rows[0] == ["name", "keypoints_y", "keypoints_x"]
    out = {}
    for row in rows[1:]:
        assert len(row) == 3, row
        ys, xs = json.loads(row[1]), json.loads(row[2])
        assert len(ys) == len(xs) == NUM_KEYPOINTS
        assert all(isinstance(v, int) for v in ys + xs)
        out[row[0]] = np.stack([ys, xs], 1)
    return out


def read_pairs(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["from", "to"]
    assert all(len(r) == 2 for r in rows[1:])
    return [tuple(r) for r in rows[1:]]


def test_layout_and_formats(market):
    layout = Layout.for_preset(market, "market")
    for split in SPLITS:
        ann = read_annotations(layout.annotations(split))
        n_ids = TINY["train_ids"] if split == "train" else TINY["test_ids"]
        assert len(ann) == n_ids * TINY["images_per_id"]
        assert sorted(p.name for p in layout.images(split).iterdir()) == sorted(ann)
        for name, kps in ann.items():
            img = Image.open(layout.images(split) / name)
            assert img.mode == "RGB" and img.size == (64, 128)
            parsing = Image.open(layout.parsing(split, name))
            assert parsing.mode == "L" and parsing.size == (64, 128)
            assert np.asarray(parsing).max() < NUM_CIHP_LABELS
            missing = kps == -1
            assert (missing[:, 0] == missing[:, 1]).all(), name
            ok = kps[~missing[:, 0]]
            assert ((ok[:, 0] >= 0) & (ok[:, 0] < 128) & (ok[:, 1] >= 0) & (ok[:, 1] < 64)).all()
            assert not missing[:, 0].all()
    assert (market / "contact_sheet.png").is_file()
    assert Image.open(market / "contact_sheet.png").size[0] > 64 * 2 * TINY["images_per_id"]
    assert (market / "contact_sheet_annotated.png").is_file()
    assert is_complete(market)


def pid_of(name: str) -> int:
    return int(name.split("_")[0])


def test_pairs_and_disjoint_identities(market):
    layout = Layout.for_preset(market, "market")
    ids = {}
    for split in SPLITS:
        ann = read_annotations(layout.annotations(split))
        ids[split] = {pid_of(n) for n in ann}
        pairs = read_pairs(layout.pairs(split))
        assert pairs, f"no {split} pairs"
        assert len(set(pairs)) == len(pairs)
        for a, b in pairs:
            assert a != b and pid_of(a) == pid_of(b)
            for n in (a, b):
                kps = ann[n]
                assert (kps[list(TORSO), 0] >= 0).all()
        # Every eligible ordered pair is present (the documented PATN rule).
        eligible = [n for n, k in ann.items() if (k[list(TORSO), 0] >= 0).all()]
        expect = {(a, b) for a in eligible for b in eligible if a != b and pid_of(a) == pid_of(b)}
        assert set(pairs) == expect
    assert ids["train"] and ids["test"] and not ids["train"] & ids["test"]


def test_deterministic_across_runs_and_workers(market, tmp_path):
    again = generate(tiny(workers=2), tmp_path / "again", progress=False)
    a, b = files(market), files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other = generate(tiny(workers=1, seed=1), tmp_path / "other", progress=False)
    c = files(other)
    images = [k for k in a if k.startswith("train/")]
    assert all(a[k] != c.get(k) for k in images)


def _near(parsing: np.ndarray, r: int, c: int, radius: int) -> np.ndarray:
    return parsing[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1]


def test_parsing_agrees_with_keypoints(market):
    layout = Layout.for_preset(market, "market")
    stats = {"face": [0, 0], "left_arm": [0, 0], "right_arm": [0, 0], "left_shoe": [0, 0],
             "right_shoe": [0, 0]}
    joint = {"face": "nose", "left_arm": "l_wrist", "right_arm": "r_wrist", "left_shoe": "l_ankle",
             "right_shoe": "r_ankle"}
    opposite = {"left_arm": "right_arm", "right_arm": "left_arm", "left_shoe": "right_shoe",
                "right_shoe": "left_shoe"}
    for split in SPLITS:
        for name, kps in read_annotations(layout.annotations(split)).items():
            parsing = np.asarray(Image.open(layout.parsing(split, name)))
            for label, j in joint.items():
                r, c = kps[KP[j]]
                if r < 0:
                    continue
                patch = _near(parsing, r, c, 3)
                hit = (patch == CIHP_INDEX[label]).sum()
                wrong = (patch == CIHP_INDEX[opposite[label]]).sum() if label in opposite else 0
                stats[label][0] += int(hit > wrong)
                stats[label][1] += 1
    for label, (good, total) in stats.items():
        assert total > 0 and good / total >= 0.9, (label, good, total)
    assert stats["face"][0] == stats["face"][1]  # the face label is always at the nose


def _render(yaw_deg: float, seed: int = 3, family: str = "standing", background: float = 0.0):
    rng = np.random.default_rng(seed)
    ident = sample_identity(1, rng)
    skel = build_skeleton(ident.body, POSE_FAMILIES[family](rng))
    cam = Camera(basis=yaw_basis(math.radians(yaw_deg)), scale=15.0, ox=64.0, oy=122.0)
    return render_person(ident, skel, cam, np.full((128, 128, 3), background, np.float32))


@pytest.mark.parametrize("seed,family,yaw", [(0, "walking", 30.0), (3, "gesture", -100.0),
                                             (4, "standing", 170.0)])
def test_antialiasing_and_parsing_match_the_image(seed, family, yaw):
    # Bags are drawn but labelled background (CIHP has no bag class): use people without one.
    assert sample_identity(1, np.random.default_rng(seed)).bag is None
    black, parsing, kps = _render(yaw, seed, family, 0.0)
    white, parsing2, kps2 = _render(yaw, seed, family, 1.0)
    assert (parsing == parsing2).all() and (kps == kps2).all()
    # Over white minus over black = the background's share of each pixel (1 - coverage).
    uncovered = (white - black).mean(-1)
    edge = (uncovered > 0.05) & (uncovered < 0.95)
    assert edge.sum() > 60  # a 1-pixel anti-aliasing ramp along the whole silhouette
    assert ((uncovered > 0.02) & (uncovered < 0.98)).sum() < 3 * edge.sum()
    assert (parsing[uncovered > 0.5] == 0).all()  # mostly background -> labelled background
    assert (parsing[uncovered < 0.2] != 0).mean() > 0.995  # mostly body -> a body label
    assert (parsing != 0).sum() > 400


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_views_and_self_occlusion(seed):
    _, parsing, front = _render(0.0, seed)
    assert (front[:, 0] >= 0).all() or (front[[KP["l_ear"], KP["r_ear"]], 0] < 0).any()
    # Person's left appears on the image's right in a front view.
    assert front[KP["l_shoulder"], 1] > front[KP["r_shoulder"], 1]
    assert front[KP["l_hip"], 1] > front[KP["r_hip"], 1]
    assert min(front[KP[j], 0] for j in ("nose", "l_eye", "r_eye")) >= 0
    _, _, back = _render(180.0, seed)
    assert all(back[KP[j], 0] == -1 for j in ("nose", "l_eye", "r_eye"))
    assert back[KP["l_shoulder"], 1] < back[KP["r_shoulder"], 1]
    assert all(back[KP[j], 0] >= 0 for j in ("neck", "l_shoulder", "r_shoulder", "l_hip", "r_hip"))
    _, _, side = _render(90.0, seed)  # the person's right side faces the camera
    assert side[KP["r_shoulder"], 0] >= 0 and side[KP["l_shoulder"], 0] == -1
    assert side[KP["r_eye"], 0] >= 0 and side[KP["l_eye"], 0] == -1
    assert side[KP["r_ear"], 0] >= 0 and side[KP["l_ear"], 0] == -1


def test_out_of_frame_keypoints_are_missing():
    rng = np.random.default_rng(0)
    ident = sample_identity(1, rng)
    skel = build_skeleton(ident.body, POSE_FAMILIES["standing"](rng))
    cam = Camera(basis=yaw_basis(0.0), scale=15.0, ox=32.0, oy=180.0)  # feet below the frame
    _, _, kps = render_person(ident, skel, cam, np.zeros((128, 64, 3), np.float32))
    assert kps[KP["l_ankle"], 0] == -1 and kps[KP["r_ankle"], 0] == -1
    assert kps[KP["nose"], 0] >= 0


def test_deepfashion_preset(tmp_path):
    cfg = SyntheticConfig.for_preset("deepfashion", train_ids=2, test_ids=1, images_per_id=2,
                                     workers=1, contact_ids=2)
    root = generate(cfg, tmp_path / "df", progress=False)
    layout = Layout.for_preset(root, "deepfashion")
    ann = read_annotations(layout.annotations("train"))
    assert len(ann) == 4 and all(n.startswith("fashion") for n in ann)
    name = next(iter(ann))
    assert Image.open(layout.images("train") / name).size == (176, 256)
    assert layout.pairs("test").is_file()


def test_existing_folder_and_atomic_failure(market, tmp_path, monkeypatch):
    with pytest.raises(FileExistsError, match="already exists"):
        generate(tiny(workers=1), market, progress=False)
    calls = {"n": 0}
    real = writer_mod.render_sample

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("interrupted")
        return real(*args)

    monkeypatch.setattr(writer_mod, "render_sample", flaky)
    out = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(tiny(workers=1), out, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temporary folder is left


def test_bad_config():
    with pytest.raises(ValueError, match="preset"):
        SyntheticConfig(preset="lsp")
    with pytest.raises(ValueError, match="train_ids"):
        SyntheticConfig(train_ids=0)
    with pytest.raises(ValueError, match="workers"):
        SyntheticConfig(workers=0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticConfig(seed=-1)
    with pytest.raises(ValueError, match="unknown preset"):
        SyntheticConfig.for_preset("lsp")
    assert tiny().digest() == tiny(workers=2).digest() != tiny(seed=5).digest()


def test_ensure_synthetic_caches(tmp_path, monkeypatch):
    digest = tiny().digest()
    stale, live = tmp_path / f".market-{digest}.tmp-dead", tmp_path / f".market-{digest}.tmp-live"
    stale.mkdir(parents=True)
    live.mkdir()
    os.utime(stale, (1e9, 1e9))  # a killed run from long ago
    path = ensure_synthetic("market", root=tmp_path, progress=False, workers=1, **TINY)
    assert is_complete(path) and path.parent == tmp_path and path.name == f"market-{digest}"
    assert not stale.exists() and live.exists()

    def fail(*a, **k):
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr("fastpose.data.synthetic.cache.generate", fail)
    assert ensure_synthetic("market", root=tmp_path, progress=False, workers=2, **TINY) == path
    monkeypatch.setenv("FASTPOSE_CACHE", str(tmp_path / "env"))
    from fastpose.data.synthetic import cache_root
    assert cache_root() == tmp_path / "env" / "synthetic"


def test_cli(tmp_path, capsys):
    args = ["--out", str(tmp_path / "cli"), "--preset", "market", "--train-ids", "2",
            "--test-ids", "1", "--images-per-id", "2", "--workers", "1", "--no-progress"]
    assert cli_main(args) == 0
    assert "train: 2 ids, 4 images" in capsys.readouterr().out
    assert cli_main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite"]) == 0
