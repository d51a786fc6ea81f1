"""The one bisection every search halves an interval with.

A search that halves an interval between a point where a test holds and one where it fails
calls :func:`bisect` with that test as its probe: the sparsity search of ``slimkit prune --max-drop`` (a trial per
point, judged by the accuracy budget), the keep-ratio search of ``target_macs`` /
``target_latency`` (a pruned candidate per point, measured against the target) and the
threshold search of the compress plan (an allocation per point, priced against the fraction
of the cost it keeps).
"""

from __future__ import annotations

from collections.abc import Callable


def _same(point: float) -> float:
    return point


def bisect(
    holds_at: float,
    fails_at: float,
    probe: Callable[[float], bool | None],
    *,
    steps: int,
    snap: Callable[[float], float] = _same,
) -> tuple[float, float]:
    """Halve the interval between ``holds_at`` and ``fails_at`` up to ``steps`` times.

    Each step probes the middle (after ``snap``, which rounds it to a point the search can
    take): ``probe(point)`` returns True when its test holds there (the point becomes the
    ``holds_at`` end), False when it fails (the ``fails_at`` end), or None to stop, the
    search having found what it wanted. Either end may be the larger one.

    Args:
        holds_at: the end where the test holds (known, or assumed).
        fails_at: the end where it fails.
        probe: evaluates a point; see above.
        steps: the most points probed.
        snap: maps the middle to the point probed (identity by default).

    Returns:
        The final ``(holds_at, fails_at)`` ends.

    Example:
        >>> bisect(0.0, 1.0, lambda x: x * x <= 0.5, steps=20)[0]  # doctest: +ELLIPSIS
        0.7071...
    """
    for _ in range(steps):
        point = snap((holds_at + fails_at) / 2)
        verdict = probe(point)
        if verdict is None:
            break
        if verdict:
            holds_at = point
        else:
            fails_at = point
    return holds_at, fails_at
