"""The statistics a comparison and a gate read: Wilson intervals for rates, Newcombe's interval
for the difference of two rates, percentile-bootstrap intervals for ratios of cost and latency
statistics (paired when both sides saw the same items), and the items that flipped.

Conventions, the same in every function here:
- Intervals are two-sided at `confidence` (0.95: 2.5 % in each tail).
- Undefined is NaN, never None, so every result is a tuple of floats: a rate difference with
  an empty side, a ratio whose statistic cannot be computed on a side (no values; for
  `cost_per_success`, no success). A comparison with NaN is False: a gate reading one must
  treat it as "not enough data", never as a pass.
- Percentiles are DuckDB's `quantile_cont` (linear interpolation between the order statistics
  around (n - 1) * q; `quantile_cont` to the bit), so p50/p95 equal spanlake's reports;
  missing values (NaN, the reports' NULL) are left out of every statistic, as SQL aggregates
  leave NULLs out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Statistic = Literal["mean", "p50", "p95", "cost_per_success"]
STATISTICS: tuple[Statistic, ...] = ("mean", "p50", "p95", "cost_per_success")
QUANTILES = {"p50": 0.5, "p95": 0.95}
# A bootstrap interval needs this many values on each side: with one, every resample is that
# value and the interval would claim a certainty one item cannot give.
MIN_BOOTSTRAP_VALUES = 2
# Resampled indexes per chunk: a chunk's arrays stay in the CPU cache between passes.
_CHUNK = 1 << 18
_SMALL = 1 << 16  # sides up to this size sort resampled ranks as uint16 (numpy's radix sort)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the rate successes / n; (0.0, 1.0) when n = 0 (no information).

    Bounds are exact at the edges: 0.0 when there is no success, 1.0 when all succeeded."""
    z = _z(confidence)
    if isinstance(successes, bool) or isinstance(n, bool) or int(successes) != successes or int(n) != n:
        raise ValueError(f"successes and n must be whole numbers, got {successes!r} and {n!r}")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def rate_difference(s_a: int, n_a: int, s_b: int, n_b: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(b - a, lower, upper): the difference of the rates s_b/n_b - s_a/n_a and its interval by
    Newcombe's hybrid score method (method 10 of Newcombe 1998, from the two Wilson intervals).

    With an empty side the difference is undefined: (NaN, -1.0, 1.0)."""
    lo_a, hi_a = wilson(s_a, n_a, confidence)
    lo_b, hi_b = wilson(s_b, n_b, confidence)
    if n_a == 0 or n_b == 0:
        return math.nan, -1.0, 1.0
    p_a, p_b = s_a / n_a, s_b / n_b
    d = p_b - p_a
    lower = d - math.sqrt((p_b - lo_b) ** 2 + (hi_a - p_a) ** 2)
    upper = d + math.sqrt((hi_b - p_b) ** 2 + (p_a - lo_a) ** 2)
    return d, max(-1.0, lower), min(1.0, upper)


def quantile_cont(values: Sequence[float] | Floats, q: float) -> float:
    """DuckDB's `quantile_cont(x, q)`: NaN left out; NaN when no value is left. To the bit where
    DuckDB's build fuses the interpolation's multiply-add (its x86-64 wheels do), else within
    one unit in the last place."""
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])
    if x.size == 0:
        return math.nan
    h = (x.size - 1) * q
    lo = math.floor(h)
    d = h - lo
    if d == 0:
        return float(x[lo])
    # DuckDB computes lo * (1 - d) + hi * d with a fused multiply-add (its build contracts
    # it): fma(lo, 1 - d, hi * d), rounded once. Exact rationals give the same bits.
    return float(Fraction(float(x[lo])) * Fraction(1.0 - d) + Fraction(float(x[lo + 1]) * d))


def statistic_of(values: Sequence[float], statistic: Statistic, successes: Sequence[bool] | None = None) -> float:
    """One side's statistic, NaN when undefined: `mean`, `p50`, `p95` of the values present;
    `cost_per_success` = sum of the costs present / number of successes, as the compare
    report's cost per successful task (NaN without a success or without any cost)."""
    x = np.asarray(values, dtype=np.float64)
    present = x[~np.isnan(x)]
    if statistic == "cost_per_success":
        if successes is None:
            raise ValueError("cost_per_success needs the successes of each item")
        wins = int(np.count_nonzero(np.asarray(successes, dtype=bool)))
        return float(present.sum() / wins) if wins and present.size else math.nan
    if statistic == "mean":
        return float(present.mean()) if present.size else math.nan
    if statistic in QUANTILES:
        return quantile_cont(present, QUANTILES[statistic])
    raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")


def bootstrap_ratio(
    a: Sequence[float],
    b: Sequence[float],
    statistic: Statistic,
    *,
    paired: bool,
    successes_a: Sequence[bool] | None = None,
    successes_b: Sequence[bool] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(statistic(b) / statistic(a), lower, upper) with a percentile bootstrap interval over items.

    `paired`: a[i] and b[i] are the same item (the caller aligns them); each resample draws
    item indexes once for both sides. Unpaired: each side is resampled on its own, its present
    values for mean and percentiles, all its items for cost_per_success. NaN values are missing.

    The ratio is NaN when either statistic is undefined (`statistic_of`), and b's / 0 (inf, or
    NaN for 0 / 0) when a's statistic is 0; the interval is then NaN, and also when a side has
    fewer than MIN_BOOTSTRAP_VALUES values (items, for cost_per_success). A resample with cost
    but no success has an infinite cost per success (an interval can reach 0 or inf);
    resamples whose ratio is undefined are left out. The bounds are the resampled ratios at
    the outer ranks of the tails (no interpolation, which infinities would break), widened to
    the ratio if they miss it (a percentile interval can, on few items). Deterministic for a seed.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a whole number of at least 1, got {n_resamples!r}")
    _z(confidence)
    xa, xb = _values(a, "a"), _values(b, "b")
    if paired and xa.size != xb.size:
        raise ValueError(f"paired sides must be aligned item by item: {xa.size} values against {xb.size}")
    cps = statistic == "cost_per_success"
    wa = _successes(successes_a, xa.size, "a") if cps else None
    wb = _successes(successes_b, xb.size, "b") if cps else None
    point = float(_ratio(np.array(statistic_of(xb, statistic, wb)), np.array(statistic_of(xa, statistic, wa))))
    nan = math.nan
    if not math.isfinite(point):
        return point, nan, nan
    counted = [x.size if cps else int(np.count_nonzero(~np.isnan(x))) for x in (xa, xb)]
    if min(counted) < MIN_BOOTSTRAP_VALUES:
        return point, nan, nan

    side_a, side_b = _Side(xa, wa), _Side(xb, wb)
    n_resamples = int(n_resamples)
    if paired:
        rng = np.random.default_rng(seed)
        ra, rb = np.empty(n_resamples), np.empty(n_resamples)
        rows = max(1, _CHUNK // xa.size)
        for start in range(0, n_resamples, rows):
            idx = rng.integers(0, xa.size, size=(min(rows, n_resamples - start), xa.size), dtype=np.int32)
            ra[start : start + idx.shape[0]] = side_a.on_items(idx, statistic)
            rb[start : start + idx.shape[0]] = side_b.on_items(idx, statistic)
    else:
        rng_a, rng_b = np.random.default_rng(seed).spawn(2)
        ra, rb = side_a.unpaired(rng_a, statistic, n_resamples), side_b.unpaired(rng_b, statistic, n_resamples)
    ratios = _ratio(rb, ra)
    ratios = np.sort(ratios[~np.isnan(ratios)])
    if ratios.size == 0:
        return point, nan, nan
    alpha = 1 - confidence
    lo = float(ratios[math.floor(alpha / 2 * (ratios.size - 1))])
    hi = float(ratios[math.ceil((1 - alpha / 2) * (ratios.size - 1))])
    return point, min(lo, point), max(hi, point)


def paired_flips(a: Mapping[str, bool], b: Mapping[str, bool]) -> tuple[list[str], list[str]]:
    """(regressed, improved): keys in both, True in a and False in b, resp. False → True; sorted.
    None (undecided, as Item.success can be) is neither."""
    both = [k for k in a.keys() & b.keys() if a[k] is not None and b[k] is not None]
    regressed = sorted(k for k in both if bool(a[k]) and not bool(b[k]))
    improved = sorted(k for k in both if not bool(a[k]) and bool(b[k]))
    return regressed, improved


def _values(given: Sequence[float], side: str) -> Floats:
    try:
        x = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{side} must be a sequence of numbers (NaN for a missing value)") from None
    if x.ndim != 1:
        raise ValueError(f"{side} must be a flat sequence of numbers")
    return x


def _successes(given: Sequence[bool] | None, n: int, side: str) -> Bools:
    if given is None:
        raise ValueError(f"cost_per_success needs successes_{side}")
    w = np.asarray(given, dtype=bool)
    if w.shape != (n,):
        raise ValueError(f"successes_{side} must have one entry per value ({n}), got {w.size}")
    return w


def _ratio(num: Any, den: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return num / den


def _lerp(lo: Any, hi: Any, d: Any) -> Any:
    """DuckDB's interpolation (`lo * (1 - d) + hi * d`; exact at d = 0), on arrays."""
    return np.where(d == 0, lo, lo * (1.0 - d) + hi * d)


class _Side:
    """One side prepared for resampling: values with missing ones as 0 and a presence mask,
    and the present values in ascending order with each item's rank among them (missing items
    rank after every present one), so a resample's k-th smallest value is that of its k-th
    smallest rank."""

    def __init__(self, x: Floats, successes: Bools | None) -> None:
        missing = np.isnan(x)
        self.n = x.size
        self.has_missing = bool(missing.any())
        self.present = ~missing
        self.zeroed = np.where(missing, 0.0, x)
        self.wins = successes
        order = np.argsort(x, kind="stable")  # NaN last
        self.sorted = x[order]
        self.m = int(np.count_nonzero(self.present))
        self.rank = np.empty(x.size, dtype=np.uint16 if x.size <= _SMALL else np.int32)
        self.rank[order] = np.arange(x.size)

    def on_items(self, idx: npt.NDArray[np.int32], statistic: Statistic) -> Floats:
        """The statistic of each row of item indexes (a paired resample)."""
        counts: Any = np.count_nonzero(self.present[idx], axis=1) if self.has_missing else self.n
        if statistic in QUANTILES:
            return self._order_statistics(self.rank[idx], QUANTILES[statistic], counts)
        sums = self.zeroed[idx].sum(axis=1)
        if statistic == "mean":
            return np.where(counts > 0, _ratio(sums, counts), np.nan)
        assert self.wins is not None
        # cost without a success: infinite cost per success; no cost at all: undefined
        return np.where(counts > 0, _ratio(sums, np.count_nonzero(self.wins[idx], axis=1)), np.nan)

    def _order_statistics(self, ranks: npt.NDArray[Any], q: float, counts: Any) -> Floats:
        if isinstance(counts, int) and ranks.dtype != np.uint16:
            h = (counts - 1) * q
            lo, hi = math.floor(h), math.ceil(h)
            part = np.partition(ranks, sorted({lo, hi}), axis=1)
            return _lerp(self.sorted[part[:, lo]], self.sorted[part[:, hi]], h - lo)
        ordered = np.sort(ranks, axis=1, kind="stable")  # a radix sort for uint16
        m = np.maximum(np.broadcast_to(counts, (ranks.shape[0],)), 1)
        h = (m - 1) * q
        lo, hi = np.floor(h).astype(np.int64), np.ceil(h).astype(np.int64)
        x_lo = self.sorted[np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]]
        x_hi = self.sorted[np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]]
        return np.where(np.asarray(counts) > 0, _lerp(x_lo, x_hi, h - lo), np.nan)

    def unpaired(self, rng: np.random.Generator, statistic: Statistic, b: int) -> Floats:
        """The statistic of `b` resamples of this side alone."""
        if statistic in QUANTILES:
            return self._resampled_quantile(rng, QUANTILES[statistic], b)
        out = np.empty(b)
        size = self.m if statistic == "mean" else self.n
        rows = max(1, _CHUNK // size)
        values = self.zeroed[self.present]
        for start in range(0, b, rows):
            idx = rng.integers(0, size, size=(min(rows, b - start), size), dtype=np.int32)
            if statistic == "mean":  # the present values, resampled
                out[start : start + idx.shape[0]] = values[idx].mean(axis=1)
            else:
                out[start : start + idx.shape[0]] = self.on_items(idx, statistic)
        return out

    def _resampled_quantile(self, rng: np.random.Generator, q: float, b: int) -> Floats:
        """The q-quantile of `b` resamples of the m present values, drawn without drawing the
        resamples: the k-th smallest of m uniform (0, 1) draws is Beta(k, m - k + 1), and the
        next one lies above it by (1 - that) * Beta(1, m - k); floor(m * u) maps a uniform draw
        to a uniform rank, keeping order. So the ranks of the two order statistics around
        (m - 1) * q are drawn exactly as resampling m items would give them, in O(b)."""
        m = self.m
        h = (m - 1) * q
        lo = math.floor(h)
        d = h - lo
        u_lo = rng.beta(lo + 1, m - lo, size=b)
        u_hi = u_lo + (1 - u_lo) * rng.beta(1, m - lo - 1, size=b) if d > 0 else u_lo
        r_lo = np.minimum((m * u_lo).astype(np.int64), m - 1)
        r_hi = np.minimum((m * u_hi).astype(np.int64), m - 1)
        return _lerp(self.sorted[r_lo], self.sorted[r_hi], d)
