"""Wilson, Newcombe and the bootstrap against hand-worked values, published examples, a naive
reference bootstrap and properties that must hold for every input."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanlake.experiments.stats import (
    bootstrap_ratio,
    paired_flips,
    quantile_cont,
    rate_difference,
    statistic_of,
    wilson,
)

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_by_hand(s: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = s / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def test_wilson_by_hand_and_edges() -> None:
    # 8 of 10: p = 0.8, z²/n = 0.38415; centre (0.8 + 0.19207) / 1.38415 = 0.71681,
    # half 1.95996 · sqrt(0.016 + 0.0096037) / 1.38415 = 0.22656
    assert wilson(8, 10) == pytest.approx(wilson_by_hand(8, 10), abs=1e-15)
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # 90 %: z = 1.644854
    assert wilson(30, 50, 0.90) == pytest.approx(wilson_by_hand(30, 50, 1.6448536269514722), abs=1e-15)
    assert wilson(0, 0) == (0.0, 1.0)  # no information
    assert wilson(0, 7)[0] == 0.0 and wilson(7, 7)[1] == 1.0  # exact at the edges
    assert wilson(1, 1) == pytest.approx((wilson_by_hand(1, 1)[0], 1.0))


def test_wilson_against_newcombe_1998_single_proportion() -> None:
    # Newcombe RG (1998), "Two-sided confidence intervals for the single proportion: comparison
    # of seven methods", Stat Med 17:857-872, Table I, method 3 (score interval without
    # continuity correction), to 4 decimals.
    published = {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }
    for (s, n), interval in published.items():
        assert wilson(s, n) == pytest.approx(interval, abs=5e-5)


def test_rate_difference_by_hand() -> None:
    # b - a for a = 3/10, b = 9/10, from the two Wilson intervals (Newcombe 1998, method 10):
    # lower = d - sqrt((p_b - l_b)² + (u_a - p_a)²), upper = d + sqrt((u_b - p_b)² + (p_a - l_a)²)
    l_a, u_a = wilson_by_hand(3, 10)
    l_b, u_b = wilson_by_hand(9, 10)
    d = 0.9 - 0.3
    lower = d - math.sqrt((0.9 - l_b) ** 2 + (u_a - 0.3) ** 2)
    upper = d + math.sqrt((u_b - 0.9) ** 2 + (0.3 - l_a) ** 2)
    assert rate_difference(3, 10, 9, 10) == pytest.approx((d, lower, upper), abs=1e-14)


def test_rate_difference_against_newcombe_1998_table_ii() -> None:
    # Newcombe RG (1998), "Interval estimation for the difference between independent
    # proportions: comparison of eleven methods", Stat Med 17:873-890, Table II, method 10
    # (hybrid score, no continuity correction); the paper's p1 - p2 is our b - a.
    cases = [
        ((48, 80, 56, 70), (0.0524, 0.3339)),  # example (a): 56/70 - 48/80
        ((3, 10, 9, 10), (0.1705, 0.8090)),  # example (b): 9/10 - 3/10
    ]
    for (s_a, n_a, s_b, n_b), (lo, hi) in cases:
        d, got_lo, got_hi = rate_difference(s_a, n_a, s_b, n_b)
        assert d == pytest.approx(s_b / n_b - s_a / n_a)
        assert (got_lo, got_hi) == pytest.approx((lo, hi), abs=5e-5)
    # No success on either side: each Wilson interval is [0, z²/(n + z²)], so the difference's
    # bounds are minus a's and plus b's upper bound: 0/20 → 3.8415/23.8415, 0/10 → 3.8415/13.8415.
    u20, u10 = Z95**2 / (20 + Z95**2), Z95**2 / (10 + Z95**2)
    assert rate_difference(0, 20, 0, 10) == pytest.approx((0.0, -u20, u10), abs=1e-15)
    assert (u20, u10) == pytest.approx((0.1611, 0.2775), abs=5e-5)


def test_rate_difference_empty_side_and_bad_input() -> None:
    d, lo, hi = rate_difference(0, 0, 3, 5)
    assert math.isnan(d) and (lo, hi) == (-1.0, 1.0)
    for bad in [(3, 2, 1, 2), (-1, 2, 1, 2), (1, 2, 1, -2)]:
        with pytest.raises(ValueError):
            rate_difference(*bad)
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, 1.0)
    with pytest.raises(ValueError, match="whole"):
        wilson(1.5, 2)  # type: ignore[arg-type]


def test_quantile_cont_equals_duckdb() -> None:
    """To the bit on DuckDB's x86-64 wheels (which fuse the interpolation's multiply-add);
    other builds may round the last bit differently."""
    rng = np.random.default_rng(7)
    con = duckdb.connect()
    for n in (1, 2, 3, 10, 99, 250):
        x = rng.lognormal(5, 1, n)
        x[::4] = np.nan  # NULL in DuckDB: left out by both
        values = [None if math.isnan(v) else float(v) for v in x]
        for q in (0.5, 0.95, 0.3):
            (want,) = con.execute(f"SELECT quantile_cont(v, {q}) FROM (SELECT unnest(?) AS v)", [values]).fetchone()
            got = quantile_cont(x, q)
            assert (want is None and math.isnan(got)) or abs(got - want) <= math.ulp(want)
    assert math.isnan(quantile_cont([], 0.5)) and math.isnan(quantile_cont([math.nan], 0.5))
    # by hand: position (n - 1) · q = 0.5 → 100 + 0.5 · 100; 1.9 → 200 + 0.9 · 200
    assert quantile_cont([200, 100], 0.5) == 150 and quantile_cont([100, 400, 200], 0.95) == pytest.approx(380)


def test_statistic_of_by_hand() -> None:
    assert statistic_of([1, 2, math.nan, 6], "mean") == 3  # the NaN is missing, not 0
    assert statistic_of([100, 200, 300, 500], "p50") == 250
    # cost per success: every cost present over the successes, as the compare report
    assert statistic_of([0.1, math.nan, 0.3, 0.2], "cost_per_success", [True, True, False, False]) == pytest.approx(0.3)
    assert math.isnan(statistic_of([0.1, 0.2], "cost_per_success", [False, False]))  # no success
    assert math.isnan(statistic_of([math.nan], "cost_per_success", [True]))  # no cost known


def test_ratio_of_proportional_sides_is_exact() -> None:
    """b is a scaled 1.5x item by item: every paired resample has the ratio 1.5 exactly for every statistic."""
    a = [1.0, 2.0, 4.0, 8.0, 3.0, 5.0, 7.0, 0.5]
    b = [1.5 * v for v in a]
    wins = [True, False, True, True, False, True, True, True]
    for stat in ("mean", "p50", "p95", "cost_per_success"):
        got = bootstrap_ratio(a, b, stat, paired=True, successes_a=wins, successes_b=wins)
        assert got == pytest.approx((1.5, 1.5, 1.5))


def test_interval_contains_the_true_ratio_at_its_confidence() -> None:
    """Coverage: a is Gamma(2) (e1 + e2), b is 1.3 x Gamma(2), so the true ratio of every
    statistic is 1.3. Paired, b's item shares e1 with a's (correlation 0.5); unpaired, it is
    drawn apart. A 90 % interval must contain 1.3 in about 90 % of 150 samples."""
    rng = np.random.default_rng(11)
    for stat, paired in [("mean", False), ("p50", False), ("p95", False), ("mean", True), ("p50", True), ("p95", True)]:
        hits = 0
        for seed in range(150):
            e1, e2, e3 = rng.exponential(1.0, (3, 300))
            a = e1 + e2
            b = 1.3 * ((e1 if paired else rng.exponential(1.0, 300)) + e3)
            _, lo, hi = bootstrap_ratio(a, b, stat, paired=paired, n_resamples=500, seed=seed, confidence=0.9)
            hits += lo <= 1.3 <= hi
        # binomial(150, 0.9) has sd 3.7: 0.9 · 150 = 135, and a wrong interval (too narrow, or
        # not centred on the ratio) misses far more often
        assert 120 <= hits <= 149, (stat, paired, hits)


def test_pairing_narrows_the_interval() -> None:
    # Items of very different size (1 ... 1000 ms); the candidate is 10 % slower on each,
    # up to ±1 %. Unpaired, the spread between items swamps the 10 %; paired, it cancels.
    a = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 2.0, 20.0, 200.0] * 5
    wobble = [1.01, 0.99, 1.0, 1.005, 0.995] * 10
    b = [1.1 * v * w for v, w in zip(a, wobble, strict=True)]
    r_p, lo_p, hi_p = bootstrap_ratio(a, b, "mean", paired=True)
    r_u, lo_u, hi_u = bootstrap_ratio(a, b, "mean", paired=False)
    assert r_p == r_u == pytest.approx(1.1, abs=0.01)
    assert 1.1 * 0.99 <= lo_p <= r_p <= hi_p <= 1.1 * 1.01  # every resample's ratio of sums is
    assert lo_u < 0.8 and hi_u > 1.4  # sd of the mean alone is ~40 % of it
    assert (hi_p - lo_p) * 20 < hi_u - lo_u


def test_same_seed_same_interval() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 1, 500), rng.lognormal(0.1, 1, 500)
    wa, wb = rng.random(500) < 0.7, rng.random(500) < 0.6
    for stat in ("mean", "p50", "p95", "cost_per_success"):
        for paired in (True, False):
            kw = {"paired": paired, "successes_a": wa, "successes_b": wb}
            first = bootstrap_ratio(a, b, stat, seed=42, **kw)
            assert bootstrap_ratio(a, b, stat, seed=42, **kw) == first
            assert bootstrap_ratio(a, b, stat, seed=43, **kw) != first


def naive_interval(a: np.ndarray, b: np.ndarray, q: float, paired: bool, seed: int) -> tuple[float, float]:
    """Resample items, take each resample's quantile with numpy (the same interpolation)."""
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (20_000, a.size))
    ib = ia if paired else rng.integers(0, b.size, (20_000, b.size))
    ratios = np.quantile(b[ib], q, axis=1) / np.quantile(a[ia], q, axis=1)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


@pytest.mark.parametrize("paired", [True, False])
def test_percentile_intervals_match_a_naive_bootstrap(paired: bool) -> None:
    """The fast paths (uint16 radix sorts paired; order statistics drawn from Betas unpaired)
    against plain resampling, with 20,000 resamples each: equal up to resampling noise."""
    rng = np.random.default_rng(5)
    a = rng.lognormal(6, 0.6, 201)
    b = a * rng.lognormal(0.05, 0.2, 201) if paired else rng.lognormal(6.05, 0.6, 201)
    for stat, q in (("p50", 0.5), ("p95", 0.95)):
        _, lo, hi = bootstrap_ratio(a, b, stat, paired=paired, n_resamples=20_000)
        want = naive_interval(a, b, q, paired, seed=9)
        assert (lo, hi) == pytest.approx(want, rel=0.02), stat


def test_edge_cases() -> None:
    nan_triple = bootstrap_ratio([1.0, 2.0], [1.0, 2.0], "cost_per_success", paired=True,
                                 successes_a=[False, False], successes_b=[True, True])  # fmt: skip
    assert all(math.isnan(v) for v in nan_triple)  # no success in a: cost per success undefined
    assert all(math.isnan(v) for v in bootstrap_ratio([], [], "mean", paired=False))  # empty sides
    assert all(math.isnan(v) for v in bootstrap_ratio([1.0], [], "p50", paired=False))
    # all equal: every resample has the same statistic
    assert bootstrap_ratio([2.0] * 5, [3.0] * 7, "p95", paired=False) == (1.5, 1.5, 1.5)
    assert all(math.isnan(v) for v in bootstrap_ratio([0.0] * 3, [0.0] * 3, "mean", paired=True))  # 0 / 0
    assert bootstrap_ratio([0.0] * 3, [1.0] * 3, "mean", paired=True)[0] == math.inf
    # n = 1: the ratio is known, its spread is not
    r, lo, hi = bootstrap_ratio([2.0], [3.0], "mean", paired=True)
    assert r == 1.5 and math.isnan(lo) and math.isnan(hi)
    # missing values are left out, also inside resamples (here each side keeps one value)
    assert bootstrap_ratio([math.nan, 2.0, 2.0], [3.0, math.nan, 3.0], "mean", paired=True) == (1.5, 1.5, 1.5)


def test_resamples_without_a_success_make_the_cost_interval_open_ended() -> None:
    # b: 1 success in 3 items; a resample misses it with probability (2/3)³ = 0.30 > 2.5 %,
    # so more than 2.5 % of resampled ratios are infinite: the upper bound is inf.
    r, lo, hi = bootstrap_ratio([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "cost_per_success", paired=False,
                                successes_a=[True] * 3, successes_b=[True, False, False])  # fmt: skip
    # and all three drawn (probability (1/3)³ = 3.7 % > 2.5 %) gives the lowest ratio, 3 / 3
    assert (r, lo, hi) == (3.0, 1.0, math.inf)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="aligned"):
        bootstrap_ratio([1.0, 2.0], [1.0], "mean", paired=True)
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ratio([1.0], [1.0], "p99", paired=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="successes_a"):
        bootstrap_ratio([1.0], [1.0], "cost_per_success", paired=True, successes_b=[True])
    with pytest.raises(ValueError, match="one entry per value"):
        bootstrap_ratio([1.0], [1.0], "cost_per_success", paired=True, successes_a=[True, True], successes_b=[True])
    with pytest.raises(ValueError, match="numbers"):
        bootstrap_ratio(["x"], [1.0], "mean", paired=False)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ratio([1.0], [1.0], "mean", paired=False, n_resamples=0)


def test_paired_flips() -> None:
    a = {"q1": True, "q2": True, "q3": False, "q4": False, "q5": True, "q7": None, "q8": np.bool_(True)}
    b = {"q2": False, "q1": False, "q3": True, "q4": False, "q6": False, "q7": True, "q8": np.bool_(False)}
    # q5, q6: only on one side; q7 was undecided in a: neither
    assert paired_flips(a, b) == (["q1", "q2", "q8"], ["q3"])  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------------

counts = st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))
levels = st.floats(0.5, 0.999)


@given(counts, levels)
def test_wilson_properties(sn: tuple[int, int], confidence: float) -> None:
    s, n = sn
    lo, hi = wilson(s, n, confidence)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo <= s / n <= hi
        # successes and failures swapped: the interval mirrors
        assert wilson(n - s, n, confidence) == pytest.approx((1 - hi, 1 - lo), abs=1e-12)


@given(counts, counts, levels)
def test_rate_difference_properties(a: tuple[int, int], b: tuple[int, int], confidence: float) -> None:
    (s_a, n_a), (s_b, n_b) = a, b
    d, lo, hi = rate_difference(s_a, n_a, s_b, n_b, confidence)
    assert -1.0 <= lo <= hi <= 1.0
    if n_a and n_b:
        assert lo <= d <= hi
        # swapping successes and failures on both sides negates the difference and its interval
        d2, lo2, hi2 = rate_difference(n_a - s_a, n_a, n_b - s_b, n_b, confidence)
        assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo), abs=1e-12)
        # and so does swapping the sides
        assert rate_difference(s_b, n_b, s_a, n_a, confidence) == pytest.approx((-d, -hi, -lo), abs=1e-12)


values = st.lists(st.floats(0.0, 1e6, allow_nan=False) | st.just(math.nan), min_size=0, max_size=30)


@settings(max_examples=60, deadline=None)
@given(values, values, st.sampled_from(["mean", "p50", "p95", "cost_per_success"]), st.booleans(), st.integers(0, 9))
def test_bootstrap_interval_contains_the_ratio(
    a: list[float], b: list[float], stat: str, paired: bool, seed: int
) -> None:
    if paired:
        b = (b + a)[: len(a)] if len(b) < len(a) else b[: len(a)]
    wins_a = [i % 3 != 0 for i in range(len(a))]
    wins_b = [i % 2 == 0 for i in range(len(b))]
    r, lo, hi = bootstrap_ratio(a, b, stat, paired=paired, successes_a=wins_a, successes_b=wins_b,  # type: ignore[arg-type]
                                n_resamples=200, seed=seed)  # fmt: skip
    wa, wb = (wins_a, wins_b) if stat == "cost_per_success" else (None, None)
    sa, sb = statistic_of(a, stat, wa), statistic_of(b, stat, wb)  # type: ignore[arg-type]
    if math.isnan(sa) or math.isnan(sb) or sa == 0:
        assert math.isnan(r) or math.isinf(r)
        assert math.isnan(lo) and math.isnan(hi)
        return
    assert r == pytest.approx(sb / sa)
    if not math.isnan(lo):
        assert 0 <= lo <= r <= hi
