"""python -m fastpose.evaluate end to end: a trained model (--run / --checkpoint) and a folder of
generated images (--generated --data), metric parsing, unavailable metrics, JSON output.
Nothing downloads: weight lookups point at an empty torch hub cache."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny_data import FixedImages, tiny_pg2_config
from fastpose import evaluate
from fastpose.data import PairDataset
from fastpose.metrics import ssim_per_image, to_uint8
from fastpose.metrics.weights import LPIPS_LIN_ENV, WEIGHTS
from fastpose.train.loop import train
from patn_folder import NAMES, make_patn_folder

PAIRS = [(NAMES[0], NAMES[1]), (NAMES[1], NAMES[2]), (NAMES[3], NAMES[5]), (NAMES[4], NAMES[3])]
MARKET_HEADER = ("| | SSIM ↑ | IS ↑ | mask-SSIM ↑ | mask-IS ↑ | pSSIM ↑ | FID ↓ | LPIPS ↓ "
                 "| PCKh ↑ |")


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch):
    """An empty torch hub cache and no weight variables: every network metric is unavailable."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for spec in WEIGHTS.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.delenv(LPIPS_LIN_ENV, raising=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    train(tiny_pg2_config(out, data="tiny", eval_pairs=-1), progress=False)
    return out / "run"


@pytest.fixture
def market(tmp_path):
    root = tmp_path / "market"
    make_patn_folder(root, "test", parsing=False)
    return root


def targets(root, size=None):
    """uint8 sources and targets of the test pairs as the dataset reads them (resized to size)."""
    ds = PairDataset(root, split="test", image_size=size)
    batch = [ds[i] for i in range(len(ds))]
    return (to_uint8(torch.stack([s["source_image"] for s in batch])),
            to_uint8(torch.stack([s["target_image"] for s in batch])))


def write_generated(folder, root, size=None, strip=False, seed=0):
    """target + noise for every test pair; plain `<from>___<to>.png` or PATN `_vis` strips."""
    g = torch.Generator().manual_seed(seed)
    _, tgt = targets(root, size)
    gen = (tgt.int() + torch.randint(-25, 26, tgt.shape, generator=g)).clamp(0, 255).byte()
    folder.mkdir()
    for (a, b), img in zip(PAIRS, gen):
        pixels = img.permute(1, 2, 0).numpy()
        if strip:
            junk = np.zeros_like(pixels)
            strip_pixels = np.concatenate([junk, junk, pixels * 0 + 7, junk, pixels], axis=1)
            Image.fromarray(strip_pixels).save(folder / f"{a}___{b}_vis.png")
        else:
            Image.fromarray(pixels).save(folder / f"{a[:-4]}___{b[:-4]}.png")
    return gen


def test_metric_names_parse_and_unknown_names_list_the_known_ones(tiny_run, capsys):
    assert evaluate.parse_metric_names(" ssim, fid,ssim ,") == ["ssim", "fid"]
    with pytest.raises(ValueError, match="unknown metrics SSIM, psnr; known: fid, is, lpips, "
                                         "lpips_vgg, mask_is, mask_ssim, pckh, pssim, ssim"):
        evaluate.parse_metric_names("SSIM,ssim,psnr")
    with pytest.raises(ValueError, match="no metric named"):
        evaluate.parse_metric_names(" , ")
    assert evaluate.main(["--run", str(tiny_run), "--metrics", "ssim,SSIM"]) == 2
    assert "error: unknown metric SSIM; known: fid, is," in capsys.readouterr().err
    assert evaluate.main(["--run", str(tiny_run), "--rows", "model,fake"]) == 2
    assert "unknown rows ['fake']" in capsys.readouterr().err
    assert evaluate.main(["--list-metrics"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 9 and listing[0].startswith("fid ") and "↓" in listing[0]


def test_default_metrics_report_the_unavailable_ones(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--run", str(tiny_run), "--json", str(out), "--digits", "3"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == MARKET_HEADER
    model_row = next(line for line in lines if line.startswith("| pg2 (step 4) |"))
    assert model_row.count("n/a [1]") == 3  # IS, mask-IS, FID share the missing Inception file
    assert "| n/a [2] |" in model_row  # LPIPS
    assert ("[1] is, mask_is, fid: unavailable: fid, is, mask_is: "
            "pt_inception-2015-12-05-6726825d.pth") in printed
    assert "[2] lpips: unavailable: lpips: alexnet-owt-7be5be79.pth" in printed
    assert "fastpose never downloads weights" in printed
    res = json.loads(out.read_text())
    assert res["metrics"] == ["ssim", "is", "mask_ssim", "mask_is", "pssim", "fid", "lpips", "pckh"]
    expected_missing = {"is", "mask_is", "fid", "lpips"}
    if importlib.util.find_spec("mediapipe") is None:
        expected_missing.add("pckh")
        assert "pip install 'fastpose[pose]'" in res["unavailable"]["pckh"]
    assert set(res["unavailable"]) == expected_missing
    assert "pt_inception-2015-12-05-6726825d.pth" in res["unavailable"]["fid"]
    for row in ("model", "copy_source", "real"):
        assert set(res[row]) == {"ssim", "mask_ssim", "pssim"}
    assert res["real"]["ssim"] == pytest.approx(1.0) and res["pairs"] == 6
    assert res["dataset"] == "market" and res["data"] == "tiny" and res["step"] == 4


def test_checkpoint_file_and_rows(tiny_run, tmp_path, capsys):
    ckpt = tiny_run / "checkpoints" / "latest.pt"
    (tiny_run / "eval.json").unlink(missing_ok=True)
    assert evaluate.main(["--checkpoint", str(ckpt), "--metrics", "ssim", "--rows", "model",
                          "--pairs", "2", "--name", "mine", "--paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["| | SSIM ↑ |", "|---|---:|"] and lines[2].startswith("| mine | ")
    assert lines[3:5] == ["", "2 pairs scored."]
    res = json.loads((tiny_run / "eval.json").read_text())  # the run's folder by default
    assert list(res["model"]) == ["ssim"] and "copy_source" not in res and res["pairs"] == 2
    assert res["details"]["model"]["ssim"]["data_range"] == "generated"  # --paper


@pytest.mark.parametrize("strip", [False, True], ids=["plain", "patn-strips"])
def test_generated_folder_is_scored_against_the_test_pairs(market, tmp_path, capsys, strip):
    gen = write_generated(tmp_path / "gen", market, strip=strip)
    src, tgt = targets(market)
    out = tmp_path / "r.json"
    args = ["--generated", str(tmp_path / "gen"), "--data", f"market:{market}", "--json", str(out),
            "--metrics", "ssim,mask_ssim,pssim,fid"]
    assert evaluate.main(args + (["--panel", "-1"] if strip else [])) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "| | SSIM ↑ | mask-SSIM ↑ | pSSIM ↑ | FID ↓ |"
    assert "| gen |" in printed and "4 pairs scored." in printed
    res = json.loads(out.read_text())
    assert res["model"]["ssim"] == pytest.approx(float(ssim_per_image(gen, tgt)[0].mean()), abs=1e-12)
    assert res["copy_source"]["ssim"] == pytest.approx(float(ssim_per_image(src, tgt)[0].mean()),
                                                       abs=1e-12)
    assert res["real"] == {"ssim": pytest.approx(1.0), "mask_ssim": pytest.approx(1.0),
                           "pssim": pytest.approx(1.0)}
    assert list(res["unavailable"]) == ["fid"] and res["generated"] == str(tmp_path / "gen")
    assert res["missing_pairs"] == 0 and res["unmatched_files"] == 0


def test_generated_folder_options_and_errors(market, tmp_path, capsys, monkeypatch):
    small = (64, 32)
    gen = write_generated(tmp_path / "gen", market, size=small)
    base = ["--generated", str(tmp_path / "gen"), "--data", f"market:{market}", "--metrics", "ssim"]
    # images of another size than the dataset's: an error that says how to score them
    assert evaluate.main(base) == 2
    assert "generated image is 64x32, the dataset's images are 128x64 (to score at 64x32, pass " \
           "image_size=(64, 32), --image-size 64x32)" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert evaluate.main(base + ["--image-size", "64x32", "--json", str(out),
                                 "--ssim-range", "generated"]) == 0
    _, tgt = targets(market, small)
    res = json.loads(out.read_text())
    expect = ssim_per_image(gen, tgt, data_range="generated")[0].mean()
    assert res["model"]["ssim"] == pytest.approx(float(expect), abs=1e-12)
    # DeepFashion's white border (PATN: 40 columns each side) as a flag
    assert evaluate.main(base + ["--image-size", "64x32", "--json", str(out),
                                 "--white-border", "40"]) == 0
    expect = ssim_per_image(gen, tgt, white_border_width=40)[0].mean()
    assert json.loads(out.read_text())["model"]["ssim"] == pytest.approx(float(expect), abs=1e-12)
    # a test pair without an image: an error, or scored without it on request
    (tmp_path / "gen" / f"{PAIRS[0][0][:-4]}___{PAIRS[0][1][:-4]}.png").unlink()
    capsys.readouterr()
    assert evaluate.main(base + ["--image-size", "64x32"]) == 2
    assert "1 of 4 test pairs have no generated image" in capsys.readouterr().err
    assert evaluate.main(base + ["--image-size", "64x32", "--allow-missing"]) == 0
    assert "3 pairs scored; 1 test pairs had no generated image." in capsys.readouterr().out
    # --generated needs the dataset; a bad dataset names the file
    assert evaluate.main(base[:2] + ["--metrics", "ssim"]) == 2
    assert "--generated needs --data" in capsys.readouterr().err
    assert evaluate.main(base[:2] + ["--data", f"market:{tmp_path / 'none'}"]) == 2
    assert "market-annotation-test.csv: annotation file not found" in capsys.readouterr().err
    assert evaluate.main(base[:2] + ["--data", "duke:/x"]) == 2
    assert "--data must be market:DIR, deepfashion:DIR or synthetic" in capsys.readouterr().err
    # synthetic: the cached synthetic Market-style set
    import fastpose.data.synthetic as synthetic
    monkeypatch.setattr(synthetic, "ensure_synthetic", lambda preset: market)
    assert evaluate.main(base[:2] + ["--data", "synthetic", "--image-size", "64x32",
                                     "--allow-missing", "--metrics", "ssim"]) == 0
    assert "3 pairs scored" in capsys.readouterr().out


def test_saved_model_images_score_as_the_model(market, tmp_path, tiny_run, capsys):
    ds = PairDataset(market, split="test", encodings=("target_pose_mask_pg2",))
    clean = torch.stack([ds[i]["target_image"] for i in range(len(ds))])
    fake = (clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)))
    rows = ("model", "copy_source", "real")
    names = ["ssim", "mask_ssim", "pssim"]
    saved = tmp_path / "saved"
    res = evaluate.evaluate_model(FixedImages(fake.clamp(-1, 1)), ds, names, batch_size=len(ds),
                                  rows=rows, save_dir=saved)
    assert sorted(p.name for p in saved.iterdir()) == sorted(f"{a[:-4]}___{b[:-4]}.png"
                                                             for a, b in PAIRS)
    out = tmp_path / "folder.json"
    assert evaluate.main(["--generated", str(saved), "--data", f"market:{market}",
                          "--metrics", ",".join(names), "--json", str(out)]) == 0
    folder = json.loads(out.read_text())
    for row in rows:
        assert folder[row] == pytest.approx(res[row], abs=1e-12)
    # the tiny test data has no file names to save under
    capsys.readouterr()
    assert evaluate.main(["--run", str(tiny_run), "--metrics", "ssim",
                          "--save-generated", str(tmp_path / "x")]) == 2
    assert "carry no source_name" in capsys.readouterr().err


def test_deepfashion_folder_gets_its_columns_and_the_papers_white_border(tmp_path, capsys):
    from fastpose.data.layout import Layout
    from patn_folder import pose_for, write_annotation_csv
    layout = Layout.for_preset(tmp_path / "df", "deepfashion")
    layout.images("test").mkdir(parents=True)
    names = [f"fashionWOMENBlousesid{i:08d}_1front.jpg" for i in range(3)]
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (256, 176, 3), dtype=np.uint8)).save(
            layout.images("test") / name)
    write_annotation_csv(layout.annotations("test"), [(n, pose_for(i)) for i, n in enumerate(names)])
    layout.pairs("test").write_text(f"from,to\n{names[0]},{names[1]}\n{names[1]},{names[2]}\n")
    ds = PairDataset(layout.root, preset="deepfashion", split="test")
    tgt = to_uint8(torch.stack([ds[i]["target_image"] for i in range(2)]))
    gen = (tgt.int() + torch.randint(-25, 26, tgt.shape, generator=torch.Generator().manual_seed(1)))
    gen = gen.clamp(0, 255).byte()
    (tmp_path / "gen").mkdir()
    for (a, b), img in zip(ds.pairs, gen):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "gen" / f"{a}___{b}.png")
    out = tmp_path / "df.json"
    assert evaluate.main(["--generated", str(tmp_path / "gen"), "--data", f"deepfashion:{layout.root}",
                          "--paper", "--json", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "| | SSIM ↑ | IS ↑ | FID ↓ | LPIPS ↓ | PCKh ↑ |"
    res = json.loads(out.read_text())
    # PATN's getMetrics_fashion.py: 40 white columns each side (176 -> 256), range from the image
    expect = ssim_per_image(gen, tgt, data_range="generated", white_border_width=40)[0].mean()
    assert res["model"]["ssim"] == pytest.approx(float(expect), abs=1e-12)
    assert res["details"]["model"]["ssim"] == {"data_range": "generated", "white_border": 40}
    assert "is" in res["unavailable"] and res["dataset"] == "deepfashion"
