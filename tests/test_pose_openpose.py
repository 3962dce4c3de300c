"""The OpenPose-18 tables against the published code (PATN tool/pose_utils.py, PG2 _getPoseMask)."""

from fastpose.pose import openpose as op

# PATN LIMB_SEQ (0-based) and produce_ma_mask / PG2 _getPoseMask limbs (1-based), as published.
PATN_LIMB_SEQ = [[1, 2], [1, 5], [2, 3], [3, 4], [5, 6], [6, 7], [1, 8], [8, 9], [9, 10], [1, 11],
                 [11, 12], [12, 13], [1, 0], [0, 14], [14, 16], [0, 15], [15, 17], [2, 16], [5, 17]]
MASK_LIMBS_1_BASED = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11],
                      [2, 12], [12, 13], [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18],
                      [2, 17], [2, 18], [9, 12], [12, 6], [9, 3], [17, 18]]


def test_limbs_match_patn():
    assert [list(l) for l in op.LIMBS] == PATN_LIMB_SEQ


def test_mask_limbs_match_pg2_and_patn():
    assert [[a + 1, b + 1] for a, b in op.MASK_LIMBS] == MASK_LIMBS_1_BASED
    assert len(op.MASK_LIMBS) == 23


def test_distance_map_limbs_are_the_twelve_body_segments():
    assert len(op.DISTANCE_MAP_LIMBS) == 12
    used = {j for limb in op.DISTANCE_MAP_LIMBS for j in limb}
    assert used == set(range(1, 14))  # neck and the 12 body joints: no face point


def test_flip_index_is_an_involution_swapping_sides():
    for i, j in enumerate(op.FLIP_INDEX):
        assert op.FLIP_INDEX[j] == i
        a, b = op.KEYPOINT_NAMES[i], op.KEYPOINT_NAMES[j]
        assert a[2:] == b[2:] if a[:2] in ("l_", "r_") else a == b
        if a.startswith("l_"):
            assert b.startswith("r_")
