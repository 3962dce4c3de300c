"""Articulated skeleton, pose sampling and camera views of the synthetic people.

Everything is in *head units* (the height of a head ~ 1/7.5 of the body). A person has a local
frame (``l`` = the person's left, ``u`` = up, ``f`` = forward); a view turns it by a yaw angle into
the camera frame (``x`` = image right, ``y`` = up, ``z`` = towards the camera), and an
orthographic projection maps camera ``(x, y)`` to pixels. Depth ``z`` decides occlusion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


# Axes of the person's local frame as 3-vectors in local coordinates (l, u, f).
LEFT = np.array([1.0, 0.0, 0.0])
UP = np.array([0.0, 1.0, 0.0])
FWD = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Body:
    """Per-identity proportions in head units (a standing person is ~7.6 units tall)."""

    shoulder_half: float = 0.85  # half the shoulder width
    hip_half: float = 0.45  # half the distance between the hip joints
    torso_len: float = 2.25  # pelvis centre to neck (mid-shoulders)
    neck_len: float = 0.30  # neck to the bottom of the head
    upper_arm: float = 1.40  # shoulder to elbow
    forearm: float = 1.15  # elbow to wrist
    hand: float = 0.55  # wrist to fingertips
    thigh: float = 1.85  # hip to knee
    shin: float = 1.75  # knee to ankle
    foot: float = 0.80  # heel to toe
    head_rx: float = 0.42  # head half-width
    head_ry: float = 0.52  # head half-height
    build: float = 1.0  # multiplies limb and torso radii (slim < 1 < broad)
    chest_depth: float = 0.55  # torso front-to-back half-depth


@dataclass
class Pose:
    """Joint angles (radians) of one sampled pose; ``family`` names the sampler that made it."""

    family: str
    shoulder_flex: tuple[float, float]  # (left, right) arm swing forward (+) / back (-)
    shoulder_abd: tuple[float, float]  # (left, right) arm raised sideways
    elbow_flex: tuple[float, float]  # (left, right) elbow bend
    elbow_dir: tuple[tuple[float, float, float], tuple[float, float, float]]  # bend direction
    # (outward, up, forward) weights in which the forearm folds, per arm
    hip_flex: tuple[float, float]  # (left, right) leg swing forward (+) / back (-)
    hip_abd: tuple[float, float]  # (left, right) leg spread sideways
    knee_flex: tuple[float, float]  # (left, right) knee bend (shin folds backwards)
    lean: tuple[float, float] = (0.0, 0.0)  # torso lean (forward, to the person's left)
    head_yaw: float = 0.0  # head turn relative to the body, towards the person's left
    head_tilt: float = 0.0  # head roll, towards the person's left shoulder


@dataclass
class Skeleton3D:
    """Joint positions in the person's local frame (head units), ground at u = 0."""

    joints: dict[str, np.ndarray]  # named 3D points: the OpenPose-18 names plus pelvis, head
    # (centre), l/r_hand (fingertips), l/r_heel, l/r_toe
    head_frame: tuple[np.ndarray, np.ndarray, np.ndarray]  # (left, up, forward) of the head
    dirs: dict[str, np.ndarray] = field(default_factory=dict)  # unit directions: spine, limbs


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else fallback


def _limb_dir(side: np.ndarray, flex: float, abd: float) -> np.ndarray:
    """Direction of a limb hanging down, swung forward by ``flex`` and out by ``abd``."""
    sag = math.cos(flex) * -UP + math.sin(flex) * FWD
    return _unit(math.sin(abd) * side + math.cos(abd) * sag, -UP)


def _bend(d: np.ndarray, angle: float, toward: np.ndarray) -> np.ndarray:
    """Rotate unit ``d`` by ``angle`` towards ``toward`` (orthogonalised against ``d``)."""
    b = toward - np.dot(toward, d) * d
    b = _unit(b, _unit(FWD - np.dot(FWD, d) * d, UP))
    return math.cos(angle) * d + math.sin(angle) * b


def build_skeleton(body: Body, pose: Pose) -> Skeleton3D:
    """Forward kinematics: joint positions of ``body`` in ``pose`` (local frame, ground at 0)."""
    j: dict[str, np.ndarray] = {}
    dirs: dict[str, np.ndarray] = {}
    pelvis = np.zeros(3)
    lf, ll = pose.lean
    spine = _unit(UP + math.tan(lf) * FWD + math.tan(ll) * LEFT, UP)
    neck = pelvis + spine * body.torso_len
    j["pelvis"], j["neck"] = pelvis, neck
    dirs["spine"] = spine
    # Head frame: yaw about the spine, then a small roll.
    cy, sy = math.cos(pose.head_yaw), math.sin(pose.head_yaw)
    hf = _unit(cy * FWD - sy * LEFT, FWD)
    hl = _unit(cy * LEFT + sy * FWD, LEFT)
    hu = _unit(spine + math.tan(pose.head_tilt) * hl, UP)
    hl = _unit(hl - np.dot(hl, hu) * hu, LEFT)
    hf = np.cross(hl, hu)
    head_c = neck + spine * body.neck_len + hu * body.head_ry * 0.95
    j["head"] = head_c
    j["nose"] = head_c + hf * (body.head_rx * 1.08) - hu * 0.08
    for name, s in (("l", 1.0), ("r", -1.0)):
        j[f"{name}_eye"] = head_c + hf * (body.head_rx * 0.86) + hu * 0.05 + hl * (s * 0.16)
        j[f"{name}_ear"] = head_c + hl * (s * body.head_rx * 0.98) - hf * 0.03 - hu * 0.03
    for i, (name, s) in enumerate((("l", 1.0), ("r", -1.0))):
        side = s * LEFT
        sho = neck + side * body.shoulder_half - spine * 0.05
        d_up = _limb_dir(side, pose.shoulder_flex[i], pose.shoulder_abd[i])
        elbow = sho + d_up * body.upper_arm
        w_out, w_up, w_fwd = pose.elbow_dir[i]
        toward = w_out * side + w_up * UP + w_fwd * FWD
        d_fore = _bend(d_up, pose.elbow_flex[i], toward)
        wrist = elbow + d_fore * body.forearm
        j[f"{name}_shoulder"], j[f"{name}_elbow"], j[f"{name}_wrist"] = sho, elbow, wrist
        j[f"{name}_hand"] = wrist + d_fore * body.hand
        dirs[f"{name}_upper_arm"], dirs[f"{name}_forearm"] = d_up, d_fore
        hip = pelvis + side * body.hip_half
        d_th = _limb_dir(side, pose.hip_flex[i], pose.hip_abd[i])
        knee = hip + d_th * body.thigh
        d_sh = _bend(d_th, pose.knee_flex[i], -FWD)
        ankle = knee + d_sh * body.shin
        foot_dir = _unit(FWD - np.dot(FWD, d_sh) * d_sh, FWD)
        j[f"{name}_hip"], j[f"{name}_knee"], j[f"{name}_ankle"] = hip, knee, ankle
        j[f"{name}_heel"] = ankle + d_sh * 0.22 - foot_dir * 0.15
        j[f"{name}_toe"] = ankle + d_sh * 0.22 + foot_dir * (body.foot - 0.15)
        dirs[f"{name}_thigh"], dirs[f"{name}_shin"] = d_th, d_sh
    # Stand on the lowest shoe sole (0.17 = shoe radius).
    ground = min(j[f"{s}_{p}"][1] for s in "lr" for p in ("heel", "toe")) - 0.17
    for k in j:
        j[k] = j[k] - ground * UP
    return Skeleton3D(joints=j, head_frame=(hl, hu, hf), dirs=dirs)


# The skeleton names its joints like the OpenPose-18 keypoints, so keypoint i is
# ``joints[KEYPOINT_NAMES[i]]``.


# ---------------------------------------------------------------------------------------------
# Pose samplers: a registry of families, each drawing joint angles from a numpy Generator.

POSE_FAMILIES: dict = {}


def register_pose_family(name: str):
    def deco(fn):
        POSE_FAMILIES[name] = fn
        return fn
    return deco


def _d(deg: float) -> float:
    return math.radians(deg)


# Arm actions: (shoulder flex, shoulder abduction, elbow flex) ranges in degrees, and the
# (outward, up, forward) direction in which the forearm folds.
ARM_ACTIONS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float],
                             tuple[float, float, float]]] = {
    "down": ((-8, 12), (4, 14), (5, 25), (0.0, 0.0, 1.0)),  # relaxed at the side
    "raised": ((0, 40), (110, 165), (0, 30), (0.0, 0.3, 1.0)),  # up in the air
    "wave": ((-5, 25), (70, 100), (60, 100), (0.0, 1.0, 0.25)),  # upper arm out, forearm up
    "hip": ((-15, 5), (30, 45), (85, 115), (-1.0, 0.0, 0.15)),  # hand on hip, elbow out
    "phone": ((15, 35), (0, 12), (100, 125), (-0.35, 0.2, 1.0)),  # forearm up before the chest
    "point": ((70, 95), (0, 35), (0, 15), (0.0, 1.0, 0.0)),  # stretched forward
    "out": ((-10, 20), (45, 90), (0, 25), (0.0, 0.3, 1.0)),  # held out to the side
}


def _arm(kind: str, rng: np.random.Generator) -> dict:
    """Joint angles of one arm doing ``kind`` (a key of ARM_ACTIONS)."""
    flex, abd, elbow, fold = ARM_ACTIONS[kind]
    return dict(flex=_d(rng.uniform(*flex)), abd=_d(rng.uniform(*abd)),
                elbow=_d(rng.uniform(*elbow)), dir=fold)


def _pose(family: str, arms: tuple[dict, dict], legs: tuple[dict, dict],
          rng: np.random.Generator) -> Pose:
    return Pose(
        family=family,
        shoulder_flex=(arms[0]["flex"], arms[1]["flex"]),
        shoulder_abd=(arms[0]["abd"], arms[1]["abd"]),
        elbow_flex=(arms[0]["elbow"], arms[1]["elbow"]),
        elbow_dir=(arms[0]["dir"], arms[1]["dir"]),
        hip_flex=(legs[0]["flex"], legs[1]["flex"]),
        hip_abd=(legs[0]["abd"], legs[1]["abd"]),
        knee_flex=(legs[0]["knee"], legs[1]["knee"]),
        lean=(_d(rng.uniform(-3, 6)), _d(rng.uniform(-3, 3))),
        head_yaw=_d(rng.normal(0, 12)),
        head_tilt=_d(rng.normal(0, 4)),
    )


def _standing_legs(rng: np.random.Generator) -> tuple[dict, dict]:
    spread = rng.uniform(2, 9)
    shift = rng.uniform(-6, 6)
    return tuple(dict(flex=_d(shift * s + rng.uniform(-3, 3)), abd=_d(spread + rng.uniform(-2, 2)),
                      knee=_d(rng.uniform(0, 8))) for s in (1, -1))


@register_pose_family("standing")
def standing(rng: np.random.Generator) -> Pose:
    return _pose("standing", (_arm("down", rng), _arm("down", rng)), _standing_legs(rng), rng)


@register_pose_family("walking")
def walking(rng: np.random.Generator) -> Pose:
    phase = rng.uniform(0, 2 * math.pi)
    stride = rng.uniform(18, 30)
    legs, arms = [], []
    for off in (0.0, math.pi):
        s = math.sin(phase + off)
        c = math.cos(phase + off)
        # The swing leg (moving forward, c > 0) bends its knee; the stance leg stays straight.
        legs.append(dict(flex=_d(stride * s), abd=_d(rng.uniform(1, 5)),
                         knee=_d(max(0.0, c) * rng.uniform(25, 45) + rng.uniform(0, 6))))
        arms.append(dict(flex=_d(-stride * 0.9 * s), abd=_d(rng.uniform(4, 10)),
                         elbow=_d(rng.uniform(10, 30) + max(0.0, -s) * 15), dir=(0.0, 0.0, 1.0)))
    return _pose("walking", tuple(arms), tuple(legs), rng)


@register_pose_family("gesture")
def gesture(rng: np.random.Generator) -> Pose:
    """One arm does an action; the other hangs, mirrors it or rests on the hip."""
    main = str(rng.choice([k for k in ARM_ACTIONS if k != "down"]))
    other = str(rng.choice(["down", "down", main, "hip"]))
    left, right = (main, other) if rng.random() < 0.5 else (other, main)
    arms = (_arm(left, rng), _arm(right, rng))
    return _pose("gesture", arms, _standing_legs(rng), rng)


# ---------------------------------------------------------------------------------------------
# Views.

VIEWS: dict[str, tuple[float, float]] = {  # name -> (|yaw| range in degrees), either sign
    "front": (0.0, 25.0),
    "three-quarter": (30.0, 60.0),
    "side": (75.0, 100.0),
    "back-three-quarter": (120.0, 150.0),
    "back": (155.0, 180.0),
}


def sample_yaw(view: str, rng: np.random.Generator) -> float:
    """A yaw angle (radians) inside the range of ``view``, on a random side."""
    lo, hi = VIEWS[view]
    return math.radians(rng.uniform(lo, hi) * (1.0 if rng.random() < 0.5 else -1.0))


def yaw_basis(yaw: float) -> np.ndarray:
    """3x3 matrix whose rows are the person's (left, up, forward) axes in camera coordinates.

    ``yaw = 0`` faces the camera (the person's left is on the image's right), ``pi`` shows the
    back, ``+pi/2`` shows the person's right side (facing image right)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def to_camera(points: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Local (l, u, f) points ``[..., 3]`` to camera (x, y, z) ``[..., 3]``."""
    return points @ basis
