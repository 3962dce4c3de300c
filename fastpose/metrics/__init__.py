"""The evaluation metrics of the pose-transfer papers, batched on CPU or GPU.

| name | what | needs |
|---|---|---|
| ``ssim`` | SSIM on 0..255 images (Gaussian 11/1.5, population covariance) | targets |
| ``mask_ssim`` | SSIM of both images times the target pose mask | targets, target keypoints |
| ``pssim`` | part-based SSIM (Shi et al.) | targets, target keypoints |
| ``is`` / ``mask_is`` | Inception Score (10 splits), plain / pose-masked | FID Inception weights |
| ``fid`` | Fréchet Inception Distance to the targets | targets, FID Inception weights |
| ``lpips`` / ``lpips_vgg`` | LPIPS v0.1, AlexNet / VGG16 | targets, backbone + lin weights |
| ``pckh`` | PCKh@0.5 of keypoints detected on the generated images | target keypoints, a detector |

Every metric: ``m = build_metric(name, MetricOptions(...)); m.update(EvalBatch(...)); m.compute()``.
:func:`evaluate_batches` runs several metrics (and the copy-source / real-data rows) over batches,
:func:`evaluate_folder` scores a folder of generated images against a dataset's test pairs,
:func:`format_table` prints the papers' table, :func:`report_dict` / :func:`format_report` turn
results into JSON and back into the table. ``python -m fastpose.evaluate`` is the command line. Conventions and weight files: README "Evaluation
metrics" and each module's docstring. torchvision is not needed.
"""

from fastpose.metrics import fid, inception_score, lpips, pckh, pssim, ssim  # noqa: F401 (register)
from fastpose.metrics.batch import EvalBatch, from_pair_batch, to_uint8
from fastpose.metrics.fid import FID, FeatureStats, fid_from_features, frechet_distance
from fastpose.metrics.folder import (FolderReport, GeneratedPairs, evaluate_batches,
                                     evaluate_folder, read_generated_folder)
from fastpose.metrics.inception import InceptionV3, load_inception
from fastpose.metrics.inception_score import InceptionScore
from fastpose.metrics.inception_score import inception_score as inception_score_from_probs
from fastpose.metrics.lpips import LPIPS, LPIPSMetric, load_lpips
from fastpose.metrics.options import MetricOptions
from fastpose.metrics.pckh import PCKh, head_size, pckh_counts
from fastpose.metrics.pose_estimator import (BLAZEPOSE_TO_OPENPOSE18, MediaPipePose,
                                             PoseEstimator, blazepose_to_openpose18,
                                             get_pose_estimator)
from fastpose.metrics.registry import (METRICS, Metric, MetricResult, available_metrics,
                                       build_metric, build_metrics, list_metrics, metric_encodings,
                                       metric_info, register_metric)
from fastpose.metrics.report import format_report, report_dict
from fastpose.metrics.ssim import SSIMMetric, ssim_per_image
from fastpose.metrics.table import DATASET_COLUMNS, ROW_LABELS, format_table
from fastpose.metrics.weights import MetricUnavailable, WeightsUnavailable

__all__ = [
    "BLAZEPOSE_TO_OPENPOSE18", "DATASET_COLUMNS", "EvalBatch", "FID", "FeatureStats",
    "FolderReport", "GeneratedPairs", "InceptionScore", "InceptionV3", "LPIPS", "LPIPSMetric",
    "METRICS", "MediaPipePose", "Metric", "MetricOptions", "MetricResult", "MetricUnavailable",
    "PCKh", "PoseEstimator", "ROW_LABELS", "SSIMMetric", "WeightsUnavailable",
    "available_metrics", "blazepose_to_openpose18", "build_metric", "build_metrics",
    "evaluate_batches", "evaluate_folder", "fid_from_features", "format_report", "format_table",
    "frechet_distance", "from_pair_batch", "get_pose_estimator", "head_size",
    "inception_score_from_probs", "list_metrics", "load_inception", "load_lpips",
    "metric_encodings", "metric_info", "pckh_counts", "read_generated_folder", "register_metric",
    "report_dict", "ssim_per_image", "to_uint8",
]
