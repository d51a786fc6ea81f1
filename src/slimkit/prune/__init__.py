"""Pruning: unstructured sparsity, schedules, and tuning the threshold to an accuracy budget."""

from ._api import prune, register_prune_handler
from ._budget import BudgetSearch, Trial, search_sparsity
from ._config import AGP, Global, OneShot, PerLayer, UnstructuredConfig
from ._targets import Masks, prunable_layers, sparsity_of
from ._unstructured import prune_step, prune_unstructured, weight_sparsity

__all__ = [
    "AGP",
    "BudgetSearch",
    "Global",
    "Masks",
    "OneShot",
    "PerLayer",
    "Trial",
    "UnstructuredConfig",
    "prunable_layers",
    "prune",
    "prune_step",
    "prune_unstructured",
    "register_prune_handler",
    "search_sparsity",
    "sparsity_of",
    "weight_sparsity",
]
