"""Pose encodings against hand-computed small cases and loop re-statements of the papers' code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.morphology import dilation, erosion, footprint_rectangle

from fastpose.pose import (DISTANCE_MAP_LIMBS, ENCODING_CHANNELS, MASK_LIMBS, binary_closing,
                           disks, distance_maps, encode, get_encoding, heatmaps, list_encodings,
                           peaks, pose_mask_pg2, pose_mask_potgan)
from fastpose.pose.openpose import KEYPOINT_INDEX as J


def empty(n=1):
    return torch.full((n, 18, 2), -1.0)


def standing_pose(h=128, w=64) -> torch.Tensor:
    """A frontal figure in a Market-sized frame (y, x); PATN's naming of left/right."""
    pts = {"nose": (18, 32), "neck": (30, 32), "r_shoulder": (31, 22), "r_elbow": (48, 19),
           "r_wrist": (64, 18), "l_shoulder": (31, 42), "l_elbow": (48, 45), "l_wrist": (64, 46),
           "r_hip": (66, 26), "r_knee": (90, 26), "r_ankle": (114, 26), "l_hip": (66, 38),
           "l_knee": (90, 38), "l_ankle": (114, 38), "l_eye": (16, 35), "r_eye": (16, 29),
           "l_ear": (17, 38), "r_ear": (17, 26)}
    kp = torch.full((18, 2), -1.0)
    for name, yx in pts.items():
        kp[J[name]] = torch.tensor(yx, dtype=torch.float32)
    return kp


def random_poses(n, h, w, seed=0, p_missing=0.2):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(n, 18, 2, generator=g) * torch.tensor([h - 1.0, w - 1.0])
    kp = kp.round()
    missing = torch.rand(n, 18, generator=g) < p_missing
    kp[missing] = -1
    return kp


# --- heatmaps / peaks / disks -------------------------------------------------------------------

def test_heatmaps_hand_values():
    kp = empty()
    kp[0, 0] = torch.tensor([2.0, 3.0])
    out = heatmaps(kp, (5, 6), sigma=2.0)
    assert out.shape == (1, 18, 5, 6)
    assert out[0, 0, 2, 3] == 1.0
    assert out[0, 0, 0, 0].item() == pytest.approx(math.exp(-(4 + 9) / 8))
    assert out[0, 0, 4, 5].item() == pytest.approx(math.exp(-(4 + 4) / 8))
    assert out[0, 1:].abs().sum() == 0  # missing joints: empty channels


def test_heatmaps_default_sigma_is_6_and_half_missing_joint_is_missing():
    kp = empty()
    kp[0, 0] = torch.tensor([0.0, 0.0])
    kp[0, 1] = torch.tensor([3.0, -1.0])  # PATN: either coordinate -1 means missing
    out = heatmaps(kp, (4, 4))
    assert out[0, 0, 0, 3].item() == pytest.approx(math.exp(-9 / 72))
    assert out[0, 1].sum() == 0


def test_peaks_are_one_pixel():
    kp = empty()
    kp[0, 4] = torch.tensor([1.0, 2.0])
    kp[0, 5] = torch.tensor([10.0, 2.0])  # outside a 4x4 image
    out = peaks(kp, (4, 4))
    assert out.sum() == 1 and out[0, 4, 1, 2] == 1


def test_disks_radius_one_is_a_plus():
    kp = empty()
    kp[0, 2] = torch.tensor([2.0, 2.0])
    out = disks(kp, (5, 5), radius=1)
    expected = torch.zeros(5, 5)
    expected[2, 1:4] = 1
    expected[1:4, 2] = 1
    assert torch.equal(out[0, 2], expected)
    assert out[0].sum() == 5


def test_disks_radius_4_area_and_clipping():
    kp = empty()
    kp[0, 0] = torch.tensor([10.0, 10.0])
    kp[0, 1] = torch.tensor([0.0, 0.0])  # quarter disk at the corner
    out = disks(kp, (32, 32))
    assert out[0, 0].sum() == 49  # lattice points with i^2 + j^2 <= 16
    assert out[0, 1].sum() == 5 + 4 + 4 + 3 + 1  # i, j >= 0 with i^2 + j^2 <= 16, row by row


# --- distance maps --------------------------------------------------------------------------

def test_distance_maps_hand_values():
    kp = empty()
    a, b = DISTANCE_MAP_LIMBS[2]  # r_shoulder -> r_elbow, channel 2
    kp[0, a] = torch.tensor([2.0, 1.0])
    kp[0, b] = torch.tensor([2.0, 5.0])
    out = distance_maps(kp, (6, 8))
    assert out.shape == (1, 12, 6, 8)
    m = out[0, 2]
    assert m[2, 1:6].eq(1).all()  # on the segment
    assert m[0, 3].item() == pytest.approx(math.exp(-0.1 * 2))  # 2 px above it
    assert m[2, 7].item() == pytest.approx(math.exp(-0.1 * 2))  # 2 px past its end
    assert m[5, 7].item() == pytest.approx(math.exp(-0.1 * math.hypot(3, 2)))  # to the end point
    others = torch.cat([out[0, :2], out[0, 3:]])
    assert others.sum() == 0  # segments with a missing end are all-zero


def test_distance_maps_kappa_and_zero_length_segment():
    kp = empty()
    a, b = DISTANCE_MAP_LIMBS[0]
    kp[0, a] = kp[0, b] = torch.tensor([1.0, 1.0])
    out = distance_maps(kp, (3, 3), kappa=-1.0)
    assert out[0, 0, 1, 1] == 1
    assert out[0, 0, 0, 0].item() == pytest.approx(math.exp(-math.sqrt(2)))
    with pytest.raises(ValueError, match="kappa"):
        distance_maps(kp, (3, 3), kappa=0.1)


# --- pose masks ---------------------------------------------------------------------------------

def pg2_mask_loop(kp: np.ndarray, h: int, w: int, radius: int = 4) -> np.ndarray:
    """PG2's _getPoseMask written as loops (with fastpose's nearest-pixel centres), then skimage."""
    dense = np.zeros((h, w), bool)

    def disk(y, x):
        cy, cx = math.floor(y + 0.5), math.floor(x + 0.5)
        for i in range(-radius, radius + 1):
            for j in range(-radius, radius + 1):
                if i * i + j * j <= radius * radius and 0 <= cy + i < h and 0 <= cx + j < w:
                    dense[cy + i, cx + j] = True

    for a, b in MASK_LIMBS:
        if (kp[a] == -1).any() or (kp[b] == -1).any():
            continue
        (y0, x0), (y1, x1) = kp[a], kp[b]
        disk(y0, x0)
        disk(y1, x1)
        n = int(math.hypot(y1 - y0, x1 - x0) / radius)
        for i in range(1, n):
            disk(y0 + (y1 - y0) * i / n, x0 + (x1 - x0) * i / n)
    dense = dilation(dense, footprint_rectangle((5, 5)))
    return erosion(dense, footprint_rectangle((5, 5)))


@pytest.mark.parametrize("size", [(128, 64), (37, 23)])
def test_pose_mask_pg2_matches_loop_version(size):
    kp = torch.cat([standing_pose()[None], random_poses(5, *size, seed=1)])
    out = pose_mask_pg2(kp, size)
    assert out.shape == (6, 1, *size)
    for i in range(kp.shape[0]):
        expected = pg2_mask_loop(kp[i].numpy().astype(np.float64), *size)
        assert np.array_equal(out[i, 0].numpy().astype(bool), expected), f"pose {i}"


def test_pose_mask_pg2_single_limb_hand_case():
    kp = empty()
    kp[0, J["r_shoulder"]] = torch.tensor([10.0, 5.0])
    kp[0, J["r_elbow"]] = torch.tensor([10.0, 25.0])
    out = pose_mask_pg2(kp, (21, 31), closing=1)[0, 0]
    # Disks every 4 px from x=5 to x=25: row 10 covered from x=1 to 29, rows 6..14 at the centres.
    assert out[10, 1:30].eq(1).all() and out[10, 0] == 0 and out[10, 30] == 0
    assert out[6, 5] == 1 and out[5, 5] == 0 and out[14, 25] == 1 and out[15, 25] == 0
    assert out.sum() == pg2_mask_loop_noclose(kp[0].numpy(), 21, 31).sum()


def pg2_mask_loop_noclose(kp, h, w):
    """Union of the lattice disks without the closing (only the r_shoulder-r_elbow limb is set)."""
    dense = np.zeros((h, w), bool)
    (y0, x0), (y1, x1) = kp[J["r_shoulder"]], kp[J["r_elbow"]]
    n = int(math.hypot(y1 - y0, x1 - x0) / 4)
    for t in [i / n for i in range(n + 1)]:
        cy, cx = round(y0 + (y1 - y0) * t), round(x0 + (x1 - x0) * t)
        for i in range(-4, 5):
            for j in range(-4, 5):
                if i * i + j * j <= 16 and 0 <= cy + i < h and 0 <= cx + j < w:
                    dense[cy + i, cx + j] = True
    return dense


def test_binary_closing_matches_skimage():
    g = torch.Generator().manual_seed(3)
    m = (torch.rand(2, 1, 17, 13, generator=g) < 0.3).float()
    out = binary_closing(m, 5)
    for i in range(2):
        ref = erosion(dilation(m[i, 0].numpy().astype(bool), footprint_rectangle((5, 5))),
                      footprint_rectangle((5, 5)))
        assert np.array_equal(out[i, 0].numpy().astype(bool), ref)


def test_pose_mask_potgan_fills_torso_and_head():
    kp = standing_pose()[None] * 2  # a DeepFashion-scale figure: cavities the closing leaves open
    pg2 = pose_mask_pg2(kp, (256, 128))
    pot = pose_mask_potgan(kp, (256, 128))
    assert pot.shape == (1, 1, 256, 128)
    assert (pot >= pg2).all()  # contains the limb mask
    # Inside the torso quadrilateral but more than 4 px + closing from every limb.
    for y, x in [(110, 64), (74, 54), (74, 74)]:
        assert pg2[0, 0, y, x] == 0 and pot[0, 0, y, x] == 1, (y, x)
    # Outside the body stays empty.
    assert pot[0, 0, 100, 5] == 0 and pot[0, 0, 250, 64] == 0 and pot[0, 0, 10, 64] == 0
    # Nothing is added outside the convex hulls of the head and torso joints.
    torso = torch.tensor([[60, 64], [62, 44], [62, 84], [132, 52], [132, 76]])
    added = (pot - pg2)[0, 0].nonzero()
    assert len(added) > 100
    assert added[:, 0].min() >= torso[:, 0].min() and added[:, 0].max() <= torso[:, 0].max()
    assert added[:, 1].min() >= torso[:, 1].min() and added[:, 1].max() <= torso[:, 1].max()


def test_pose_mask_potgan_torso_needs_three_points():
    kp = empty()
    kp[0, J["r_shoulder"]] = torch.tensor([10.0, 5.0])
    kp[0, J["l_hip"]] = torch.tensor([30.0, 25.0])  # two torso joints: no polygon, no limb
    assert pose_mask_potgan(kp, (40, 40)).sum() == 0
    kp[0, J["neck"]] = torch.tensor([10.0, 15.0])
    kp[0, J["r_hip"]] = torch.tensor([30.0, 5.0])
    assert pose_mask_potgan(kp, (40, 40))[0, 0, 20, 10] == 1


# --- batching, devices, registry ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ENCODING_CHANNELS))
def test_batched_equals_per_pose_and_unbatched(name):
    fn = get_encoding(name)
    kp = random_poses(3, 40, 30, seed=2)
    batch = fn(kp, (40, 30))
    assert batch.shape == (3, ENCODING_CHANNELS[name], 40, 30)
    for i in range(3):
        single = fn(kp[i], (40, 30))
        assert single.shape == batch.shape[1:]
        assert torch.equal(single, batch[i])


@pytest.mark.parametrize("name", sorted(ENCODING_CHANNELS))
def test_all_missing_gives_zeros_and_dtype_follows(name):
    fn = get_encoding(name)
    assert fn(empty(2), (9, 7)).abs().sum() == 0
    out = fn(standing_pose().double(), (128, 64))
    assert out.dtype == torch.float64 and out.sum() > 0
    assert fn(standing_pose().long(), (128, 64)).dtype == torch.float32


def test_encode_and_registry_errors():
    kp = standing_pose()
    out = encode(kp, ["heatmaps", "pose_mask_pg2"], (128, 64), {"heatmaps": {"sigma": 2.0}})
    assert set(out) == {"heatmaps", "pose_mask_pg2"}
    assert torch.equal(out["heatmaps"], heatmaps(kp, (128, 64), sigma=2.0))
    assert "distance_maps" in list_encodings()
    with pytest.raises(KeyError, match="unknown pose encoding 'heatmap'.*heatmaps"):
        encode(kp, ["heatmap"], (128, 64))
    with pytest.raises(ValueError, match="not requested"):
        encode(kp, ["disks"], (128, 64), {"heatmaps": {"sigma": 2.0}})


def test_bad_keypoints_and_size_errors():
    with pytest.raises(ValueError, match=r"keypoints must be \[N, 18, 2\].*got \[2, 17, 2\]"):
        heatmaps(torch.zeros(2, 17, 2), (8, 8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        disks(np.zeros((18, 2)), (8, 8))
    with pytest.raises(ValueError, match="size must be"):
        heatmaps(torch.zeros(18, 2), (8, 0))


def test_pose_mask_potgan_fills_head():
    kp = empty()
    for name, yx in {"nose": (40, 88), "l_eye": (34, 96), "r_eye": (34, 80), "l_ear": (38, 106),
                     "r_ear": (38, 70), "neck": (80, 88)}.items():
        kp[0, J[name]] = torch.tensor(yx, dtype=torch.float32)
    pg2, pot = pose_mask_pg2(kp, (100, 176)), pose_mask_potgan(kp, (100, 176))
    for y, x in [(45, 81), (45, 95)]:  # between the eyes, the nose and the ears
        assert pg2[0, 0, y, x] == 0 and pot[0, 0, y, x] == 1, (y, x)


def hull_fill_by_triangles(kp: np.ndarray, joints, h, w) -> np.ndarray:
    """Convex hull as the union of all triangles of present, non-collinear joints (Caratheodory)."""
    import itertools
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w), bool)
    pts = [kp[j] for j in joints if (kp[j] != -1).all()]
    for a, b, c in itertools.combinations(pts, 3):
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) < 1e-9:
            continue
        crosses = [(q[0] - p[0]) * (xx - p[1]) - (q[1] - p[1]) * (yy - p[0])
                   for p, q in ((a, b), (b, c), (c, a))]
        out |= np.all([c_ >= 0 for c_ in crosses], 0) | np.all([c_ <= 0 for c_ in crosses], 0)
    return out


@pytest.mark.parametrize("joints", [(0, 1, 14, 15, 16, 17), (1, 2, 5, 8, 11)])
def test_convex_fill_matches_triangle_union(joints):
    from fastpose.pose.encodings.masks import convex_fill
    kp = random_poses(8, 30, 20, seed=5, p_missing=0.3)
    kp[0, list(joints)] = torch.tensor([[3.0, 3.0], [3.0, 10.0], [3.0, 16.0], [20.0, 5.0],
                                        [20.0, 5.0], [20.0, 5.0]][:len(joints)])  # collinear + dupes
    kp[1, list(joints)] = -1
    kp[1, list(joints[:3])] = torch.tensor([[2.0, 2.0], [6.0, 6.0], [10.0, 10.0]])  # only a line
    out = convex_fill(kp, (30, 20), joints)
    assert out[1].sum() == 0
    # Joints on a coarse lattice: many duplicates and collinear boundary points.
    coarse = torch.cat([kp, (random_poses(24, 4, 4, seed=6, p_missing=0.2) * 6).clamp(min=-1)])
    out = convex_fill(coarse, (30, 20), joints)
    for i in range(len(coarse)):
        expected = hull_fill_by_triangles(coarse[i].double().numpy(), joints, 30, 20)
        assert np.array_equal(out[i, 0].numpy().astype(bool), expected), i
    for i in range(8):
        expected = hull_fill_by_triangles(kp[i].double().numpy(), joints, 30, 20)
        assert np.array_equal(out[i, 0].numpy().astype(bool), expected), i


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(ENCODING_CHANNELS))
def test_cuda_matches_cpu(name):
    fn = get_encoding(name)
    kp = torch.cat([standing_pose()[None], random_poses(4, 128, 64, seed=7)])
    assert torch.allclose(fn(kp.cuda(), (128, 64)).cpu(), fn(kp, (128, 64)), atol=1e-5)


# --- the scatter disks and separable distance maps against plain per-pixel statements -----------

def _disks_by_test(kp: torch.Tensor, h: int, w: int, radius: int) -> torch.Tensor:
    """Every pixel tested: dy^2 + dx^2 <= r^2 around the nearest pixel of each present joint."""
    yy = torch.arange(h, dtype=torch.float64).view(h, 1)
    xx = torch.arange(w, dtype=torch.float64).view(1, w)
    c = torch.floor(kp.double() + 0.5)
    on = (yy - c[..., 0, None, None]) ** 2 + (xx - c[..., 1, None, None]) ** 2 <= radius * radius
    return (on & (kp != -1).all(-1)[..., None, None]).float()


@pytest.mark.parametrize("radius", [0, 1, 4, 7])
def test_disks_and_peaks_match_the_per_pixel_test(radius):
    h, w = 21, 13
    g = torch.Generator().manual_seed(radius)
    # Fractional joints, joints near and beyond every border, far outside, and missing ones.
    kp = torch.rand(5, 18, 2, generator=g) * torch.tensor([h + 12.0, w + 12.0]) - 6.0
    kp[0, 0] = torch.tensor([1e6, -1e6])
    kp[1, :4] = -1
    got = disks(kp, (h, w), radius=radius)
    assert got.shape == (5, 18, h, w) and got.is_contiguous()
    assert torch.equal(got, _disks_by_test(kp, h, w, radius))
    if radius == 0:
        assert torch.equal(peaks(kp, (h, w)), got)
    assert torch.equal(disks(kp.double(), (h, w), radius=radius), got.double())


def _segment_distance_loop(a, b, p) -> float:
    a, b, p = np.asarray(a, float), np.asarray(b, float), np.asarray(p, float)
    e = b - a
    t = 0.0 if not e.any() else min(max(np.dot(p - a, e) / np.dot(e, e), 0.0), 1.0)
    return float(np.linalg.norm(p - a - t * e))


def test_distance_maps_match_a_per_pixel_loop():
    h, w = 19, 11
    kp = random_poses(3, h, w, seed=5, p_missing=0.15) + torch.rand(3, 18, 2) * 0.5
    kp[random_poses(3, h, w, seed=5, p_missing=0.15) == -1] = -1
    kp[0, DISTANCE_MAP_LIMBS[0][1]] = kp[0, DISTANCE_MAP_LIMBS[0][0]]  # a zero-length segment
    got = distance_maps(kp, (h, w), kappa=-0.3)
    for n in range(3):
        for c, (i, j) in enumerate(DISTANCE_MAP_LIMBS):
            if (kp[n, i] == -1).any() or (kp[n, j] == -1).any():
                assert got[n, c].eq(0).all()
                continue
            want = np.array([[math.exp(-0.3 * _segment_distance_loop(kp[n, i], kp[n, j], (y, x)))
                              for x in range(w)] for y in range(h)])
            np.testing.assert_allclose(got[n, c].numpy(), want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("radius", [0, 1, 4, 6])
def test_paint_disks_is_the_union_of_per_pixel_disks(radius):
    from fastpose.pose.encodings._common import paint_disks
    h, w = 17, 12
    g = torch.Generator().manual_seed(10 + radius)
    centres = (torch.rand(4, 30, 2, generator=g) * torch.tensor([h + 20.0, w + 20.0]) - 10).round()
    centres[centres == -1] = -2  # -1 would read as "missing" in the per-pixel statement
    valid = torch.rand(4, 30, generator=g) < 0.7
    got = paint_disks(centres.long(), valid, radius, (h, w))
    kp = torch.where(valid[..., None], centres, torch.full_like(centres, -1.0))
    want = _disks_by_test(kp, h, w, radius).amax(1).bool()
    assert got.dtype == torch.bool and torch.equal(got, want)


def test_pose_mask_potgan_from_a_given_pg2_mask():
    kp = torch.cat([standing_pose()[None], random_poses(4, 128, 64, seed=3)])
    pg2 = pose_mask_pg2(kp, (128, 64), radius=3)
    assert torch.equal(pose_mask_potgan(kp, (128, 64), radius=3, pg2_mask=pg2),
                       pose_mask_potgan(kp, (128, 64), radius=3))
    with pytest.raises(ValueError, match=r"pg2_mask must be \[5, 1, 128, 64\]"):
        pose_mask_potgan(kp, (128, 64), pg2_mask=pg2[:2])
