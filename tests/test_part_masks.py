"""fastpose.pose.part_masks: hand-computed values, published construction, missing joints, errors."""

from __future__ import annotations

import math

import pytest
import torch

from fastpose.pose import NUM_PARTS, PART_NAMES, PartMaskConfig, part_gaussians, part_masks
from fastpose.pose.openpose import KEYPOINT_INDEX, NUM_KEYPOINTS

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                   reason="needs a CUDA device"))]
J = KEYPOINT_INDEX


def missing_pose() -> torch.Tensor:
    return torch.full((NUM_KEYPOINTS, 2), -1.0, dtype=torch.float64)


def standing_pose() -> torch.Tensor:
    """A plausible 128x64 pose, (y, x) pixels, all joints present."""
    kp = missing_pose()
    pts = {"nose": (14, 32), "neck": (28, 32), "r_shoulder": (30, 22), "r_elbow": (48, 18),
           "r_wrist": (64, 16), "l_shoulder": (30, 42), "l_elbow": (47, 47), "l_wrist": (62, 50),
           "r_hip": (66, 26), "r_knee": (90, 25), "r_ankle": (114, 24), "l_hip": (66, 38),
           "l_knee": (90, 40), "l_ankle": (115, 42), "l_eye": (12, 35), "r_eye": (12, 29),
           "l_ear": (13, 38), "r_ear": (13, 26)}
    for name, p in pts.items():
        kp[J[name]] = torch.tensor(p, dtype=torch.float64)
    return kp


def gaussian_at(py, px, p0, p1, var_perp, peak):
    """Hand computation: along/across offsets from the midpoint in the segment's frame."""
    (y0, x0), (y1, x1) = p0, p1
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    length = math.hypot(y1 - y0, x1 - x0)
    var_par = max(5.0, length ** 2 / 1.2)
    if length == 0:
        along, across = py - cy, px - cx  # theta = 0: the published form puts var_par on rows
    else:
        ty, tx = (y1 - y0) / length, (x1 - x0) / length
        along = (py - cy) * ty + (px - cx) * tx
        across = -(py - cy) * tx + (px - cx) * ty
    return math.exp(-along ** 2 / (2 * var_par) - across ** 2 / (2 * var_perp)) / peak


@pytest.mark.parametrize("device", DEVICES)
def test_hand_computed_limb_values(device):
    kp = missing_pose()
    kp[J["r_shoulder"]] = torch.tensor([20.0, 10.0])
    kp[J["r_elbow"]] = torch.tensor([50.0, 40.0])  # diagonal upper arm, length 42.4
    m = part_masks(kp.to(device), (80, 60), dtype=torch.float64).cpu()
    part = m[1 + PART_NAMES.index("r_upper_arm")]
    # The peak is on the midpoint pixel (35, 25), so the published max-normalisation divides by 1 + 1e-6.
    peak = 1.0 + 1e-6
    for py, px in [(35, 25), (45, 35), (30, 40), (20, 10), (70, 5), (0, 59)]:
        expect = gaussian_at(py, px, (20, 10), (50, 40), 81.0, peak)
        assert abs(part[py, px].item() - expect) < 1e-12, (py, px)
    # Along the segment the mask falls far slower than across it.
    assert part[45, 35] > 0.8 and part[30, 40] < 0.3
    # Every other part is empty (missing joints); the background is 1 - max.
    others = [i for i in range(1, 1 + NUM_PARTS) if i != 1 + PART_NAMES.index("r_upper_arm")]
    assert torch.equal(m[others], torch.zeros_like(m[others]))
    torch.testing.assert_close(m[0], 1 - part, rtol=0, atol=1e-15)


def test_torso_uses_shoulder_and_hip_midpoints():
    kp = missing_pose()
    for name, p in {"r_shoulder": (30, 20), "l_shoulder": (30, 44), "r_hip": (70, 24),
                    "l_hip": (70, 40)}.items():
        kp[J[name]] = torch.tensor(p, dtype=torch.float64)
    torso = part_masks(kp, (128, 64), dtype=torch.float64)[1 + PART_NAMES.index("torso")]
    # Segment (30, 32) -> (70, 32): vertical, length 40, var_par = 1333.3, var_perp = 169.
    peak = 1.0 + 1e-6
    for py, px in [(50, 32), (60, 32), (50, 45), (10, 0), (100, 50)]:
        expect = gaussian_at(py, px, (30, 32), (70, 32), 169.0, peak)
        assert abs(torso[py, px].item() - expect) < 1e-12, (py, px)


def test_short_segment_uses_the_variance_floor():
    kp = missing_pose()
    kp[J["nose"]] = torch.tensor([20.0, 20.0])
    kp[J["neck"]] = torch.tensor([20.0, 20.0])  # zero length: var_par = 5
    head = part_masks(kp, (40, 40), dtype=torch.float64)[1]
    peak = 1.0 + 1e-6
    assert abs(head[22, 20].item() - math.exp(-4 / 10) / peak) < 1e-12
    assert abs(head[20, 22].item() - math.exp(-4 / 162) / peak) < 1e-12


def published_loop(kp, size):
    """Per-sample transcription of the published make_limb_masks (from the facts file):
    theta = atan2(x1 - x0, y0 - y1) and the a, b, c quadratic form on (row, col) offsets."""
    h, w = size
    parts = [[0, 1], [2, 3], [3, 4], [5, 6], [6, 7], [8, 9], [9, 10], [11, 12], [12, 13], [2, 5, 8, 11]]
    perp = [81.0] * 9 + [169.0]
    out = torch.zeros(NUM_PARTS, h, w, dtype=torch.float64)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    for i, joints in enumerate(parts):
        if any((kp[j] == -1).any() for j in joints):
            continue
        p = kp[joints]
        if len(joints) == 4:
            p = torch.stack([p[:2].mean(0), p[2:].mean(0)])
        centre = p.mean(0)
        var_x = max(5.0, float(((p[1] - p[0]) ** 2).sum()) / 1.2)
        var_y = perp[i]
        theta = math.atan2(p[1, 1] - p[0, 1], p[0, 0] - p[1, 0])
        a = math.cos(theta) ** 2 / (2 * var_x) + math.sin(theta) ** 2 / (2 * var_y)
        b = -math.sin(2 * theta) / (4 * var_x) + math.sin(2 * theta) / (4 * var_y)
        c = math.sin(theta) ** 2 / (2 * var_x) + math.cos(theta) ** 2 / (2 * var_y)
        du, dv = rows - centre[0], cols - centre[1]
        g = torch.exp(-(a * du * du + 2 * b * du * dv + c * dv * dv))
        out[i] = g / (g.max() + 1e-6)
    return torch.cat([1 - out.amax(0, keepdim=True), out])


@pytest.mark.parametrize("device", DEVICES)
def test_batched_matches_published_per_sample_loop(device):
    poses = [standing_pose() for _ in range(4)]
    poses[1] = poses[1] + torch.randn(NUM_KEYPOINTS, 2, dtype=torch.float64) * 5
    poses[2][J["l_knee"]] = -1  # left thigh and shin missing
    poses[3][J["r_shoulder"]] = -1  # right upper arm and torso missing
    kp = torch.stack(poses)
    ours = part_masks(kp.to(device), (128, 64), dtype=torch.float64).cpu()
    for i in range(4):
        torch.testing.assert_close(ours[i], published_loop(kp[i], (128, 64)), rtol=0, atol=1e-12)
    assert ours[2, 1 + PART_NAMES.index("l_thigh")].max() == 0
    assert ours[2, 1 + PART_NAMES.index("l_shin")].max() == 0
    assert ours[3, 1 + PART_NAMES.index("torso")].max() == 0
    # float32 output agrees with the float64 one.
    torch.testing.assert_close(part_masks(kp.to(device), (128, 64)).cpu(), ours.float(), rtol=0,
                               atol=1e-5)


def test_shapes_dtypes_and_ranges():
    kp = torch.stack([standing_pose(), standing_pose()]).float()
    m = part_masks(kp, (128, 64))
    assert m.shape == (2, 11, 128, 64) and m.dtype == torch.float32
    assert m.min() >= 0 and m.max() <= 1
    assert part_masks(kp[0], (128, 64)).shape == (11, 128, 64)
    assert part_gaussians(kp, (256, 176)).shape == (2, 10, 256, 176)
    assert part_masks(kp.long(), (128, 64)).shape == (2, 11, 128, 64)  # integer keypoints work
    empty = part_masks(missing_pose(), (16, 8))
    assert torch.equal(empty[0], torch.ones(16, 8)) and empty[1:].max() == 0


def test_hard_masks():
    kp = standing_pose()
    soft = part_masks(kp, (128, 64), dtype=torch.float64)
    hard = part_masks(kp, (128, 64), hard=True, dtype=torch.float64)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(hard[1:], (soft[1:] >= 0.5).double())
    torch.testing.assert_close(hard[0], 1 - hard[1:].amax(0))
    tight = part_masks(kp, (128, 64), hard=True, hard_threshold=0.9)
    assert tight[1:].sum() < hard[1:].sum()


def test_config_changes_widths():
    kp = standing_pose()
    wide = part_masks(kp, (128, 64), config=PartMaskConfig(limb_perp_var=400.0))
    narrow = part_masks(kp, (128, 64))
    assert wide[1:9].sum() > narrow[1:9].sum()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"keypoints must be \[N, 18, 2\].*got shape \(2, 17, 2\)"):
        part_masks(torch.zeros(2, 17, 2), (128, 64))
    with pytest.raises(ValueError, match=r"keypoints must be \[N, 18, 2\].*\(18, 3\)"):
        part_masks(torch.zeros(18, 3), (128, 64))
    with pytest.raises(ValueError, match="got shape \\(2, 3, 18, 2\\)"):
        part_masks(torch.zeros(2, 3, 18, 2), (128, 64))
    with pytest.raises(TypeError, match="keypoints must be a torch.Tensor"):
        part_masks([[0, 0]] * 18, (128, 64))
    with pytest.raises(ValueError, match=r"size must be \(H, W\)"):
        part_masks(standing_pose(), (128,))
    with pytest.raises(ValueError, match=r"size must be \(H, W\)"):
        part_masks(standing_pose(), (0, 64))
    with pytest.raises(ValueError, match="hard_threshold"):
        part_masks(standing_pose(), (128, 64), hard=True, hard_threshold=1.5)
