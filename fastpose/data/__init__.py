"""Datasets: PATN-format pair datasets, parsing maps and the embedded synthetic people set."""

from fastpose.data.annotations import read_annotations, write_annotations
from fastpose.data.cihp import CIHP_FLIP, CIHP_INDEX, CIHP_LABELS, NUM_CIHP_LABELS
from fastpose.data.dataset import PairDataset, available_encodings, parse_encodings
from fastpose.data.deepfashion import crop_deepfashion, crop_image, flat_name
from fastpose.data.encoder import BatchEncoder, stack_samples, unstack_batch
from fastpose.data.errors import DataError, Problem, ProblemLog
from fastpose.data.layout import PRESET_PREFIX, PRESET_SIZE, Layout
from fastpose.data.memory import retain_freed_memory
from fastpose.data.pairs import build_pairs, make_pairs_csv, read_pairs, write_pairs

__all__ = ["BatchEncoder", "CIHP_FLIP", "CIHP_INDEX", "CIHP_LABELS", "DataError", "Layout",
           "NUM_CIHP_LABELS", "PRESET_PREFIX", "PRESET_SIZE", "PairDataset", "Problem", "ProblemLog",
           "available_encodings", "build_pairs", "crop_deepfashion", "crop_image", "flat_name",
           "make_pairs_csv", "parse_encodings", "read_annotations", "read_pairs",
           "retain_freed_memory", "stack_samples", "unstack_batch", "write_annotations",
           "write_pairs"]
