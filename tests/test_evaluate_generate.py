"""python -m fastpose.evaluate and python -m fastpose.generate on a tiny trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _tiny_data import TinyPairs, tiny_pg2_config
from fastpose import evaluate, generate
from fastpose.train.data import collate
from fastpose.train.loop import train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_pg2_config(out, data="tiny", eval_pairs=-1)
    train(cfg, progress=False)
    return out / "run"


def test_ssim_metric_is_the_papers_skimage_convention():
    skm = pytest.importorskip("skimage.metrics")
    batch = collate([TinyPairs(2, 3)[i] for i in range(2)])
    fake = (batch["target_image"] + 0.3 * torch.randn(2, 3, 32, 16)).clamp(-1, 1)
    ours = evaluate.METRICS["ssim"].fn(fake, batch, {"impl": "ref"})
    for i in range(2):
        a = evaluate.to_uint8_range(fake[i]).permute(1, 2, 0).numpy().astype(np.uint8)
        b = evaluate.to_uint8_range(batch["target_image"][i]).permute(1, 2, 0).numpy().astype(np.uint8)
        ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255, channel_axis=-1)
        assert abs(float(ours[i]) - ref) < 1e-6
    # mask-SSIM multiplies both images by the target pose mask.
    m = batch["target_pose_mask_pg2"]
    masked = evaluate.METRICS["mask_ssim"].fn(fake, batch, {"impl": "ref"})
    direct = evaluate.ssim(evaluate.to_uint8_range(fake) * m, evaluate.to_uint8_range(batch["target_image"]) * m,
                           data_range=255.0, reduction="per_image", impl="ref")
    torch.testing.assert_close(masked, direct)


def test_pssim_metric_uses_target_part_masks():
    from fastpose.losses import PSSIMConfig, pssim
    from fastpose.pose import part_masks
    batch = collate([TinyPairs(2, 3)[i] for i in range(2)])
    fake = (batch["target_image"] + 0.3 * torch.randn(2, 3, 32, 16)).clamp(-1, 1)
    ours = evaluate.METRICS["pssim"].fn(fake, batch, {"impl": "ref"})
    x, y = evaluate.to_uint8_range(fake).float() / 255, evaluate.to_uint8_range(batch["target_image"]).float() / 255
    expect = pssim(x, y, part_masks(batch["target_keypoints"], (32, 16)),
                   config=PSSIMConfig(empty="one", reduction="per_image"), impl="ref")
    torch.testing.assert_close(ours.float(), expect)
    perfect = evaluate.METRICS["pssim"].fn(batch["target_image"], batch, {"impl": "ref"})
    torch.testing.assert_close(perfect, torch.ones(2, dtype=perfect.dtype))


def test_evaluate_cli_writes_json_and_table(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--run", str(tiny_run), "--pairs", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "copy source" in printed and "mask_ssim" in printed and "pssim" in printed
    res = json.loads(out.read_text())
    assert res["pairs"] == 4 and res["step"] == 4 and set(res["model"]) == {"ssim", "mask_ssim", "pssim"}
    assert 0 < res["copy_source"]["ssim"] <= 1 and 0 < res["model"]["pssim"] <= 1


def test_evaluate_cli_errors(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"junk")
    assert evaluate.main(["--checkpoint", str(bad)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main([])  # --run or --checkpoint is required


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
