"""Raw samples and the BatchEncoder: the loader's main-process half gives exactly what
per-sample encoding in the dataset gives; errors; the trainer's data wiring."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.utils.data import DataLoader

from fastpose.data import BatchEncoder, DataError, PairDataset, retain_freed_memory
from fastpose.data.encoder import stack_samples, unstack_batch
from fastpose.train.data import build_data, collate
from patn_folder import NAMES, image_pixels, make_patn_folder, parsing_pixels

ALL = ("heatmaps", "peaks", "disks", "pose_mask_pg2", "pose_mask_potgan", "distance_maps",
       "parsing")


@pytest.fixture
def folder(tmp_path):
    make_patn_folder(tmp_path)
    return tmp_path


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if torch.is_tensor(value):
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def test_raw_samples_are_small_and_unencoded(folder):
    ds = PairDataset(folder, encodings=ALL, raw=True)
    s = ds[2]
    assert set(s) == {"index", "source_name", "target_name", "source_image", "target_image",
                      "source_keypoints", "target_keypoints", "source_parsing", "target_parsing"}
    assert s["source_image"].dtype == torch.uint8 and s["source_image"].shape == (3, 128, 64)
    assert s["source_image"].is_contiguous()
    assert torch.equal(s["source_image"], torch.from_numpy(image_pixels(3)).permute(2, 0, 1))
    assert s["target_parsing"].dtype == torch.uint8
    assert torch.equal(s["target_parsing"], torch.from_numpy(parsing_pixels(5)))
    nbytes = sum(v.numel() * v.element_size() for v in s.values() if torch.is_tensor(v))
    assert nbytes < 70_000  # 2 x (24 KB image + 8 KB parsing + keypoints)
    assert "raw=True" in repr(ds)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_batch_encoder_gives_exactly_the_per_sample_encodings(folder, flip):
    params = {"heatmaps": {"sigma": 3.0}, "distance_maps": {"kappa": -0.2}}
    encodings = ALL[:-1] + ("target_parsing", "source_pose_mask_pg2")
    finished = PairDataset(folder, encodings=encodings, encoding_params=params, flip_prob=flip)
    raw = PairDataset(folder, encodings=encodings, encoding_params=params, flip_prob=flip, raw=True)
    order = [3, 0, 2, 1]
    batch = raw.batch_encoder(collate([raw[i] for i in order]))
    for k, i in enumerate(order):
        _assert_same({key: v[k] for key, v in batch.items()}, finished[i])
    # The same through a DataLoader with the trainer's collate, and the batch's layout.
    loaded = raw.batch_encoder(next(iter(DataLoader(raw, batch_size=4, collate_fn=collate))))
    assert loaded["source_image"].dtype == torch.float32
    assert loaded["source_image"].min() >= -1 and loaded["source_image"].max() <= 1
    assert loaded["target_parsing"].dtype == torch.int64
    assert loaded["target_parsing"].shape == (4, 128, 64)
    for key in ("source_heatmaps", "target_distance_maps", "target_pose_mask_potgan"):
        assert loaded[key].dtype == torch.float32 and loaded[key].is_contiguous()
    assert loaded["target_heatmaps"].shape == (4, 18, 128, 64)
    assert torch.equal(loaded["target_distance_maps"][2], finished[2]["target_distance_maps"])


def test_stack_and_unstack_round_trip(folder):
    samples = PairDataset(folder, encodings=("disks",), raw=True).__getitems__([0, 1])
    back = unstack_batch(stack_samples(samples), 2)
    for got, want in zip(back, samples):
        _assert_same(got, want)
    with pytest.raises(ValueError, match="empty"):
        stack_samples([])


def test_batch_encoder_errors(folder):
    raw = PairDataset(folder, encodings=("heatmaps",), raw=True)
    batch = collate([raw[0], raw[1]])
    encoded = raw.batch_encoder(batch)
    with pytest.raises(TypeError, match="must be uint8"):
        raw.batch_encoder(encoded)  # encoding twice
    with pytest.raises(ValueError, match=r"source_image must be \[N, 3, 64, 32\], got \[2, 3, 128"):
        BatchEncoder((64, 32), {"heatmaps": ("source",)})(batch)
    with pytest.raises(KeyError, match="target_keypoints"):
        raw.batch_encoder({k: v for k, v in batch.items() if k != "target_keypoints"})
    with pytest.raises(KeyError, match="source_image"):
        raw.batch_encoder({"target_image": batch["target_image"]})
    with pytest.raises(KeyError, match="unknown pose encoding 'heatmap'"):
        BatchEncoder((128, 64), {"heatmap": ("source",)})
    with pytest.raises(ValueError, match="sides must be among"):
        BatchEncoder((128, 64), {"heatmaps": ("left",)})
    with pytest.raises(ValueError, match="not requested"):
        BatchEncoder((128, 64), {"heatmaps": ("source",)}, {"disks": {"radius": 2}})
    with pytest.raises(ValueError, match="size"):
        BatchEncoder((0, 64), {})


def test_raw_mode_keeps_bad_data_errors_and_skips(folder, caplog):
    (folder / "train" / NAMES[1]).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=rf"{NAMES[1]}: cannot read image"):
        PairDataset(folder, raw=True)[0]
    skipping = PairDataset(folder, encodings=("heatmaps",), on_error="skip", raw=True)
    with caplog.at_level(logging.WARNING, logger="fastpose.data"):
        s = skipping[0]  # pairs 0 and 1 both use the bad image: pair 2 comes back
    assert s["index"] == 2 and skipping.num_skipped_at_load == 2 and NAMES[1] in caplog.text


def test_retain_freed_memory_is_idempotent():
    first = retain_freed_memory()
    assert isinstance(first, bool) and retain_freed_memory() is first


def test_trainer_data_encodes_training_batches_with_the_transform(tmp_path):
    make_patn_folder(tmp_path, "train")
    make_patn_folder(tmp_path, "test")
    bundle = build_data("market", str(tmp_path), ("heatmaps", "target_pose_mask_pg2"))
    assert bundle.train.raw and not bundle.test.raw and bundle.image_size == (128, 64)
    batch = bundle.train_transform(collate([bundle.train[0], bundle.train[1]]))
    test = bundle.test[0]
    for key in ("source_image", "source_heatmaps", "target_heatmaps", "target_pose_mask_pg2"):
        assert batch[key].dtype == test[key].dtype and batch[key].shape[1:] == test[key].shape
    # Train and test folders hold the same images and poses here.
    assert torch.equal(batch["target_heatmaps"][1], bundle.test[1]["target_heatmaps"])


def test_potgan_mask_reuses_the_pg2_mask_only_with_equal_parameters(folder, monkeypatch):
    import fastpose.pose.encodings.masks as masks
    calls = []
    real = masks.pose_mask_pg2.__wrapped__
    monkeypatch.setattr(masks.pose_mask_pg2, "__wrapped__",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    raw = PairDataset(folder, encodings=("pose_mask_pg2", "pose_mask_potgan"), raw=True)
    batch = raw.batch_encoder(collate([raw[0], raw[2]]))
    assert calls == []  # the potgan mask started from the pg2 mask of its side
    from fastpose.pose import pose_mask_potgan
    assert torch.equal(batch["target_pose_mask_potgan"],
                       pose_mask_potgan(batch["target_keypoints"], (128, 64)))
    calls.clear()
    other = PairDataset(folder, encodings=("pose_mask_pg2", "target_pose_mask_potgan"),
                        encoding_params={"pose_mask_potgan": {"radius": 3}}, raw=True)
    other.batch_encoder(collate([other[0]]))
    assert calls == [1]  # different radius: drawn afresh, for the target only
