"""PairDataset on a tiny hand-written PATN-format folder: contents, encodings, bad data."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fastpose.data import DataError, PairDataset, available_encodings, parse_encodings
from fastpose.pose import ENCODING_CHANNELS, encode, hflip
from patn_folder import (NAMES, image_pixels, make_patn_folder, parsing_pixels, pose_for,
                         snapshot, to_image_tensor, write_annotation_csv)

ALL = ("heatmaps", "peaks", "disks", "pose_mask_pg2", "pose_mask_potgan", "distance_maps", "parsing")


@pytest.fixture
def folder(tmp_path):
    make_patn_folder(tmp_path)
    return tmp_path


def test_reads_the_folder(folder):
    ds = PairDataset(folder, "market", "train", encodings=ALL)
    assert len(ds) == 4 and ds.num_skipped == 0
    s = ds[2]
    assert s["source_name"] == NAMES[3] and s["target_name"] == NAMES[5] and s["index"] == 2
    assert torch.allclose(s["source_image"], to_image_tensor(image_pixels(3)))
    assert torch.allclose(s["target_image"], to_image_tensor(image_pixels(5)))
    assert s["source_image"].shape == (3, 128, 64) and s["source_image"].dtype == torch.float32
    assert torch.equal(s["source_keypoints"], torch.tensor(pose_for(3), dtype=torch.float32))
    assert torch.equal(s["target_parsing"], torch.from_numpy(parsing_pixels(5)).long())
    for side in ("source", "target"):
        expected = encode(s[f"{side}_keypoints"], ALL[:-1], (128, 64))
        for name, value in expected.items():
            got = s[f"{side}_{name}"]
            assert got.shape == (ENCODING_CHANNELS[name], 128, 64)
            assert torch.equal(got, value), (side, name)


def test_only_declared_encodings_are_computed(folder):
    ds = PairDataset(folder, encodings=("heatmaps", "target_pose_mask_pg2"),
                     encoding_params={"heatmaps": {"sigma": 3.0}})
    s = ds[0]
    assert set(s) == {"index", "source_name", "target_name", "source_image", "target_image",
                      "source_keypoints", "target_keypoints", "source_heatmaps", "target_heatmaps",
                      "target_pose_mask_pg2"}
    assert torch.equal(s["source_heatmaps"], encode(s["source_keypoints"], ["heatmaps"], (128, 64),
                                                    {"heatmaps": {"sigma": 3.0}})["heatmaps"])
    assert ds.channels() == {"heatmaps": 18, "pose_mask_pg2": 1}
    assert parse_encodings(["source_parsing", "parsing"]) == {"parsing": ("source", "target")}
    assert "parsing" in available_encodings()
    with pytest.raises(KeyError, match="unknown pose encoding 'heatmap'"):
        PairDataset(folder, encodings=("heatmap",))
    with pytest.raises(ValueError, match="not requested"):
        PairDataset(folder, encodings=("disks",), encoding_params={"heatmaps": {"sigma": 3.0}})


def test_target_only_parsing_needs_only_target_files(folder):
    (folder / "parsing" / "train" / NAMES[0].replace(".png", ".png")).unlink()  # a source only
    ds = PairDataset(folder, encodings=("target_parsing",))
    assert "target_parsing" in ds[0] and "source_parsing" not in ds[0]
    with pytest.raises(DataError, match="parsing map file not found"):
        PairDataset(folder, encodings=("parsing",))


def test_collates_in_a_dataloader(folder):
    ds = PairDataset(folder, encodings=("heatmaps", "parsing"))
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))
    assert batch["source_image"].shape == (3, 3, 128, 64)
    assert batch["target_heatmaps"].shape == (3, 18, 128, 64)
    assert batch["source_parsing"].shape == (3, 128, 64) and batch["source_parsing"].dtype == torch.long
    assert batch["source_name"] == [NAMES[0], NAMES[1], NAMES[3]]


def test_batched_loading_equals_one_by_one(folder):
    ds = PairDataset(folder, encodings=ALL[:-1] + ("target_parsing",))
    batch = ds.__getitems__([3, 0, 2])
    for got, i in zip(batch, [3, 0, 2]):
        single = ds[i]
        assert got.keys() == single.keys()
        for key, value in single.items():
            assert torch.equal(got[key], value) if torch.is_tensor(value) else got[key] == value
    loaded = next(iter(DataLoader(ds, batch_size=4)))
    assert torch.equal(loaded["target_distance_maps"][2], ds[2]["target_distance_maps"])


def test_flip_applies_to_both_images_and_all_encodings(folder):
    plain = PairDataset(folder, encodings=("heatmaps", "parsing"))[1]
    flipped = PairDataset(folder, encodings=("heatmaps", "parsing"), flip_prob=1.0)[1]
    for side in ("source", "target"):
        image, kp, parsing = hflip(plain[f"{side}_image"], plain[f"{side}_keypoints"],
                                   plain[f"{side}_parsing"])
        assert torch.equal(flipped[f"{side}_image"], image)
        assert torch.equal(flipped[f"{side}_keypoints"], kp)
        assert torch.equal(flipped[f"{side}_parsing"], parsing)
        assert torch.equal(flipped[f"{side}_heatmaps"],
                           encode(kp, ["heatmaps"], (128, 64))["heatmaps"])


def test_resizes_images_keypoints_and_parsing(folder):
    ds = PairDataset(folder, encodings=("disks", "parsing"), image_size=(64, 32))
    s = ds[0]
    assert s["source_image"].shape == (3, 64, 32) and s["source_parsing"].shape == (64, 32)
    assert s["source_disks"].shape == (18, 64, 32)
    kp0 = torch.tensor(pose_for(0), dtype=torch.float32)
    present = kp0[:, 0] >= 0
    assert torch.allclose(s["source_keypoints"][present], (kp0[present] + 0.5) / 2 - 0.5)
    assert (s["source_keypoints"][~present] == -1).all()


def test_parsing_face_label_lies_at_the_nose(folder):
    s = PairDataset(folder, encodings=("parsing",))[0]
    ny, nx = s["source_keypoints"][0].long().tolist()
    assert s["source_parsing"][ny, nx] == 13  # CIHP "face"


def test_never_writes_into_the_folder(folder):
    before = snapshot(folder)
    for on_error in ("raise", "skip"):
        ds = PairDataset(folder, encodings=ALL, on_error=on_error, verify_images=True, flip_prob=0.5)
        for i in range(len(ds)):
            ds[i]
    assert snapshot(folder) == before


# --- bad data -----------------------------------------------------------------------------------

def test_missing_image_names_file_and_pairs_row(folder):
    (folder / "train" / NAMES[5]).unlink()
    with pytest.raises(DataError, match=r"market-pairs-train\.csv:4: to image '0002_c4s1_000006_00"
                                        r"\.png': .*0002_c4s1_000006_00\.png: image file not found"):
        PairDataset(folder)
    ds = PairDataset(folder, on_error="skip")
    assert len(ds) == 3 and ds.num_skipped == 1
    assert ds.problems[0].line == 4 and ds.problems[0].path.endswith("market-pairs-train.csv")


def test_unreadable_image(folder, caplog):
    bad = folder / "train" / NAMES[1]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=rf"{NAMES[1]}: cannot read image"):
        PairDataset(folder, verify_images=True)
    ds = PairDataset(folder)  # not decoded at construction: fails on load
    with pytest.raises(DataError, match=rf"{NAMES[1]}: cannot read image"):
        ds[0]
    skipping = PairDataset(folder, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="fastpose.data"):
        s = skipping[0]  # pairs 0 and 1 both use the bad image: pair 2 comes back
    assert s["index"] == 2 and skipping.num_skipped_at_load == 2
    assert NAMES[1] in caplog.text
    verified = PairDataset(folder, on_error="skip", verify_images=True)
    assert len(verified) == 2 and verified.num_skipped == 2


def test_image_of_the_wrong_size(folder):
    Image.fromarray(np.zeros((100, 64, 3), np.uint8)).save(folder / "train" / NAMES[0])
    with pytest.raises(DataError, match=r"image is 100x64 \(HxW\), expected 128x64"):
        PairDataset(folder)[0]


def test_annotation_csv_with_wrong_columns(folder):
    path = folder / "market-annotation-train.csv"
    path.write_text(path.read_text().replace("name:keypoints_y:keypoints_x", "name:y:x"))
    with pytest.raises(DataError, match=r"market-annotation-train\.csv:1: wrong columns"):
        PairDataset(folder, on_error="skip")  # a wrong header is never skippable


def test_keypoint_list_of_the_wrong_length(folder, caplog):
    rows = [(n, pose_for(i)) for i, n in enumerate(NAMES)]
    rows[2] = (NAMES[2], pose_for(2)[:17])
    write_annotation_csv(folder / "market-annotation-train.csv", rows)
    with pytest.raises(DataError, match=r"market-annotation-train\.csv:4: image "
                                        r"'0001_c3s1_000003_00\.png': keypoints_y has 17 values"):
        PairDataset(folder)
    with caplog.at_level(logging.WARNING, logger="fastpose.data"):
        ds = PairDataset(folder, on_error="skip")
    # The row is skipped, and so is the pair that names the now unknown image.
    assert ds.num_skipped == 2 and len(ds) == 3
    assert "skipped 2 bad entries" in caplog.text


def test_pairs_row_naming_an_unknown_image(folder):
    path = folder / "market-pairs-train.csv"
    path.write_text(path.read_text() + "0001_c1s1_000001_00.png,nobody.png\n")
    with pytest.raises(DataError, match=r"market-pairs-train\.csv:6: to image 'nobody\.png' is not in "
                                        r".*market-annotation-train\.csv"):
        PairDataset(folder)
    assert len(PairDataset(folder, on_error="skip")) == 4


def test_pairs_csv_with_wrong_columns(folder):
    (folder / "market-pairs-train.csv").write_text("src,dst\na,b\n")
    with pytest.raises(DataError, match=r"market-pairs-train\.csv:1: wrong columns \['src', 'dst'\]"):
        PairDataset(folder)


def test_bad_parsing_labels(folder):
    Image.fromarray(np.full((128, 64), 25, np.uint8), mode="L").save(
        folder / "parsing" / "train" / NAMES[0])
    with pytest.raises(DataError, match=r"0001_c1s1_000001_00\.png: parsing label 25 is outside"):
        PairDataset(folder, encodings=("parsing",))[0]


def test_missing_files_and_bad_arguments(tmp_path, folder):
    with pytest.raises(DataError, match="annotation file not found"):
        PairDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="on_error"):
        PairDataset(folder, on_error="ignore")
    with pytest.raises(ValueError, match="split"):
        PairDataset(folder, split="val")
    with pytest.raises(ValueError, match="preset"):
        PairDataset(folder, preset="duke")
    with pytest.raises(IndexError):
        PairDataset(folder)[4]
