"""PCKh (PATN's calPCKH convention) on hand-made keypoints, and the BlazePose -> OpenPose-18 map."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from fastpose.metrics import (BLAZEPOSE_TO_OPENPOSE18, EvalBatch, MetricOptions,
                              MetricUnavailable, PCKh, PoseEstimator, blazepose_to_openpose18,
                              build_metric, get_pose_estimator, head_size, pckh_counts)

M = -1.0


def pose(joints: dict[int, tuple[float, float]]) -> torch.Tensor:
    kp = torch.full((18, 2), M)
    for j, (y, x) in joints.items():
        kp[j] = torch.tensor([y, x])
    return kp


# head joints: nose (0), neck (1), eyes/ears (14-17); the box is 20 wide (x) and 10 high (y)
REF = pose({0: (20, 30), 1: (30, 30), 14: (18, 25), 15: (18, 35), 16: (20, 20), 17: (22, 40),
            2: (35, 20), 5: (35, 40), 8: (70, 25), 11: (70, 35)})


def test_head_size_is_the_box_of_the_present_head_joints():
    only_two = pose({0: (10, 5), 14: (13, 12)})
    only_one = pose({0: (10, 5), 2: (40, 40)})
    hw = head_size(torch.stack([REF, only_two, only_one]))
    torch.testing.assert_close(hw, torch.tensor([[12.0, 20.0], [3.0, 7.0], [-1.0, -1.0]],
                                                dtype=torch.float64))


def test_pckh_by_hand():
    pred = REF.clone()
    pred[2] += torch.tensor([4.9, 9.9])  # |dy| < 0.5 * 12 and |dx| < 0.5 * 20: correct
    pred[5] += torch.tensor([0.0, 10.0])  # |dx| = 0.5 * 20 exactly: wrong (strict)
    pred[8] += torch.tensor([6.0, 0.0])  # |dy| = 0.5 * 12: wrong
    pred[11] = M  # not detected: wrong, still counted
    pred[3] = torch.tensor([50.0, 30.0])  # detected where the reference has nothing: not counted
    correct, valid = pckh_counts(pred[None], REF[None])
    assert valid.tolist() == [10] and correct.tolist() == [7]


def test_pairs_without_a_head_box_are_skipped():
    ref = pose({0: (10, 10), 2: (20, 20), 5: (20, 30)})  # one head joint only
    correct, valid = pckh_counts(ref[None], ref[None])
    assert correct.tolist() == [0] and valid.tolist() == [0]
    metric = PCKh()
    metric.update(EvalBatch(torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
                            target_keypoints=torch.stack([REF, ref]),
                            generated_keypoints=torch.stack([REF, ref])))
    result = metric.compute()
    assert result.value == 1.0
    assert result.details == {"correct": 10, "joints": 10, "skipped_pairs": 1, "alpha": 0.5,
                              "reference": "annotations"}


def pckh_loop(pred: torch.Tensor, ref: torch.Tensor, alpha: float = 0.5) -> tuple[int, int]:
    """The script's per-joint loops, written out (x = column 1, y = column 0)."""
    n_correct = n_all = 0
    for p, r in zip(pred.tolist(), ref.tolist()):
        head = [(y, x) for j, (y, x) in enumerate(r) if j in (0, 1, 14, 15, 16, 17)
                and y != -1 and x != -1]
        if len(head) < 2:
            continue
        w = max(x for _, x in head) - min(x for _, x in head)
        h = max(y for y, _ in head) - min(y for y, _ in head)
        n_all += sum(1 for y, _ in r if y != -1)
        for (py, px), (ty, tx) in zip(p, r):
            if -1 in (px, py, tx, ty):
                continue
            n_correct += abs(px - tx) < w * alpha and abs(py - ty) < h * alpha
    return n_correct, n_all


def test_pckh_equals_the_loop_on_random_poses():
    g = torch.Generator().manual_seed(0)
    ref = torch.randint(0, 60, (200, 18, 2), generator=g).float()
    ref[torch.rand(200, 18, generator=g) < 0.3] = M
    pred = ref + torch.randint(-8, 9, ref.shape, generator=g)
    pred[torch.rand(200, 18, generator=g) < 0.2] = M
    pred[ref == M] = torch.where(torch.rand(ref[ref == M].shape, generator=g) < 0.5, M, 5.0)
    correct, valid = pckh_counts(pred, ref)
    assert (int(correct.sum()), int(valid.sum())) == pckh_loop(pred, ref)


class FixedEstimator(PoseEstimator):
    """Returns fixed keypoints; counts calls."""

    def __init__(self, keypoints: torch.Tensor) -> None:
        self.keypoints, self.calls = keypoints, 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.keypoints[: images.shape[0]]


def test_pckh_metric_detects_with_its_estimator():
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    shifted = REF.clone()
    shifted[2:14] += 100  # every body joint far off, head joints kept
    est = FixedEstimator(torch.stack([REF, shifted]))
    metric = build_metric("pckh", MetricOptions(pose_estimator=est))
    metric.update(EvalBatch(images, target_keypoints=torch.stack([REF, REF])))
    assert est.calls == 1
    assert metric.compute().value == pytest.approx(16 / 20)
    # reference re-detected on the target with the same estimator
    est2 = FixedEstimator(torch.stack([REF, REF]))
    detected = build_metric("pckh", MetricOptions(pose_estimator=est2,
                                                  pckh_reference="detected"))
    batch = EvalBatch(images, target=images)
    detected.update(batch)
    assert est2.calls == 1  # generated and target are one tensor here: detected once
    assert detected.compute().value == 1.0
    with pytest.raises(ValueError, match="no pose estimator"):
        PCKh().update(EvalBatch(images, target_keypoints=torch.stack([REF, REF])))
    with pytest.raises(ValueError, match="reference"):
        PCKh(reference="openpose")


def test_blazepose_landmarks_map_to_openpose18():
    h, w = 200, 100
    lm = torch.zeros(2, 33, 3)  # second image: no detection
    for i in range(33):  # landmark i at (x, y) = (i / 40, i / 35), visible
        lm[0, i] = torch.tensor([i / 40, i / 35, 0.9])
    lm[0, 26, 2] = 0.3  # right knee barely visible -> missing
    lm[0, 28, 0] = 1.2  # right ankle extrapolated off-image -> missing
    kp = blazepose_to_openpose18(lm, (h, w))
    assert kp.shape == (2, 18, 2)
    assert (kp[1] == M).all()
    expected = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 11: 23, 12: 25, 13: 27,
                14: 5, 15: 2, 16: 8, 17: 7}
    for joint, landmark in expected.items():
        torch.testing.assert_close(kp[0, joint], torch.tensor(
            [landmark / 35 * h, landmark / 40 * w], dtype=torch.float64))
    torch.testing.assert_close(kp[0, 1], torch.tensor([11.5 / 35 * h, 11.5 / 40 * w],
                                                      dtype=torch.float64))  # neck
    assert (kp[0, 9] == M).all() and (kp[0, 10] == M).all()
    assert len(BLAZEPOSE_TO_OPENPOSE18) == 18
    with pytest.raises(ValueError, match=r"\[N, 33, 3\]"):
        blazepose_to_openpose18(torch.zeros(1, 18, 3), (h, w))


def test_mediapipe_missing_is_reported_as_unavailable():
    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("mediapipe is installed")
    with pytest.raises(MetricUnavailable, match=r"fastpose\[pose\]"):
        get_pose_estimator("mediapipe")
    with pytest.raises(KeyError, match="unknown pose estimator"):
        get_pose_estimator("openpose")


def test_mediapipe_finds_the_astronaut():
    pytest.importorskip("mediapipe")
    data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None]
    kp = get_pose_estimator("mediapipe")(img)
    assert kp.shape == (1, 18, 2)
    assert (kp[0, [0, 1, 2, 5]] != M).all()  # nose, neck and both shoulders are in the picture
    assert kp[0, 2, 1] < kp[0, 5, 1]  # her right shoulder is on the left of the image
