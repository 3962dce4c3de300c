"""python -m fastpose.evaluate and python -m fastpose.generate on a tiny trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _tiny_data import FixedImages, TinyPairs, tiny_pg2_config
from fastpose import evaluate, generate
from fastpose.train.data import collate
from fastpose.train.loop import train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_pg2_config(out, data="tiny", eval_pairs=-1)
    train(cfg, progress=False)
    return out / "run"


def _u8(x):
    """[-1, 1] -> uint8 HWC as a saved PNG holds it, written independently of fastpose."""
    return ((x.double().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_ssim_metrics_of_a_model_are_the_papers_skimage_convention():
    skm = pytest.importorskip("skimage.metrics")
    ds = TinyPairs(3, 3)
    batch = collate([ds[i] for i in range(3)])
    fake = (batch["target_image"] + 0.3 * torch.randn(3, 3, 32, 16)).clamp(-1, 1)
    res = evaluate.evaluate_model(FixedImages(fake), ds, ["ssim", "mask_ssim"], batch_size=3,
                                  impl="ref", rows=("model", "copy_source", "real"))

    def sk(a, b):
        return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255,
                                         channel_axis=-1)

    tgt = [_u8(batch["target_image"][i]) for i in range(3)]
    for row, images in (("model", fake), ("copy_source", batch["source_image"])):
        gen = [_u8(images[i]) for i in range(3)]
        assert res[row]["ssim"] == pytest.approx(np.mean([sk(g, t) for g, t in zip(gen, tgt)]),
                                                 abs=1e-9)
        # mask-SSIM: both images times the dataset's target pose mask
        m = [batch["target_pose_mask_pg2"][i].permute(1, 2, 0).double().numpy() for i in range(3)]
        expect = np.mean([sk(g * mi, t * mi) for g, t, mi in zip(gen, tgt, m)])
        assert res[row]["mask_ssim"] == pytest.approx(expect, abs=1e-9)
    assert res["real"] == {"ssim": pytest.approx(1.0), "mask_ssim": pytest.approx(1.0)}
    assert res["pairs"] == 3 and res["metrics"] == ["ssim", "mask_ssim"]
    assert res["model"]["ssim"] > res["copy_source"]["ssim"]


def test_pssim_metric_of_a_model_uses_target_part_masks():
    from fastpose.losses import PSSIMConfig, pssim
    from fastpose.pose import part_masks
    ds = TinyPairs(2, 3)
    batch = collate([ds[i] for i in range(2)])
    fake = (batch["target_image"] + 0.3 * torch.randn(2, 3, 32, 16)).clamp(-1, 1)
    res = evaluate.evaluate_model(FixedImages(fake), ds, ["pssim"], batch_size=2, impl="ref")
    x = torch.from_numpy(np.stack([_u8(f) for f in fake])).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(np.stack([_u8(t) for t in batch["target_image"]])).permute(0, 3, 1, 2)
    expect = pssim(x, y.float() / 255, part_masks(batch["target_keypoints"], (32, 16)),
                   config=PSSIMConfig(empty="one", reduction="per_image"), impl="ref")
    assert res["model"]["pssim"] == pytest.approx(float(expect.double().mean()), abs=1e-6)
    perfect = evaluate.evaluate_model(FixedImages(batch["target_image"]), ds, ["pssim", "ssim"],
                                      batch_size=2, impl="ref")
    assert perfect["model"] == {"pssim": pytest.approx(1.0), "ssim": pytest.approx(1.0)}


def test_evaluate_cli_writes_json_and_table(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--run", str(tiny_run), "--pairs", "4", "--json", str(out),
                          "--metrics", "ssim,mask_ssim,pssim"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "| | SSIM ↑ | mask-SSIM ↑ | pSSIM ↑ |"
    assert "| pg2 (step 4) |" in printed and "| Copy source (baseline) |" in printed
    assert "| Real data | 1.0000 | 1.0000 | 1.0000 |" in printed and "4 pairs scored." in printed
    res = json.loads(out.read_text())
    assert res["pairs"] == 4 and res["step"] == 4 and set(res["model"]) == {"ssim", "mask_ssim", "pssim"}
    assert 0 < res["copy_source"]["ssim"] <= 1 and 0 < res["model"]["pssim"] <= 1
    assert res["real"]["ssim"] == pytest.approx(1.0) and "unavailable" not in res
    assert evaluate.format_table(res, digits=4) in printed


def test_evaluate_cli_errors(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"junk")
    assert evaluate.main(["--checkpoint", str(bad)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main([])  # --run, --checkpoint or --generated is required


def test_generate_cli(tiny_run, tmp_path, capsys):
    from PIL import Image
    ds = TinyPairs(1, 4)
    s = ds[0]
    src = ((s["source_image"] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(src).save(tmp_path / "src.png")
    (tmp_path / "src.json").write_text(json.dumps(s["source_keypoints"].tolist()))
    ys, xs = s["target_keypoints"][:, 0].int().tolist(), s["target_keypoints"][:, 1].int().tolist()
    (tmp_path / "ann.csv").write_text(f"name:keypoints_y:keypoints_x\nb.jpg:{json.dumps(ys)}:{json.dumps(xs)}\n")
    out = tmp_path / "out.png"
    assert generate.main(["--checkpoint", str(tiny_run), "--source", str(tmp_path / "src.png"),
                          "--source-pose", str(tmp_path / "src.json"),
                          "--target-pose", f"{tmp_path / 'ann.csv'}:b.jpg", "--out", str(out)]) == 0
    assert Image.open(out).size == (16, 32)
    # The same target pose given as a raw annotation row gives the same image.
    out2 = tmp_path / "out2.png"
    assert generate.main(["--checkpoint", str(tiny_run), "--source", str(tmp_path / "src.png"),
                          "--source-pose", str(tmp_path / "src.json"),
                          "--target-pose", f"b.jpg:{json.dumps(ys)}:{json.dumps(xs)}", "--out", str(out2),
                          "--grid"]) == 0
    grid = np.asarray(Image.open(out2))
    assert grid.shape == (32, 64, 3)
    np.testing.assert_array_equal(grid[:, 48:], np.asarray(Image.open(out)))


def test_keypoint_parsing_errors(tmp_path):
    with pytest.raises(generate.KeypointError, match="18"):
        generate.parse_keypoints("[[1, 2], [3, 4]]")
    (tmp_path / "a.csv").write_text("name:keypoints_y:keypoints_x\n")
    with pytest.raises(generate.KeypointError, match="no row for image 'z.jpg'"):
        generate.parse_keypoints(f"{tmp_path / 'a.csv'}:z.jpg")
    with pytest.raises(generate.KeypointError, match="neither"):
        generate.parse_keypoints("not keypoints")
    kp = generate.parse_keypoints(json.dumps({"keypoints_y": list(range(18)), "keypoints_x": [-1] * 18}))
    assert kp.shape == (18, 2) and kp[3, 0] == 3 and kp[0, 1] == -1


def test_numbers_added_to_a_result_are_printed_too():
    """The trainer may add a model's own held-out numbers to the rows (SPGNet's parsing
    accuracy); the table prints them after the requested metrics."""
    ds = TinyPairs(2, 3)
    res = evaluate.evaluate_model(FixedImages(collate([ds[0], ds[1]])["target_image"]), ds,
                                  ["ssim"], batch_size=2)
    res["model"]["parsing_acc"], res["copy_source"]["parsing_acc"] = 0.9, 0.75
    lines = evaluate.format_table(res, digits=2).splitlines()
    assert lines[0] == "| | SSIM ↑ | parsing_acc |"
    assert lines[2] == "| Model | 1.00 | 0.90 |" and lines[3].endswith("| 0.75 |")
