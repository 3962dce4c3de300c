"""Render one person: image, CIHP parsing map and keypoints (with self-occlusion).

A keypoint is kept when it is inside the frame and no other surface lies in front of it at its
pixel (see :func:`occluded`)."""

from __future__ import annotations

import numpy as np

from fastpose.data.synthetic.appearance import Identity
from fastpose.data.synthetic.body import build_prims
from fastpose.data.synthetic.head import raster_head
from fastpose.data.synthetic.kinematics import Skeleton3D
from fastpose.data.synthetic.raster import Camera, Canvas, raster_prim
from fastpose.pose.openpose import KEYPOINT_NAMES, MISSING

__all__ = ["Camera", "occluded", "render_person"]

# Keypoint occlusion. A joint is hidden by any covering surface more than FRONT_SLACK in front
# of it, except its own limbs (never) and the trunk (only beyond the joint's trunk slack: a
# shoulder or hip lies inside the torso's silhouette, and is hidden only once the body has
# turned far enough, ~50 degrees, for the chest to be in front of it). Head units.
TRUNK = frozenset({"torso", "pelvis", "skirt", "coat"})
FRONT_SLACK = 0.05
OWN_PARTS: dict[str, frozenset] = {
    "nose": frozenset({"head"}), "l_eye": frozenset({"head"}), "r_eye": frozenset({"head"}),
    "l_ear": frozenset({"head"}), "r_ear": frozenset({"head"}),
    "neck": frozenset({"neck", "head", "l_upper_arm", "r_upper_arm"}),
}
for _s in "lr":
    OWN_PARTS.update({
        f"{_s}_shoulder": frozenset({"neck", f"{_s}_upper_arm"}),
        f"{_s}_elbow": frozenset({f"{_s}_upper_arm", f"{_s}_forearm"}),
        f"{_s}_wrist": frozenset({f"{_s}_forearm", f"{_s}_hand"}),
        f"{_s}_hip": frozenset({f"{_s}_thigh"}),
        f"{_s}_knee": frozenset({f"{_s}_thigh", f"{_s}_shin"}),
        f"{_s}_ankle": frozenset({f"{_s}_shin", f"{_s}_shoe"}),
    })
TRUNK_SLACK = {"neck": 2.0, "l_shoulder": 1.1, "r_shoulder": 1.1, "l_hip": 1.0, "r_hip": 1.0}
# How far inside the head surface the face joints sit (ears sit on the silhouette).
HEAD_SLACK = {"nose": 0.12, "l_eye": 0.12, "r_eye": 0.12, "l_ear": 0.2, "r_ear": 0.2}


def occluded(canvas: Canvas, r: int, c: int, z: float, own: frozenset, trunk_slack: float
             ) -> bool:
    """Whether a joint at pixel (r, c) and depth ``z`` is hidden: some surface covering the
    pixel lies in front of it, other than the joint's own limbs (``own``) and a trunk part
    less than ``trunk_slack`` in front (a shoulder sits at the edge of the torso)."""
    for i in range(canvas.n):
        if not canvas.occludes[i] or canvas.alpha[i, r, c] < 0.5 or canvas.parts[i] in own:
            continue
        slack = trunk_slack if canvas.parts[i] in TRUNK else FRONT_SLACK
        if canvas.depth[i, r, c] > z + slack:
            return True
    return False


def render_person(ident: Identity, skel: Skeleton3D, cam: Camera, background: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one person over ``background`` ``[H, W, 3]`` (float, [0, 1]).

    Returns:
        image ``[H, W, 3]`` float in [0, 1], parsing ``[H, W]`` uint8 CIHP labels and
        keypoints ``[18, 2]`` int (row, column), -1 where outside the frame or occluded.
    """
    h, w = background.shape[:2]
    prims = build_prims(ident, skel)
    canvas = Canvas(h, w, len(prims) + 1)
    for p in prims:
        raster_prim(canvas, p, cam)
    raster_head(canvas, ident, skel, cam)
    img, lab = canvas.composite(background)
    kps = np.full((len(KEYPOINT_NAMES), 2), MISSING, np.int64)
    k = ident.body.build
    for i, name in enumerate(KEYPOINT_NAMES):
        col, row, z = cam.project(skel.joints[name])
        r, c = int(round(row)), int(round(col))
        if not (0 <= r < h and 0 <= c < w):
            continue
        if name in HEAD_SLACK:  # inside the head: hidden when the head surface is in front
            hidden = occluded(canvas, r, c, z + HEAD_SLACK[name], frozenset(), 0.0)
        else:
            hidden = occluded(canvas, r, c, z, OWN_PARTS[name], TRUNK_SLACK.get(name, 0.3) * k)
        if not hidden:
            kps[i] = (r, c)
    return img, lab, kps
