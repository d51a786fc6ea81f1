"""Dependency graphs: trace a model and find the groups of channels that must be pruned together.

Example:
    >>> from slimkit.graph import DependencyGraph
    >>> graph = DependencyGraph.build(model, torch.randn(1, 1, 28, 28))
    >>> print(graph.table())
"""

from ._blocks import removable_blocks, remove_blocks
from ._graph import (
    DependencyGraph,
    Group,
    Member,
    Plan,
    Structure,
    apply_plan,
    restore_structure,
)
from ._labels import UnionFind
from ._trace import (
    MODULE_HANDLERS,
    RULES,
    WIDTH_ATTRS,
    OpCall,
    OpRecord,
    TraceContext,
    register_module_handler,
    register_op_rule,
    trace,
)

__all__ = [
    "MODULE_HANDLERS",
    "RULES",
    "WIDTH_ATTRS",
    "DependencyGraph",
    "Group",
    "Member",
    "OpCall",
    "OpRecord",
    "Plan",
    "Structure",
    "TraceContext",
    "UnionFind",
    "apply_plan",
    "register_module_handler",
    "register_op_rule",
    "removable_blocks",
    "remove_blocks",
    "restore_structure",
    "trace",
]
