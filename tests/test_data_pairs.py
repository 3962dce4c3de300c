"""Pairs CSVs: PATN's pair-building rule, reading, writing and errors."""

from __future__ import annotations

import pytest
import torch

from fastpose.data import DataError, build_pairs, make_pairs_csv, read_pairs, write_annotations, write_pairs
from fastpose.data.pairs import main, read_pair_rows
from fastpose.pose.openpose import KEYPOINT_INDEX as J


def pose(missing=()):
    kp = torch.arange(36, dtype=torch.float32).view(18, 2)
    for name in missing:
        kp[J[name]] = -1
    return kp


def annotations():
    return {
        "0001_c1_a.jpg": pose(), "0001_c2_b.jpg": pose(["r_wrist", "l_ear"]),
        "0001_c3_c.jpg": pose(), "0001_c4_d.jpg": pose(["l_hip"]),  # no hip: never paired
        "0002_c1_a.jpg": pose(), "0002_c2_b.jpg": pose(["r_shoulder"]),  # no shoulder
        "0000_c1_x.jpg": pose(), "0000_c2_y.jpg": pose(),  # Market distractors
        "-1_c1_z.jpg": pose(), "-1_c2_w.jpg": pose(),  # Market junk
        "0003_c5_a.jpg": pose(), "0003_c6_b.jpg": pose(),
    }


def test_build_pairs_follows_patn():
    pairs = build_pairs(annotations())
    assert pairs == [("0001_c1_a.jpg", "0001_c2_b.jpg"), ("0001_c1_a.jpg", "0001_c3_c.jpg"),
                     ("0001_c2_b.jpg", "0001_c1_a.jpg"), ("0001_c2_b.jpg", "0001_c3_c.jpg"),
                     ("0001_c3_c.jpg", "0001_c1_a.jpg"), ("0001_c3_c.jpg", "0001_c2_b.jpg"),
                     ("0003_c5_a.jpg", "0003_c6_b.jpg"), ("0003_c6_b.jpg", "0003_c5_a.jpg")]


def test_build_pairs_sampling_is_seeded_subset():
    full = build_pairs(annotations())
    a = build_pairs(annotations(), max_pairs=5, seed=1)
    assert a == build_pairs(annotations(), max_pairs=5, seed=1) and len(a) == 5
    assert set(a) <= set(full) and len(set(a)) == 5
    assert build_pairs(annotations(), max_pairs=5, seed=2) != a
    assert build_pairs(annotations(), max_pairs=100) == full
    with pytest.raises(ValueError, match="max_pairs"):
        build_pairs(annotations(), max_pairs=-1)


def test_deepfashion_names_group_by_item():
    ann = {"fashionMENShortsid0000341201_6flat.jpg": pose(),
           "fashionMENShortsid0000341201_1front.jpg": pose(),
           "fashionWOMENDressesid0000012302_1front.jpg": pose()}
    assert build_pairs(ann) == [("fashionMENShortsid0000341201_6flat.jpg",
                                 "fashionMENShortsid0000341201_1front.jpg"),
                                ("fashionMENShortsid0000341201_1front.jpg",
                                 "fashionMENShortsid0000341201_6flat.jpg")]


def test_make_pairs_csv_and_cli(tmp_path, capsys):
    write_annotations(tmp_path / "ann.csv", annotations())
    n = make_pairs_csv(tmp_path / "ann.csv", tmp_path / "pairs.csv")
    assert n == 8
    assert (tmp_path / "pairs.csv").read_text().splitlines()[:2] == ["from,to",
                                                                     "0001_c1_a.jpg,0001_c2_b.jpg"]
    assert read_pairs(tmp_path / "pairs.csv") == build_pairs(annotations())
    with pytest.raises(FileExistsError, match="overwrite"):
        make_pairs_csv(tmp_path / "ann.csv", tmp_path / "pairs.csv")
    main([str(tmp_path / "ann.csv"), str(tmp_path / "p2.csv"), "--max-pairs", "3"])
    assert "wrote 3 pairs" in capsys.readouterr().out
    assert len(read_pairs(tmp_path / "p2.csv")) == 3


def test_read_pairs_accepts_a_pandas_index_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(",from,to\n0,a.jpg,b.jpg\n1,b.jpg,a.jpg\n")
    assert read_pairs(path, known={"a.jpg", "b.jpg"}) == [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg")]


def test_read_pairs_errors(tmp_path):
    path = tmp_path / "p.csv"
    write_pairs(path, [("a.jpg", "b.jpg"), ("a.jpg", "c.jpg")])
    with pytest.raises(DataError, match=r"p\.csv:3: to image 'c\.jpg' is not in ann\.csv"):
        read_pairs(path, known={"a.jpg", "b.jpg"}, known_source="ann.csv")
    rows = read_pair_rows(path, known={"a.jpg", "b.jpg"}, on_error="skip")
    assert rows == [(2, "a.jpg", "b.jpg")]
    path.write_text("from,to\na.jpg,b.jpg,c.jpg\n")
    with pytest.raises(DataError, match=r"p\.csv:2: expected 2 comma-separated fields, got 3"):
        read_pairs(path)
    path.write_text("from;to\n")
    with pytest.raises(DataError, match=r"p\.csv:1: wrong columns"):
        read_pairs(path, on_error="skip")
    with pytest.raises(DataError, match="pairs file not found"):
        read_pairs(tmp_path / "none.csv")
