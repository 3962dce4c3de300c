"""Flip, resize and crop of images, keypoints and parsing maps."""

from __future__ import annotations

import pytest
import torch

from fastpose.data.cihp import CIHP_INDEX as L
from fastpose.pose import (crop_keypoints, heatmaps, hflip, hflip_keypoints, hflip_parsing,
                           resize_keypoints)
from fastpose.pose.openpose import FLIP_INDEX
from fastpose.pose.openpose import KEYPOINT_INDEX as J


def sample(seed=0, h=12, w=9):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, h, w, generator=g) * 2 - 1
    kp = torch.randint(0, min(h, w), (18, 2), generator=g).float()
    kp[torch.rand(18, generator=g) < 0.3] = -1
    parsing = torch.randint(0, 20, (h, w), generator=g)
    return image, kp, parsing


def test_flip_twice_is_identity():
    image, kp, parsing = sample()
    once = hflip(image, kp, parsing)
    twice = hflip(*once)
    assert torch.equal(twice[0], image) and torch.equal(twice[1], kp) and torch.equal(twice[2], parsing)
    assert not torch.equal(once[1], kp)


def test_flip_swaps_left_and_right_joints():
    kp = torch.full((18, 2), -1.0)
    kp[J["r_wrist"]] = torch.tensor([5.0, 1.0])
    kp[J["nose"]] = torch.tensor([2.0, 4.0])
    out = hflip_keypoints(kp, width=10)
    assert out[J["l_wrist"]].tolist() == [5.0, 8.0]  # x -> W - 1 - x, and the name swaps
    assert out[J["r_wrist"]].tolist() == [-1.0, -1.0]  # l_wrist was missing
    assert out[J["nose"]].tolist() == [2.0, 5.0]


def test_flip_keeps_heatmaps_consistent_with_image_flip():
    _, kp, _ = sample(1)
    maps = heatmaps(kp, (12, 9), sigma=1.5)
    flipped = heatmaps(hflip_keypoints(kp, 9), (12, 9), sigma=1.5)
    assert torch.allclose(flipped, maps.flip(-1)[list(FLIP_INDEX)], atol=1e-6)


def test_flip_parsing_swaps_labels():
    parsing = torch.zeros(2, 4, dtype=torch.long)
    parsing[0, 0] = L["left_arm"]
    parsing[1, 3] = L["right_shoe"]
    parsing[0, 1] = L["face"]
    out = hflip_parsing(parsing)
    assert out[0, 3] == L["right_arm"] and out[1, 0] == L["left_shoe"] and out[0, 2] == L["face"]
    with pytest.raises(ValueError, match="labels must be in"):
        hflip_parsing(torch.full((2, 2), 20))
    with pytest.raises(TypeError, match="integer label map"):
        hflip_parsing(torch.zeros(2, 2))


def test_flip_batched_and_size_mismatch():
    image, kp, parsing = sample()
    b = hflip(image[None].repeat(2, 1, 1, 1), kp[None].repeat(2, 1, 1), parsing[None].repeat(2, 1, 1))
    single = hflip(image, kp, parsing)
    assert all(torch.equal(x[1], y) for x, y in zip(b, single))
    with pytest.raises(ValueError, match="parsing is"):
        hflip(image, kp, parsing[:5])


def test_resize_keypoints():
    kp = torch.full((1, 18, 2), -1.0)
    kp[0, 0] = torch.tensor([0.0, 0.0])
    kp[0, 1] = torch.tensor([127.0, 63.0])
    up = resize_keypoints(kp, (128, 64), (256, 128))
    assert up[0, 0].tolist() == [0.5, 0.5] and up[0, 1].tolist() == [254.5, 126.5]
    assert (up[0, 2:] == -1).all()
    plain = resize_keypoints(kp, (128, 64), (256, 128), pixel_centers=False)
    assert plain[0, 1].tolist() == [254.0, 126.0]
    back = resize_keypoints(up, (256, 128), (128, 64))
    assert torch.allclose(back, kp)


def test_crop_keypoints():
    kp = torch.full((18, 2), -1.0)
    kp[3] = torch.tensor([10.0, 50.0])
    out = crop_keypoints(kp, 0, 40)
    assert out[3].tolist() == [10.0, 10.0] and (out[4] == -1).all()
