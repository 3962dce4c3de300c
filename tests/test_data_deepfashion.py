"""DeepFashion preparation: PATN's 176x256 crop and flat file names."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastpose.data import DataError, crop_deepfashion, crop_image, flat_name


def test_flat_name_as_patn():
    assert flat_name("MEN/Shorts/id_00003412/01_6_flat.jpg") == "fashionMENShortsid0000341201_6flat.jpg"
    assert flat_name("WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg") == \
        "fashionWOMENBlouses_Shirtsid0000000102_1front.jpg"
    with pytest.raises(ValueError, match="gender"):
        flat_name("MEN/01_6_flat.jpg")


def test_crop_is_patn_box():
    pixels = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = crop_image(Image.fromarray(pixels))
    assert out.size == (176, 256)
    assert np.array_equal(np.array(out), pixels[:, 40:216])
    with pytest.raises(ValueError, match="narrower"):
        crop_image(Image.new("RGB", (100, 256)))


def test_crop_deepfashion_folder(tmp_path):
    src, dst = tmp_path / "img", tmp_path / "fashion"
    files = {"MEN/Shorts/id_00003412/01_6_flat.jpg": "train",
             "WOMEN/Dresses/id_00000123/02_1_front.jpg": "test",
             "WOMEN/Dresses/id_00000123/03_2_side.jpg": None}
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (256, 256), (10, 20, 30)).save(src / rel)
    (tmp_path / "train.lst").write_text("fashionMENShortsid0000341201_6flat.jpg\n")
    (tmp_path / "test.lst").write_text("fashionWOMENDressesid0000012302_1front.jpg\n")
    counts = crop_deepfashion(src, dst, tmp_path / "train.lst", tmp_path / "test.lst")
    assert counts == {"train": 1, "test": 1, "unlisted": 1}
    with Image.open(dst / "train" / "fashionMENShortsid0000341201_6flat.jpg") as im:
        assert im.size == (176, 256)
    assert (dst / "test" / "fashionWOMENDressesid0000012302_1front.jpg").is_file()
    with pytest.raises(FileExistsError, match="overwrite"):
        crop_deepfashion(src, dst, tmp_path / "train.lst", tmp_path / "test.lst")
    with pytest.raises(ValueError, match="must not be inside"):
        crop_deepfashion(src, src / "out", tmp_path / "train.lst", tmp_path / "test.lst")
    with pytest.raises(DataError, match="image list not found"):
        crop_deepfashion(src, dst, tmp_path / "none.lst", tmp_path / "test.lst")
