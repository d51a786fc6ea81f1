"""Accuracy-budgeted search: ``compress`` combines pruning, distillation and quantization.

The user states a budget (points of validation accuracy) and a goal (latency, size or MACs);
``compress`` measures per-group sensitivity, plans per-layer ratios, searches the plan's
knobs with Optuna, verifies the best candidate, exports it and writes a report.
"""

from ._compress import compress, register_report_writer, run_worker
from ._config import GOALS, RECOVERY, CompressConfig, backends
from ._heartbeat import STALE_AFTER_S, StaleTrials
from ._plan import GroupCurve, Pruner, measure_curves, plan_for_keep
from ._recipe import Recipe, load_recipe
from ._record import TrialRecord
from ._run import RunDir
from ._study import open_study, trial_records

__all__ = [
    "GOALS",
    "RECOVERY",
    "STALE_AFTER_S",
    "CompressConfig",
    "GroupCurve",
    "Pruner",
    "Recipe",
    "RunDir",
    "StaleTrials",
    "TrialRecord",
    "backends",
    "compress",
    "load_recipe",
    "measure_curves",
    "open_study",
    "plan_for_keep",
    "register_report_writer",
    "run_worker",
    "trial_records",
]
