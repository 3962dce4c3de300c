"""Loss combinations of the PATN generator (Shi et al. 2020, Tables 1-4): parsing and checking.

A combination is a list of loss names, given as ``--losses gan,per,pssim`` (``+`` also separates,
case is ignored, so the paper's labels ``GAN+Per+pSSIM*`` work too), and a weight per loss:

| name | label | loss (images in [-1, 1] unless said) |
|---|---|---|
| ``l1`` | L1 | ``mean|G - I_t|``, equation (1) |
| ``per`` | Per | L1 of VGG19 relu1_2 features, equation (2) |
| ``gan`` | GAN | ``(L_G(D_PB) + L_G(D_PP)) / 2``, equation (3) (the D losses are scaled by it too) |
| ``ssim`` | SSIM | ``1 - MSSIM`` on [0, 1] images, equation (7) |
| ``pssim`` | pSSIM | ``1 - pSSIM`` with the target's part masks, equation (10) |
| ``pssim_star`` (``pssim*``) | pSSIM* | background as one more part, equation (11) |

Weights come from the config's ``lambda_<name>`` fields (the preset's values: the paper's) and can be
overridden for the selected losses with ``--loss-weights gan=5,per=10,pssim=10``. Errors name the
problem: an unknown name, an empty list, a repeated loss, a negative or non-numeric weight, a
weight for a loss that is not selected.
"""

from __future__ import annotations

import math
from typing import Mapping

# Canonical names in the order the paper writes combinations (GAN+Per+L1+pSSIM).
LOSS_NAMES: tuple[str, ...] = ("gan", "per", "l1", "ssim", "pssim", "pssim_star")
LOSS_LABELS: dict[str, str] = {"gan": "GAN", "per": "Per", "l1": "L1", "ssim": "SSIM",
                               "pssim": "pSSIM", "pssim_star": "pSSIM*"}
# Accepted spellings (lower case) -> canonical name.
LOSS_ALIASES: dict[str, str] = {
    **{n: n for n in LOSS_NAMES},
    "pssim*": "pssim_star", "perceptual": "per", "adv": "gan", "adversarial": "gan",
}


class LossSpecError(ValueError):
    """A malformed loss combination or weight list."""


def _split(spec: str) -> list[str]:
    return [t.strip() for t in spec.replace("+", ",").split(",") if t.strip()]


def parse_loss_names(spec: str) -> tuple[str, ...]:
    """``"gan,per,pssim"`` or ``"GAN+Per+pSSIM*"`` -> canonical names, in the order given."""
    tokens = _split(spec)
    if not tokens:
        raise LossSpecError(f"--losses is empty ({spec!r}); choose from {', '.join(LOSS_NAMES)} "
                            f"(e.g. --losses gan,per,pssim)")
    names = []
    for t in tokens:
        name = LOSS_ALIASES.get(t.lower())
        if name is None:
            raise LossSpecError(f"unknown loss {t!r} in --losses {spec!r}; known: "
                                f"{', '.join(LOSS_NAMES)} (also pssim* for pssim_star)")
        if name in names:
            raise LossSpecError(f"loss {name!r} is listed twice in --losses {spec!r}")
        names.append(name)
    return tuple(names)


def _check_weight(name: str, value: float, where: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise LossSpecError(f"weight of loss {name!r} must be a finite number >= 0, got {value!r} "
                            f"({where})")
    return float(value)


def parse_loss_weights(spec: str) -> dict[str, float]:
    """``"gan=5,per=10"`` -> ``{"gan": 5.0, "per": 10.0}`` (names canonicalised, weights checked)."""
    out: dict[str, float] = {}
    for item in [t.strip() for t in spec.split(",") if t.strip()]:
        if "=" not in item:
            raise LossSpecError(f"--loss-weights item {item!r} must be NAME=WEIGHT "
                                f"(e.g. --loss-weights gan=5,per=10,pssim=10)")
        raw, val = (s.strip() for s in item.split("=", 1))
        name = LOSS_ALIASES.get(raw.lower())
        if name is None:
            raise LossSpecError(f"unknown loss {raw!r} in --loss-weights {spec!r}; known: "
                                f"{', '.join(LOSS_NAMES)}")
        if name in out:
            raise LossSpecError(f"loss {name!r} has two weights in --loss-weights {spec!r}")
        try:
            w = float(val)
        except ValueError:
            raise LossSpecError(f"weight of loss {name!r} is not a number: {val!r}") from None
        out[name] = _check_weight(name, w, "--loss-weights")
    return out


def resolve_losses(losses: str, loss_weights: str, defaults: Mapping[str, float]) -> dict[str, float]:
    """The selected losses with their weights, ``{name: weight}`` in the order of ``losses``.

    Args:
        losses: the ``--losses`` list.
        loss_weights: ``--loss-weights`` overrides, only for selected losses.
        defaults: a weight for every name in :data:`LOSS_NAMES` (the config's ``lambda_*``).
    """
    names = parse_loss_names(losses)
    overrides = parse_loss_weights(loss_weights)
    extra = [n for n in overrides if n not in names]
    if extra:
        raise LossSpecError(f"--loss-weights sets {', '.join(extra)} but --losses {losses!r} does not "
                            f"select {'it' if len(extra) == 1 else 'them'}")
    return {n: overrides[n] if n in overrides else _check_weight(n, defaults[n], f"lambda_{n}")
            for n in names}


def loss_label(names) -> str:
    """The paper's label of a combination, e.g. ``GAN+Per+pSSIM``."""
    return "+".join(LOSS_LABELS[n] for n in names)
