"""Measurements: accuracy, parameter and MAC counts, latency, the combined profile, and the
accuracy budget a measured drop is judged by."""

from ._accuracy import correct_mask, evaluate_accuracy, paired_drop
from ._budget import Budget
from ._counts import count_macs, count_nonzero_params, count_params, layer_macs
from ._cpu import cpu_info
from ._latency import fixed_threads, interleaved_latency, measure_latency, time_callable
from ._metric import Metric, resolve_metric
from ._profile import Profile, profile

__all__ = [
    "Budget",
    "Metric",
    "Profile",
    "correct_mask",
    "count_macs",
    "count_nonzero_params",
    "count_params",
    "cpu_info",
    "evaluate_accuracy",
    "fixed_threads",
    "interleaved_latency",
    "layer_macs",
    "measure_latency",
    "paired_drop",
    "profile",
    "resolve_metric",
    "time_callable",
]
