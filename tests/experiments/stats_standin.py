"""A private stand-in for spanlake.experiments.stats (written on its own branch, in parallel):
the same four functions, textbook versions, installed by conftest.py only while the real
module is not importable. Delete this file once experiments/stats.py is merged."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from statistics import NormalDist


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(s_a: int, n_a: int, s_b: int, n_b: int, confidence: float = 0.95) -> tuple[float, float, float]:
    pa, pb = s_a / n_a, s_b / n_b
    la, ua = wilson(s_a, n_a, confidence)
    lb, ub = wilson(s_b, n_b, confidence)
    d = pb - pa
    return d, d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2), d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)


def _stat(xs: Sequence[float], statistic: str, succ: Sequence[bool] | None) -> float:
    if statistic == "mean":
        return sum(xs) / len(xs)
    if statistic == "cost_per_success":
        s = sum(1 for v in succ or () if v)
        return sum(xs) / s if s else math.inf
    ys = sorted(xs)
    q = 0.5 if statistic == "p50" else 0.95
    pos = (len(ys) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ys) - 1)
    return ys[lo] + (ys[hi] - ys[lo]) * (pos - lo)


def bootstrap_ratio(
    a: Sequence[float],
    b: Sequence[float],
    statistic: str,
    *,
    paired: bool,
    successes_a: Sequence[bool] | None = None,
    successes_b: Sequence[bool] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    def ratio(ia: Sequence[int], ib: Sequence[int]) -> float:
        sa = [successes_a[i] for i in ia] if successes_a is not None else None
        sb = [successes_b[i] for i in ib] if successes_b is not None else None
        den = _stat([a[i] for i in ia], statistic, sa)
        num = _stat([b[i] for i in ib], statistic, sb)
        return num / den if den else math.inf

    est = ratio(range(len(a)), range(len(b)))
    rng = random.Random(seed)
    draws = []
    for _ in range(n_resamples):
        ia = [rng.randrange(len(a)) for _ in a]
        ib = ia if paired else [rng.randrange(len(b)) for _ in b]
        r = ratio(ia, ib)
        if math.isfinite(r):
            draws.append(r)
    draws.sort()
    if not draws:
        return est, math.nan, math.nan
    alpha = (1 - confidence) / 2
    return est, draws[int(alpha * (len(draws) - 1))], draws[int((1 - alpha) * (len(draws) - 1))]


def paired_flips(a: Mapping[str, bool], b: Mapping[str, bool]) -> tuple[list[str], list[str]]:
    common = [k for k in a if k in b]
    return [k for k in common if a[k] and not b[k]], [k for k in common if not a[k] and b[k]]
