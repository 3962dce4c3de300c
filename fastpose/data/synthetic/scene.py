"""One synthetic sample: identity + sampled pose, view, framing, background and lighting."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from fastpose.data.synthetic.appearance import Identity, sample_identity
from fastpose.data.synthetic.backgrounds import cast_shadow, street_scene, studio_backdrop
from fastpose.data.synthetic.config import SyntheticConfig
from fastpose.data.synthetic.kinematics import (POSE_FAMILIES, Skeleton3D, build_skeleton,
                                                sample_yaw, yaw_basis)
from fastpose.data.synthetic.render import Camera, render_person

# Independent random streams, each seeded from (seed, STREAM, ...).
_IDENTITY, _IMAGE, _CAMERA = 0, 1, 2

# DeepFashion-style category in the file name, from the garment that defines the look.
DF_CATEGORY = {"dress": "Dresses", "skirt": "Skirts", "shorts": "Shorts", "coat": "Jackets_Coats",
               "tank": "Tees_Tanks", "tshirt": "Tees_Tanks", "longsleeve": "Sweaters",
               "pants": "Pants"}


@dataclass
class Sample:
    """One rendered image with its annotations."""

    name: str  # file name (no directory)
    image: np.ndarray  # [H, W, 3] uint8
    parsing: np.ndarray  # [H, W] uint8 CIHP labels
    keypoints: np.ndarray  # [18, 2] int (row, column), -1 = missing
    view: str  # view family name
    pose: str  # pose family name


def identity(cfg: SyntheticConfig, pid: int) -> Identity:
    return sample_identity(pid, np.random.default_rng([cfg.seed, _IDENTITY, pid]))


@functools.lru_cache(maxsize=16)
def _camera_scene(seed: int, cam: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The street scene of camera ``cam`` (larger than an image, cropped per image) and its
    colour gains."""
    rng = np.random.default_rng([seed, _CAMERA, cam])
    scene = street_scene(rng, int(h * 1.3), int(w * 1.8))
    gains = np.clip(rng.normal(1.0, 0.07, 3), 0.85, 1.15).astype(np.float32)
    return scene, gains


def _choice(rng: np.random.Generator, probs: dict[str, float]) -> str:
    names = list(probs)
    p = np.array([probs[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _frame(cfg: SyntheticConfig, skel: Skeleton3D, basis: np.ndarray, rng: np.random.Generator
           ) -> Camera:
    """Scale and place the person: height fills the image like a detector crop (Market) or a
    studio shot (DeepFashion), shrunk when the arms would leave the frame."""
    h, w = cfg.size
    st = cfg.style
    pts = np.stack(list(skel.joints.values()))
    cam_pts = pts @ basis
    top = float(cam_pts[:, 1].max()) + 0.55  # head top
    scale = rng.uniform(*st.fill) * h / top
    close_up = rng.random() < st.close_up_p
    if close_up:
        scale *= rng.uniform(1.5, 1.8)
    x_lo, x_hi = float(cam_pts[:, 0].min()) - 0.35, float(cam_pts[:, 0].max()) + 0.35
    # Centre between the pelvis and the middle of the horizontal extent (outstretched arms pull
    # the person off-centre, as a detector box would).
    centre = 0.25 * (x_lo + x_hi) + 0.5 * float((skel.joints["pelvis"] @ basis)[0])
    if not close_up:
        scale = min(scale, 1.1 * w / (x_hi - x_lo))
    ox = w / 2 + rng.uniform(-st.shift, st.shift) * w - scale * centre
    if close_up:  # head near the top, legs leave the bottom of the frame
        oy = rng.uniform(0.04, 0.08) * h + scale * top
    else:
        oy = h - rng.uniform(*st.bottom_margin) * h
    return Camera(basis=basis, scale=float(scale), ox=float(ox), oy=float(oy))


def _view_word(yaw: float) -> str:
    a = abs(math.degrees(yaw))
    return "front" if a < 60 else "back" if a > 120 else "side"


def render_sample(cfg: SyntheticConfig, split: str, pid: int, k: int) -> Sample:
    """Image ``k`` of identity ``pid`` (deterministic in (cfg.seed, pid, k))."""
    h, w = cfg.size
    st = cfg.style
    ident = identity(cfg, pid)
    rng = np.random.default_rng([cfg.seed, _IMAGE, pid, k])
    family = _choice(rng, st.pose_p)
    pose = POSE_FAMILIES[family](rng)
    view = _choice(rng, st.view_p)
    yaw = sample_yaw(view, rng)
    skel = build_skeleton(ident.body, pose)
    basis = yaw_basis(yaw)
    cam = _frame(cfg, skel, basis, rng)
    if st.street:
        # Each identity walks past several cameras: image k uses camera c0 + k*step, with a
        # step of +-1 so consecutive images come from different cameras.
        c0 = int(np.random.default_rng([cfg.seed, _IDENTITY, pid, 1]).integers(st.cameras))
        step = 1 if pid % 2 else st.cameras - 1
        cam_id = (c0 + k * step) % st.cameras + 1
        scene, gains = _camera_scene(cfg.seed, cam_id, h, w)
        y0 = int(rng.integers(0, scene.shape[0] - h + 1))
        x0 = int(rng.integers(0, scene.shape[1] - w + 1))
        bg = scene[y0:y0 + h, x0:x0 + w].copy()
    else:
        cam_id = 1
        bg = studio_backdrop(rng, h, w)
        gains = np.ones(3, np.float32)
    bg = cast_shadow(bg, cam.ox, cam.oy - 0.05 * cam.scale, 1.3 * cam.scale, 0.28 * cam.scale,
                     0.35 if st.street else 0.18)
    img, parsing, kps = render_person(ident, skel, cam, bg)
    img = img * gains * np.float32(rng.uniform(0.88, 1.1))
    if st.noise > 0:
        img = img + rng.normal(0.0, st.noise, img.shape).astype(np.float32)
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if cfg.preset == "market":
        name = f"{pid:04d}_c{cam_id}s1_{(k + 1) * 25 + pid % 25:06d}_00.png"
    else:
        garment = ident.bottom_kind if ident.bottom_kind != "pants" else ident.top_kind
        cat = DF_CATEGORY[garment]
        gender = "WOMEN" if ident.feminine else "MEN"
        name = f"fashion{gender}{cat}id{pid:08d}_{k + 1}{_view_word(yaw)}.png"
    return Sample(name=name, image=image, parsing=parsing, keypoints=kps, view=view, pose=family)
