"""The embedded synthetic people dataset.

A procedural renderer of articulated people (per-identity clothing, skin, hair, accessories;
standing, walking and gesturing poses seen from the front, side and back) that writes exactly
the PATN dataset layout (:class:`fastpose.data.layout.Layout`), with exact keypoints and CIHP
parsing maps. ``ensure_synthetic()`` generates it on first use into a cache folder; ``python -m
fastpose.data.synthetic --out DIR --preset market`` writes it anywhere.
"""

from fastpose.data.synthetic.cache import cache_root, ensure_synthetic
from fastpose.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from fastpose.data.synthetic.scene import Sample, render_sample
from fastpose.data.synthetic.writer import generate, is_complete, read_manifest

__all__ = ["GENERATOR_VERSION", "Sample", "SyntheticConfig", "cache_root", "ensure_synthetic",
           "generate", "is_complete", "read_manifest", "render_sample"]
