"""Datasets: PATN-format pair datasets, parsing maps and the embedded synthetic people set."""

from fastpose.data.cihp import CIHP_FLIP, CIHP_INDEX, CIHP_LABELS, NUM_CIHP_LABELS

__all__ = ["CIHP_FLIP", "CIHP_INDEX", "CIHP_LABELS", "NUM_CIHP_LABELS"]
