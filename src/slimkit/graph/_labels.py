"""Union-find over channel positions: the bookkeeping behind dependency groups.

Every channel of every traced tensor dimension carries an integer label. Two labels are joined
when the channels they name must be removed together (an ``add`` of two tensors joins their
channel labels position by position; a grouped convolution joins a whole group's inputs and
outputs). After tracing, each union-find class is one prunable unit: removing it removes every
channel position carrying one of its labels.
"""

from __future__ import annotations

import numpy as np

Labels = np.ndarray  # 1-D int64 array: one label per index of a tensor dimension


class UnionFind:
    """Disjoint sets of channel labels, with a "blocked" mark and its reasons per class."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._blocked: dict[int, list[str]] = {}
        self.sources: set[int] = set()

    def __len__(self) -> int:
        return len(self._parent)

    def new(self, count: int, *, source: bool = False) -> Labels:
        """Fresh labels, each its own class; ``source`` marks channels a layer creates."""
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        labels = np.arange(start, start + count, dtype=np.int64)
        if source:
            self.sources.update(labels.tolist())
        return labels

    def find(self, label: int) -> int:
        parent = self._parent
        while parent[label] != label:
            parent[label] = parent[parent[label]]  # path halving keeps later finds short
            label = parent[label]
        return label

    def roots(self, labels: Labels) -> np.ndarray:
        """The class (root label) of each label, as an array shaped like ``labels``."""
        return np.fromiter((self.find(x) for x in labels.tolist()), np.int64, len(labels))

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self._parent[rb] = ra
        reasons = self._blocked.pop(rb, None)
        if reasons is not None:
            self._blocked.setdefault(ra, []).extend(reasons)

    def union_arrays(self, a: Labels, b: Labels) -> None:
        """Join ``a[i]`` with ``b[i]`` for every position."""
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            if x != y:
                self.union(x, y)

    def union_all(self, labels: Labels) -> None:
        """Join every label of ``labels`` into one class (a group that must go as a whole)."""
        values = labels.tolist()
        for other in values[1:]:
            self.union(values[0], other)

    def block(self, labels: Labels, reason: str) -> None:
        """Mark the classes of ``labels`` as unprunable, remembering why."""
        for root in set(self.roots(labels).tolist()):
            reasons = self._blocked.setdefault(root, [])
            if reason not in reasons and len(reasons) < 8:
                reasons.append(reason)

    def blocked(self, root: int) -> list[str]:
        """Why the class ``root`` cannot be pruned (empty if it can)."""
        return self._blocked.get(self.find(root), [])
