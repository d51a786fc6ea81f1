"""Pruning: unstructured sparsity, structured channel removal, schedules, accuracy budgets."""

from ._api import prune, register_prune_handler
from ._budget import BudgetSearch, Trial, check_budget, search_sparsity
from ._config import AGP, Global, OneShot, PerLayer, UnstructuredConfig
from ._select import select_units
from ._structured import StructuredConfig, prune_structured
from ._targets import Masks, prunable_layers, sparsity_of
from ._unstructured import prune_step, prune_unstructured, weight_sparsity

register_prune_handler(StructuredConfig, prune_structured)

__all__ = [
    "AGP",
    "BudgetSearch",
    "Global",
    "Masks",
    "OneShot",
    "PerLayer",
    "StructuredConfig",
    "Trial",
    "UnstructuredConfig",
    "check_budget",
    "prunable_layers",
    "prune",
    "prune_step",
    "prune_structured",
    "prune_unstructured",
    "register_prune_handler",
    "search_sparsity",
    "select_units",
    "sparsity_of",
    "weight_sparsity",
]
