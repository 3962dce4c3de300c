"""Annotation CSVs: round trip, PATN's format, and every kind of bad row."""

from __future__ import annotations

import pytest
import torch

from fastpose.data import DataError, ProblemLog, read_annotations, write_annotations


def kp_list(n=18, start=0):
    return list(range(start, start + n))


def write(path, *rows, header="name:keypoints_y:keypoints_x"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_reads_patn_rows(tmp_path):
    ys = [14, 28, 28, 47, -1, 28, 47, 61, 62, 89, 115, 62, 89, 115, 11, 11, 13, 13]
    xs = [31, 30, 21, 19, -1, 39, 42, 43, 24, 24, 23, 36, 37, 38, 33, 28, 36, 25]
    path = write(tmp_path / "a.csv", f"0002_c1s1_000451_03.jpg:{ys}:{xs}")
    out = read_annotations(path, image_size=(128, 64))
    kp = out["0002_c1s1_000451_03.jpg"]
    assert kp.shape == (18, 2) and kp.dtype == torch.float32
    assert kp[:, 0].tolist() == ys and kp[:, 1].tolist() == xs


def test_write_read_round_trip_keeps_integers(tmp_path):
    kp = torch.tensor([kp_list(), kp_list(start=1)], dtype=torch.float32).t()
    kp[3] = -1
    kp[4] = torch.tensor([2.5, 7.0])
    path = tmp_path / "b.csv"
    write_annotations(path, {"x.jpg": kp, "y.jpg": kp + 1})
    text = path.read_text().splitlines()
    assert text[0] == "name:keypoints_y:keypoints_x"
    assert text[1].startswith("x.jpg:[0, 1, 2, -1, 2.5, 5,")  # ints stay ints, as in PATN files
    back = read_annotations(path)
    assert torch.equal(back["x.jpg"], kp)
    assert back["y.jpg"][3].tolist() == [0.0, 0.0] and back["y.jpg"][0].tolist() == [1.0, 2.0]


def test_half_missing_joint_becomes_missing(tmp_path):
    ys, xs = kp_list(), kp_list()
    xs[5] = -1
    out = read_annotations(write(tmp_path / "c.csv", f"a.jpg:{ys}:{xs}"))
    assert out["a.jpg"][5].tolist() == [-1.0, -1.0]


@pytest.mark.parametrize("row,message", [
    (f"a.jpg:{kp_list(17)}:{kp_list()}", r"keypoints_y has 17 values, expected 18"),
    (f"a.jpg:{kp_list()}:{kp_list(19)}", r"keypoints_x has 19 values"),
    (f"a.jpg:{kp_list()}", r"expected 3 ':'-separated fields, got 2"),
    (f"a.jpg:[1, 2:{kp_list()}", r"keypoints_y is not a JSON list"),
    (f"a.jpg:{kp_list()[:-1] + ['x']}:{kp_list()}".replace("'", '"'), r"non-number 'x'"),
    (f"a.jpg:\"text\":{kp_list()}", r"must be a JSON list"),
    (f"a.jpg:{[-3] + kp_list(17)}:{kp_list()}", r"joint 0 has a negative coordinate"),
    (f"a.jpg:{kp_list()}:{[70] + kp_list(17)}", r"joint 0 at \(y=0, x=70\) is outside the 128x64"),
    (f":{kp_list()}:{kp_list()}", r"empty image name"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    good = f"ok.jpg:{kp_list()}:{kp_list()}"
    path = write(tmp_path / "bad.csv", good, row)
    with pytest.raises(DataError, match=r"bad\.csv:3: .*" + message):
        read_annotations(path, image_size=(128, 64))
    log = ProblemLog("skip")
    out = read_annotations(path, image_size=(128, 64), problems=log)
    assert list(out) == ["ok.jpg"] and log.count == 1 and log.problems[0].line == 3


def test_duplicate_name(tmp_path):
    row = f"a.jpg:{kp_list()}:{kp_list()}"
    with pytest.raises(DataError, match=r"d\.csv:3: image 'a\.jpg' is annotated twice"):
        read_annotations(write(tmp_path / "d.csv", row, row))


@pytest.mark.parametrize("header", ["name:y:x", "name,keypoints_y,keypoints_x", ""])
def test_wrong_header_always_raises(tmp_path, header):
    path = write(tmp_path / "h.csv", f"a.jpg:{kp_list()}:{kp_list()}", header=header)
    with pytest.raises(DataError, match=r"h\.csv:1: wrong columns"):
        read_annotations(path, on_error="skip")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="nope.csv: annotation file not found"):
        read_annotations(tmp_path / "nope.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="e.csv: annotation file is empty"):
        read_annotations(tmp_path / "e.csv")


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"must be \[18, 2\]"):
        write_annotations(tmp_path / "w.csv", {"a.jpg": torch.zeros(17, 2)})
    with pytest.raises(ValueError, match="contains ':'"):
        write_annotations(tmp_path / "w.csv", {"a:b.jpg": torch.zeros(18, 2)})
