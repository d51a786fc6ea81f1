"""The accuracy budget: the one place that compares a drop with ``max_drop``.

Every verdict on a budget asks a :class:`Budget`: those of ``compress`` (a trial within
budget, the frontier's bracket, the polish stage's near misses, verify's final check, the
report's colours) and those of :func:`slimkit.prune.search_sparsity` (each candidate sparsity
of ``slimkit prune --max-drop``). It lives with the measurements, below both: a drop is what
:meth:`Metric.drop <slimkit.measure.Metric.drop>` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._checks import check_number


@dataclass(frozen=True, kw_only=True)
class Budget:
    """How much worse than the original a compressed model may score on validation.

    Attributes:
        max_drop: the largest drop allowed, in points of top-1 (or in units of the run's
            metric); a drop is how much worse a score is (``Metric.drop``), so negative when
            better.
        margin_se: how many standard errors of a drop count against it: a measured drop
            flatters the best of several noisy candidates (see ``CompressConfig.margin_se``).

    Example:
        >>> budget = Budget(max_drop=0.5, margin_se=1.0)
        >>> budget.holds(0.3), budget.holds(0.3, se=0.25), budget.recoverable(0.9)
        (True, False, True)
    """

    max_drop: float
    margin_se: float = 1.0

    #: A drop measured before (full) recovery within this many budgets is worth recovering:
    #: the plan's predicted drop, which the curves measure without fine-tuning, and the
    #: polish stage's near misses, which a longer recovery may bring within budget.
    RECOVERABLE: ClassVar[float] = 2.0

    def __post_init__(self) -> None:
        # A NaN budget would fail every drop, a negative margin flatter every candidate.
        check_number("Budget.max_drop", self.max_drop, minimum=0.0)
        check_number("Budget.margin_se", self.margin_se, minimum=0.0)

    def holds(self, drop: float, se: float = 0.0) -> bool:
        """The in-budget verdict: ``drop`` plus ``margin_se`` standard errors ``se`` of it is
        at most ``max_drop``.

        The search judges its trials with ``se=0`` (one measurement each, no error bar);
        verify passes the paired standard error of each candidate's drop.
        """
        return drop + self.margin_se * se <= self.max_drop

    def excess(self, drop: float) -> float:
        """How far ``drop`` lies over the budget (negative: within it), for Optuna's
        constraint of a trial."""
        return drop - self.max_drop

    @property
    def allowance(self) -> float:
        """The largest drop :meth:`recoverable` accepts: ``RECOVERABLE`` budgets."""
        return self.RECOVERABLE * self.max_drop

    def recoverable(self, drop: float) -> bool:
        """The looser pre-filter for a drop before (full) recovery: at most
        :attr:`allowance`. Used by the plan (how deep its first cut may go) and by polish
        (which plans over budget deserve a longer recovery)."""
        return drop <= self.allowance

    def statement(self, unit: str = "") -> str:
        """The budget in words for a message: ``0.5 points (plus 1 standard errors)``."""
        margin = f" (plus {self.margin_se:g} standard errors)" if self.margin_se else ""
        return f"{self.max_drop}{unit}{margin}"
