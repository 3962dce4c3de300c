"""The pair dataset reads what the synthetic generator writes (both presets), with every encoding."""

from __future__ import annotations

import pytest
import torch

from fastpose.data import PairDataset
from fastpose.data.layout import PRESET_SIZE
from fastpose.data.synthetic import SyntheticConfig, generate
from fastpose.pose import NUM_KEYPOINTS

TINY = dict(train_ids=3, test_ids=2, images_per_id=3, contact_ids=2, workers=1)


@pytest.fixture(scope="module", params=["market", "deepfashion"])
def synthetic(request, tmp_path_factory):
    preset = request.param
    root = generate(SyntheticConfig.for_preset(preset, **TINY),
                    tmp_path_factory.mktemp("syn") / preset, progress=False)
    return preset, root


@pytest.mark.parametrize("split", ["train", "test"])
def test_reader_loads_every_pair_with_all_encodings(synthetic, split):
    preset, root = synthetic
    ds = PairDataset(root, preset, split, on_error="raise", verify_images=True,
                     encodings=("heatmaps", "disks", "pose_mask_pg2", "pose_mask_potgan",
                                "distance_maps", "parsing"))
    assert len(ds) > 0 and ds.num_skipped == 0
    h, w = PRESET_SIZE[preset]
    for i in range(len(ds)):
        s = ds[i]
        assert s["source_image"].shape == (3, h, w) and s["target_image"].shape == (3, h, w)
        assert s["source_image"].min() >= -1 and s["source_image"].max() <= 1
        kp = s["target_keypoints"]
        assert kp.shape == (NUM_KEYPOINTS, 2)
        visible = (kp >= 0).all(-1)
        # The pair rule of the generator: both shoulders and hips visible in both images.
        assert visible[[2, 5, 8, 11]].all()
        assert s["target_heatmaps"].shape == (NUM_KEYPOINTS, h, w)
        assert s["target_distance_maps"].shape[0] == 12
        assert s["source_parsing"].shape == (h, w) and s["source_parsing"].dtype == torch.int64
        # Parsing and keypoints come from the same renderer: the person covers its torso joints.
        yx = kp[visible].round().long()
        labels = s["target_parsing"][yx[:, 0].clamp(0, h - 1), yx[:, 1].clamp(0, w - 1)]
        assert (labels > 0).float().mean() > 0.8
        # The PG2 mask covers the shoulders and hips (joined by the hip-shoulder mask limbs).
        torso = kp[[2, 5, 8, 11]].round().long()
        assert s["target_pose_mask_pg2"][0][torso[:, 0].clamp(0, h - 1),
                                            torso[:, 1].clamp(0, w - 1)].all()
