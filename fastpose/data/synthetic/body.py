"""The body, garments and accessories of an identity as 3D primitives."""

from __future__ import annotations

from fastpose.data.cihp import CIHP_INDEX
from fastpose.data.synthetic.appearance import Identity, Material
from fastpose.data.synthetic.kinematics import FWD, UP, Skeleton3D
from fastpose.data.synthetic.raster import BACKGROUND, Prim


def build_prims(ident: Identity, skel: Skeleton3D) -> list[Prim]:
    """The body, garments and accessories of ``ident`` posed as ``skel``."""
    j, b = skel.joints, ident.body
    k = b.build
    skin_face = Material(ident.skin, CIHP_INDEX["torso_skin"])
    top, bottom = ident.top, ident.bottom
    spine = skel.dirs["spine"]
    prims: list[Prim] = []
    # Torso: chest (garment) from just under the neck to the waist.
    waist = j["pelvis"] + spine * 0.55
    chest_top = j["neck"] - spine * (b.shoulder_half * 0.62)
    prims.append(Prim(j["neck"] + spine * 0.15, j["head"] - spine * 0.2, (0.19 * k,) * 2,
                      (0.18 * k,) * 2, ((0.0, skin_face),), part="neck"))
    prims.append(Prim(chest_top, waist, (b.shoulder_half * 0.98 * k, b.chest_depth * k),
                      (b.hip_half * 1.55 * k, b.chest_depth * 0.92 * k), ((0.0, top),),
                      cap=(1.2, 3.0), bias=0.03, part="torso"))
    # Pelvis (trousers, skirt or dress), flat at the crotch.
    prims.append(Prim(waist + spine * 0.1, j["pelvis"] - spine * 0.05,
                      (b.hip_half * 1.5 * k, b.chest_depth * 0.85 * k),
                      (b.hip_half * 1.55 * k, b.chest_depth * 0.8 * k), ((0.0, bottom),),
                      cap=(3.0, 4.0), part="pelvis"))
    for side, s in (("l", "left"), ("r", "right")):
        arm_skin = Material(ident.skin, CIHP_INDEX[f"{s}_arm"])
        leg_skin = Material(ident.skin, CIHP_INDEX[f"{s}_leg"])
        ua, fa = b.upper_arm, b.forearm
        sl = ident.sleeve * (ua + fa)
        up_mats = ((0.0, top),) if sl >= ua else ((0.0, top), (sl / ua, arm_skin)) if sl > 0 else (
            (0.0, arm_skin),)
        fore_sl = sl - ua
        fore_mats = ((0.0, top), (fore_sl / fa, arm_skin)) if fore_sl > 0 else ((0.0, arm_skin),)
        # The sleeve starts a little inside the shoulder so its cap does not bulge above the
        # torso's outline.
        sho = j[f"{side}_shoulder"] - spine * 0.1 - (j[f"{side}_shoulder"] - j["neck"]) * 0.08
        prims.append(Prim(sho, j[f"{side}_elbow"], (0.26 * k,) * 2,
                          (0.22 * k,) * 2, up_mats, bias=0.02 if sl > 0 else 0.0,
                          part=f"{side}_upper_arm"))
        prims.append(Prim(j[f"{side}_elbow"], j[f"{side}_wrist"], (0.21 * k,) * 2,
                          (0.17 * k,) * 2, fore_mats, part=f"{side}_forearm"))
        wrist, hand = j[f"{side}_wrist"], j[f"{side}_hand"]
        prims.append(Prim(wrist, hand - (hand - wrist) * 0.3, (0.15 * k,) * 2, (0.14 * k,) * 2,
                          ((0.0, arm_skin),), part=f"{side}_hand"))
        # Legs: trousers, shorts (bare below mid-thigh) or bare under a skirt / dress.
        if ident.bottom_kind == "pants":
            th_mats, sh_mats = ((0.0, bottom),), ((0.0, bottom),)
        elif ident.bottom_kind == "shorts":
            th_mats, sh_mats = ((0.0, bottom), (0.55, leg_skin)), ((0.0, leg_skin),)
        else:  # skirt / dress: bare legs under a separate skirt primitive
            th_mats, sh_mats = ((0.0, leg_skin),), ((0.0, leg_skin),)
        prims.append(Prim(j[f"{side}_hip"], j[f"{side}_knee"], (0.37 * k,) * 2, (0.25 * k,) * 2,
                          th_mats, part=f"{side}_thigh"))
        prims.append(Prim(j[f"{side}_knee"], j[f"{side}_ankle"], (0.25 * k,) * 2, (0.18 * k,) * 2,
                          sh_mats, part=f"{side}_shin"))
        shoe = Material(ident.shoes, CIHP_INDEX[f"{s}_shoe"])
        prims.append(Prim(j[f"{side}_heel"], j[f"{side}_toe"], (0.17,) * 2, (0.15,) * 2,
                          ((0.0, shoe),), bias=0.01, part=f"{side}_shoe"))
    if ident.bottom_kind in ("skirt", "dress"):
        hem = 0.55 if ident.bottom_kind == "skirt" else 0.75
        knees = 0.5 * (j["l_knee"] + j["r_knee"])
        end = j["pelvis"] + (knees - j["pelvis"]) * hem
        prims.append(Prim(waist, end, (b.hip_half * 1.6 * k, b.chest_depth * 0.95 * k),
                          (b.hip_half * 2.6 * k, b.chest_depth * 1.3 * k), ((0.0, bottom),),
                          cap=(3.0, 4.0), bias=0.25, part="skirt"))
    if ident.top_kind == "coat":
        knees = 0.5 * (j["l_knee"] + j["r_knee"])
        prims.append(Prim(waist + spine * 0.2, j["pelvis"] + (knees - j["pelvis"]) * 0.35,
                          (b.hip_half * 1.65 * k, b.chest_depth * 0.98 * k),
                          (b.hip_half * 2.1 * k, b.chest_depth * 1.1 * k), ((0.0, top),),
                          cap=(3.0, 4.0), bias=0.26, part="coat"))
    if ident.hair is not None and ident.hair.length > 0:
        h = ident.hair
        top_pt = j["head"] - skel.head_frame[2] * 0.18
        bot = j["neck"] - spine * (h.length - 0.9) - FWD * (b.chest_depth * k + 0.06)
        hair = Material(h.color, CIHP_INDEX["hair"])
        prims.append(Prim(top_pt, bot, (b.head_rx * 1.05, 0.2), (b.head_rx * 1.25, 0.1),
                          ((0.0, hair),), cap=(1.0, 2.5), part="hair", occludes=False))
    if ident.hat is not None:
        hu = skel.head_frame[1]
        base = j["head"] + hu * 0.2
        prims.append(Prim(base, base + hu * 0.05, (b.head_rx * 1.35,) * 2,
                          (b.head_rx * 1.35,) * 2, ((0.0, Material(ident.hat, CIHP_INDEX["hat"])),),
                          cap=(8.0, 8.0), part="hat", occludes=False))
    bag = Material(ident.bag_color, BACKGROUND)  # CIHP has no bag class
    if ident.bag == "backpack":
        back = -FWD * (b.chest_depth * k + 0.2)
        prims.append(Prim(j["neck"] - spine * 0.55 + back, j["neck"] - spine * 1.7 + back,
                          (0.62, 0.22), (0.62, 0.22), ((0.0, bag),), cap=(2.0, 2.0),
                          part="bag", occludes=False))
    elif ident.bag == "handbag":
        d = skel.dirs["r_forearm"]
        if d @ UP < -0.3:  # only hangs from a lowered hand
            w = j["r_wrist"] + d * 0.25
            prims.append(Prim(w - UP * 0.15, w - UP * 0.85, (0.42, 0.14), (0.48, 0.14),
                              ((0.0, bag),), cap=(3.0, 3.0), part="bag",
                              occludes=False))
    return prims
