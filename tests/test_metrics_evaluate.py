"""The registry, multi-row evaluation, the papers' table and scoring a folder of generated images.
Network metrics here use RANDOMLY INITIALISED networks (marked † in tables); nothing downloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastpose.metrics import (METRICS, EvalBatch, Metric, MetricOptions, MetricResult,
                              PoseEstimator, build_metric, evaluate_batches, evaluate_folder,
                              format_table, list_metrics, metric_info, register_metric,
                              ssim_per_image)
from fastpose.metrics import inception as inception_module
from fastpose.data import DataError
from fastpose.metrics.folder import pair_key


def test_registry_lists_every_metric_of_the_papers():
    assert set(list_metrics()) >= {"ssim", "mask_ssim", "pssim", "is", "mask_is", "fid", "lpips",
                                   "lpips_vgg", "pckh"}
    assert metric_info("fid").higher_is_better is False
    assert metric_info("ssim").higher_is_better is True
    with pytest.raises(KeyError, match="unknown metric 'SSIM'"):
        metric_info("SSIM")
    with pytest.raises(ValueError, match="already registered"):
        register_metric("ssim", higher_is_better=True, description="again")(lambda o: None)
    m = build_metric("ssim")
    assert isinstance(m, Metric) and m.name == "ssim"


class KeypointsFromTarget(PoseEstimator):
    def __init__(self, keypoints):
        self.keypoints = keypoints

    def __call__(self, images):
        return self.keypoints


@pytest.fixture
def pairs():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (4, 3, 48, 32), dtype=torch.uint8, generator=g)
    noise = torch.randint(-20, 21, target.shape, generator=g)
    generated = (target.int() + noise).clamp(0, 255).to(torch.uint8)
    source = torch.randint(0, 256, target.shape, dtype=torch.uint8, generator=g)
    kp = torch.stack([torch.randint(0, 48, (4, 18), generator=g),
                      torch.randint(0, 32, (4, 18), generator=g)], -1).float()
    return EvalBatch(generated, target, source=source, target_keypoints=kp)


def test_rows_share_work_and_score_what_they_should(pairs, monkeypatch):
    monkeypatch.setattr(inception_module, "INPUT_SIZE", 75)
    options = MetricOptions(random_weights_for_testing=True, is_splits=2,
                            pose_estimator=KeypointsFromTarget(pairs.target_keypoints))
    with pytest.warns(UserWarning, match="RANDOM"):
        results = evaluate_batches([pairs], ["ssim", "is", "pckh"], options,
                                   rows=("method", "copy_source", "real"))
    assert list(results) == ["method", "copy_source", "real"]
    assert results["real"]["ssim"].value == pytest.approx(1.0)
    for row, images in (("method", pairs.generated), ("copy_source", pairs.source)):
        expected = float(ssim_per_image(images, pairs.target)[0].mean())
        assert results[row]["ssim"].value == pytest.approx(expected, abs=1e-12)
    assert results["method"]["is"].random_weights and not results["method"]["ssim"].random_weights
    assert results["real"]["pckh"].value == 1.0
    table = format_table(results, "market", method_name="PATN")
    assert table.splitlines()[0] == "| | SSIM ↑ | IS ↑ | PCKh ↑ |"
    assert "| PATN |" in table and "| Copy source (baseline) |" in table
    assert "| Real data | 1.000 |" in table
    assert "†" in table and "RANDOMLY INITIALISED" in table


def test_uncomputable_metrics_become_cells_and_bad_input_raises(pairs):
    no_heads = torch.full_like(pairs.target_keypoints, -1.0)
    batch = EvalBatch(pairs.generated, pairs.target, target_keypoints=no_heads,
                      generated_keypoints=no_heads)
    results = evaluate_batches([batch], ["ssim", "pckh"], MetricOptions(pose_estimator=None))
    assert isinstance(results["method"]["ssim"], MetricResult)
    assert results["method"]["pckh"].startswith("not computed: pckh: no reference joints")
    # keypoints of the generated images are needed and cannot be detected: an error, not a cell
    with pytest.raises(ValueError, match="no pose estimator"):
        evaluate_batches([pairs], ["pckh"], MetricOptions(pose_estimator=None))
    with pytest.raises(ValueError, match="unknown row"):
        evaluate_batches([pairs], ["ssim"], rows=("fake",))


def test_format_table_orders_columns_as_the_papers():
    r = lambda v: MetricResult(v, 10)  # noqa: E731
    results = {"method": {"fid": r(20.0), "lpips_vgg": r(0.2), "ssim": r(0.31), "is": r(3.1)},
               "real": {"ssim": r(1.0), "fid": "unavailable: no weights here"}}
    market = format_table(results, "market", digits=2)
    lines = market.splitlines()
    assert lines[0] == "| | SSIM ↑ | IS ↑ | FID ↓ | lpips_vgg ↓ |"
    assert lines[2] == "| Generated | 0.31 | 3.10 | 20.00 | 0.20 |"
    assert lines[3] == "| Real data | 1.00 | – | n/a [1] | – |"
    assert lines[-1] == "[1] fid: unavailable: no weights here"
    deepfashion = format_table({"method": {"pckh": r(0.9), "lpips": r(0.2), "ssim": r(0.7)}},
                               "deepfashion")
    assert deepfashion.splitlines()[0] == "| | SSIM ↑ | LPIPS ↓ | PCKh ↑ |"
    assert format_table({"x": {"b": r(1.0), "a": r(2.0)}}).splitlines()[0] == "| | b | a |"
    with pytest.raises(ValueError, match="dataset"):
        format_table(results, "duke")


# --- a PATN-format dataset and a folder of generated images --------------------------------

H, W = 128, 64


def write_dataset(root, n_pairs=5, seed=0):
    g = np.random.default_rng(seed)
    (root / "test").mkdir(parents=True)
    names = [f"{i:04d}_c1s1_{i:06d}_01.jpg" for i in range(n_pairs + 1)]
    rows = []
    for name in names:
        Image.fromarray(g.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "test" / name)
        ys = g.integers(0, H, 18).tolist()
        xs = g.integers(0, W, 18).tolist()
        rows.append(f"{name}:{json.dumps(ys)}:{json.dumps(xs)}")
    (root / "market-annotation-test.csv").write_text("name:keypoints_y:keypoints_x\n" +
                                                     "\n".join(rows) + "\n")
    pairs = [(names[i], names[i + 1]) for i in range(n_pairs)]
    (root / "market-pairs-test.csv").write_text("from,to\n" + "".join(f"{a},{b}\n"
                                                                     for a, b in pairs))
    return pairs


def load(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def write_generated(root, dataset, pairs, strip: bool, seed=1):
    """Generated = target + noise; PATN strips [source | pose | target | pose | generated]."""
    g = np.random.default_rng(seed)
    root.mkdir()
    gens = []
    for a, b in pairs:
        tgt = np.asarray(Image.open(dataset / "test" / b).convert("RGB")).astype(int)
        gen = np.clip(tgt + g.integers(-30, 31, tgt.shape), 0, 255).astype(np.uint8)
        gens.append(torch.from_numpy(gen).permute(2, 0, 1))
        if strip:
            junk = np.zeros((H, W, 3), np.uint8)
            panels = np.concatenate([junk, junk, tgt.astype(np.uint8), junk, gen], axis=1)
            Image.fromarray(panels).save(root / f"{a}___{b}_vis.png")
        else:
            Image.fromarray(gen).save(root / f"{a[:-4]}___{b[:-4]}.png")
    return torch.stack(gens)


@pytest.mark.parametrize("strip", [True, False], ids=["patn-strips", "plain"])
def test_evaluate_folder_scores_generated_images_against_the_test_pairs(tmp_path, strip):
    pairs = write_dataset(tmp_path / "market")
    gens = write_generated(tmp_path / "gen", tmp_path / "market", pairs, strip)
    (tmp_path / "gen" / "notes.txt").write_text("ignored")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "gen" / "stray.png")
    report = evaluate_folder(tmp_path / "gen", tmp_path / "market", dataset="market",
                             metrics=["ssim"], options=MetricOptions.paper("market"),
                             panel=-1 if strip else None, batch_size=2)
    targets = torch.stack([load(tmp_path / "market" / "test" / b) for _, b in pairs])
    sources = torch.stack([load(tmp_path / "market" / "test" / a) for a, _ in pairs])
    res = report.results
    assert res["method"]["ssim"].value == pytest.approx(
        float(ssim_per_image(gens, targets, data_range="generated")[0].mean()), abs=1e-12)
    assert res["copy_source"]["ssim"].value == pytest.approx(
        float(ssim_per_image(sources, targets, data_range="generated")[0].mean()), abs=1e-12)
    assert res["real"]["ssim"].value == pytest.approx(1.0)
    assert report.pairs == 5 and report.unmatched == 1 and not report.missing
    table = report.table(method_name="ours")
    assert "| ours |" in table and "5 pairs scored; 1 files matched no test pair." in table


def test_evaluate_folder_errors_and_options(tmp_path):
    pairs = write_dataset(tmp_path / "market")
    write_generated(tmp_path / "gen", tmp_path / "market", pairs, strip=True)
    (tmp_path / "gen" / f"{pairs[0][0]}___{pairs[0][1]}_vis.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 5 test pairs have no generated image"):
        evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"], panel=-1)
    report = evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"], panel=-1,
                             allow_missing=True, limit=2, rows=("method",))
    assert report.pairs == 2 and len(report.missing) == 1 and list(report.results) == ["method"]
    with pytest.raises(ValueError, match=r"generated image is 128x320.*pass panel=-1"):
        evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"],
                        allow_missing=True)
    with pytest.raises(DataError, match=r"nowhere/market-annotation-test.csv: annotation file "
                                         r"not found"):
        evaluate_folder(tmp_path / "gen", tmp_path / "nowhere", metrics=["ssim"])
    (tmp_path / "market" / "market-pairs-test.csv").unlink()
    with pytest.raises(DataError, match=r"market-pairs-test.csv: pairs file not found"):
        evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"])


def test_pair_names_and_dataset_file_errors(tmp_path):
    """Names of generated files; the dataset's CSVs are read by fastpose.data, whose errors name
    the file and the row."""
    assert pair_key("a.jpg___b.jpg_vis.png") == ("a", "b")
    assert pair_key("a___b.png") == ("a", "b")
    assert pair_key("a_b.png") is None
    pairs = write_dataset(tmp_path / "market")
    write_generated(tmp_path / "gen", tmp_path / "market", pairs, strip=False)
    bad = tmp_path / "market" / "market-annotation-test.csv"
    rows = bad.read_text().splitlines()
    bad.write_text("\n".join(rows[:1] + ["x.jpg:[1, 2]:[3, 4]"] + rows[1:]) + "\n")
    with pytest.raises(DataError, match=r"market-annotation-test.csv:2: image 'x.jpg': "
                                        r"keypoints_y has 2 values, expected 18"):
        evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"])
    bad.write_text("name,keypoints\n")
    with pytest.raises(DataError, match=r"market-annotation-test.csv:1: wrong columns "
                                        r"\['name,keypoints'\]; expected"):
        evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"])
    bad.write_text("\n".join(rows) + "\n")
    pairs_csv = tmp_path / "market" / "market-pairs-test.csv"
    pairs_csv.write_text(pairs_csv.read_text() + "nobody.jpg,x.jpg\n")
    with pytest.raises(DataError, match=r"market-pairs-test.csv:7: from image 'nobody.jpg' is not "
                                        r"in .*market-annotation-test.csv"):
        evaluate_folder(tmp_path / "gen", tmp_path / "market", metrics=["ssim"])


@pytest.mark.slow
def test_every_registered_metric_runs_on_random_networks(pairs, monkeypatch):
    """One batch through everything that can be built here (mask/part metrics need the pose
    masks of fastpose.pose, reported unavailable when absent)."""
    monkeypatch.setattr(inception_module, "INPUT_SIZE", 75)
    options = MetricOptions(random_weights_for_testing=True, is_splits=2,
                            pose_estimator=KeypointsFromTarget(pairs.target_keypoints))
    small = EvalBatch(pairs.generated[:, :, :, :32], pairs.target[:, :, :, :32],
                      target_keypoints=pairs.target_keypoints.clamp(max=31))
    with pytest.warns(UserWarning, match="RANDOM"):
        results = evaluate_batches([small], sorted(METRICS), options)["method"]
    for name, cell in results.items():
        if isinstance(cell, str):
            assert name in ("mask_ssim", "mask_is", "pssim") and "not available" in cell
        else:
            assert np.isfinite(cell.value), name
