"""CUPED in the analysis: each user's pre-period metric as the covariate of the same metric in the test.

The pre-period is the time before the test when the champion served every user; the log holds it as its own
experiment, ``pre_period_key(key)``, whose single variant is the control. The engine reduces both periods to
per-user sums of the metric's numerator and denominator; ``cuped_stats`` joins them by user (a user without
pre-period traffic has covariate sums 0) into per-arm ``CupedStats``, and ``cuped_effects`` reports the
adjusted effect beside the plain one: the interval widths with and without CUPED and the variance reduction.

>>> pre_period_key("sentiment-ab")
'sentiment-ab.pre'
"""

from __future__ import annotations

import glob as globmod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow.compute as pc

from abkit.errors import AbkitError
from abkit.stats.aggregates import ArmStats, CupedStats, Moments
from abkit.stats.frequentist import cuped_adjust, cuped_ttest, ttest

if TYPE_CHECKING:  # imported for the annotations only: pytest would take a module-level Test* class for tests
    from abkit.stats.frequentist import TestResult

PRE_SUFFIX = ".pre"


def pre_period_key(experiment: str) -> str:
    """The log key of ``experiment``'s pre-period."""
    key = f"{experiment}{PRE_SUFFIX}"
    if len(key) > 128:
        raise AbkitError(
            f"experiment key {experiment!r} is too long for a pre-period ({key!r} > 128 characters); "
            "shorten the key to 124 characters or fewer"
        )
    return key


class UserSums(NamedTuple):
    """Per-user sums of one metric's numerator and denominator (one entry per user)."""

    unit: np.ndarray  # user key (any sortable dtype, the same in both periods)
    m: np.ndarray  # Σ numerator over the user's requests
    d: np.ndarray  # Σ denominator


class UserDaySums(NamedTuple):
    """Per-(user, day) sums of one metric's numerator and denominator (one entry per user and day with requests)."""

    unit: np.ndarray  # user key
    day: np.ndarray  # day number (days since 1970-01-01 UTC, as ``abkit.engine.Dialect.day``)
    m: np.ndarray  # Σ numerator over the user's requests that day
    d: np.ndarray  # Σ denominator


_SUMS = ("n", "m", "mm", "d", "dd", "md", "x", "xx", "e", "ee", "xe", "mx", "me", "dx", "de")


def _covariate(pre: UserSums, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``units``' pre-period sums (numerator x, denominator e); 0 for a user without pre-period traffic."""
    order = np.argsort(pre.unit, kind="stable")
    keys = pre.unit[order]
    if not len(keys):
        return np.zeros(len(units)), np.zeros(len(units))
    pos = np.minimum(np.searchsorted(keys, units), len(keys) - 1)
    hit = keys[pos] == units
    x = np.where(hit, np.asarray(pre.m, dtype=np.float64)[order][pos], 0.0)
    e = np.where(hit, np.asarray(pre.d, dtype=np.float64)[order][pos], 0.0)
    return x, e


def _cuped_of(c: dict[str, np.ndarray]) -> CupedStats:
    metric = ArmStats(c["n"], c["m"], c["mm"], c["d"], c["dd"], c["md"])
    covariate = ArmStats(c["n"], c["x"], c["xx"], c["e"], c["ee"], c["xe"])
    return CupedStats(metric, covariate, c["mx"], c["me"], c["dx"], c["de"])


def cuped_stats(test: Sequence[UserSums], pre: UserSums) -> CupedStats:
    """Per-arm ``CupedStats`` (arrays over the arms of ``test``) with each user's pre-period sums as covariate,
    over the users that carry the metric in the test (as in the analysis: labelled users for accuracy)."""
    cols: dict[str, list[float]] = {k: [] for k in _SUMS}
    for arm in test:
        m, d = np.asarray(arm.m, dtype=np.float64), np.asarray(arm.d, dtype=np.float64)
        x, e = _covariate(pre, arm.unit)  # covariate numerator and denominator (pre-period)
        carry = (m != 0) | (d != 0)  # the users carrying the metric, the analysis's units (labelled users)
        m, d, x, e = m[carry], d[carry], x[carry], e[carry]
        terms = {
            "n": np.ones_like(m),
            "m": m,
            "mm": m * m,
            "d": d,
            "dd": d * d,
            "md": m * d,
            "x": x,
            "xx": x * x,
            "e": e,
            "ee": e * e,
            "xe": x * e,
            "mx": m * x,
            "me": m * e,
            "dx": d * x,
            "de": d * e,
        }
        for k, v in terms.items():
            cols[k].append(float(v.sum()))
    return _cuped_of({k: np.asarray(v) for k, v in cols.items()})


def _running(v: np.ndarray, opens: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each user's sum up to and including each of its days (rows grouped by user, days ascending); exact on a
    user's first day and for integers."""
    total = np.cumsum(v)
    return np.where(opens, v, total - (total - v)[opens][group])


def cuped_daily_stats(test: Sequence[UserDaySums], pre: UserSums, days: Sequence[int]) -> CupedStats:
    """``CupedStats`` at every cut-off day (arrays of shape (days, arms)): at day ``days[i]`` those of the
    requests up to that day, over the users carrying the metric by then; the last day is ``cuped_stats`` of the
    whole test. Each (user, day) adds the increment of its user's cumulative sums, squares and products; a user's
    covariate enters on the first day the user carries the metric (as users are counted in the daily view)."""
    day_numbers = np.asarray(days, dtype=np.int64)
    grid = {k: np.zeros((len(day_numbers), len(test))) for k in _SUMS}
    for a, arm in enumerate(test):
        order = np.lexsort((np.asarray(arm.day), arm.unit))
        unit, day = arm.unit[order], np.asarray(arm.day, dtype=np.int64)[order]
        m, d = np.asarray(arm.m, dtype=np.float64)[order], np.asarray(arm.d, dtype=np.float64)[order]
        if not len(unit):
            continue
        opens = np.r_[True, unit[1:] != unit[:-1]]  # each user's first day
        group = np.cumsum(opens) - 1
        cm, cd = _running(m, opens, group), _running(d, opens, group)
        pm, pd_ = np.where(opens, 0.0, cm - m), np.where(opens, 0.0, cd - d)  # up to the day before
        carries = ((m != 0) | (d != 0)).astype(np.int64)  # counted exactly, not from float running sums
        first = (carries == 1) & (_running(carries, opens, group) == 1)
        x, e = _covariate(pre, unit)
        fx, fe = np.where(first, x, 0.0), np.where(first, e, 0.0)
        increments = {
            "n": first.astype(np.float64),
            "m": m,
            "mm": cm * cm - pm * pm,
            "d": d,
            "dd": cd * cd - pd_ * pd_,
            "md": cm * cd - pm * pd_,
            "x": fx,
            "xx": fx * x,
            "e": fe,
            "ee": fe * e,
            "xe": fx * e,
            "mx": m * x,
            "me": m * e,
            "dx": d * x,
            "de": d * e,
        }
        at = np.searchsorted(day_numbers, day)
        if np.any(at >= len(day_numbers)) or np.any(day_numbers[np.minimum(at, len(day_numbers) - 1)] != day):
            extra = sorted(set(day.tolist()) - set(day_numbers.tolist()))
            raise AbkitError(f"cuped_daily_stats: the test holds days {extra} that are not in days={list(days)}")
        for k, v in increments.items():
            np.add.at(grid[k][:, a], at, v)
    return _cuped_of({k: np.cumsum(v, axis=0) for k, v in grid.items()})


class CupedComparison(NamedTuple):
    """Each challenger against control on one metric, with and without the pre-period covariate (arrays over the
    challengers)."""

    adjusted: TestResult  # difference of the CUPED-adjusted means (Welch t)
    relative: TestResult  # lift of the adjusted means over the adjusted control mean (``cuped_lift``)
    plain: TestResult  # difference without the covariate
    plain_relative: TestResult  # lift without the covariate (delta method)
    control: Moments  # control's adjusted mean and per-unit variance
    treatment: Moments  # the challengers' adjusted means and per-unit variances
    theta: np.ndarray  # the adjustment coefficient, pooled over control and each challenger


def cuped_compare(stats: CupedStats, *, alpha: float) -> CupedComparison:
    """Control (arm 0 of the last axis) against every other arm of array-valued ``stats`` (arms, or days × arms),
    adjusted and plain."""
    c, t = stats[..., :1], stats[..., 1:]
    adj_c, adj_t, theta = cuped_adjust(c, t)
    return CupedComparison(
        ttest(adj_c, adj_t, alpha=alpha),
        cuped_ttest(c, t, alpha=alpha, relative=True, relative_ci="delta", lift_over="adjusted"),
        ttest(c.y.moments(), t.y.moments(), alpha=alpha),
        ttest(c.y.moments(), t.y.moments(), alpha=alpha, relative=True, relative_ci="delta"),
        adj_c,
        adj_t,
        np.broadcast_to(np.asarray(theta, dtype=np.float64), np.shape(adj_t.mean)),
    )


def cuped_effects(stats: CupedStats, metric: str, variants: Sequence[str], *, alpha: float) -> list[dict[str, Any]]:
    """Per challenger: the CUPED-adjusted difference and lift with their intervals beside the plain ones, the
    width ratio (adjusted / plain) and the variance reduction 1 − var_adjusted / var_plain of the difference."""
    if len(variants) < 2:
        return []
    cmp = cuped_compare(stats, alpha=alpha)
    adjusted, plain, rel, plain_rel = cmp.adjusted, cmp.plain, cmp.relative, cmp.plain_relative
    rows = []
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (adjusted.ci_high - adjusted.ci_low) / (plain.ci_high - plain.ci_low)
        reduction = 1.0 - adjusted.se**2 / plain.se**2
    covered = np.asarray(stats.x.d_sum > 0)
    for j, v in enumerate(variants[1:]):
        rows.append(
            {
                "metric": metric,
                "variant": v,
                "estimate": adjusted.estimate[j],
                "ci_low": adjusted.ci_low[j],
                "ci_high": adjusted.ci_high[j],
                "p_value": adjusted.p_value[j],
                "relative": rel.estimate[j],
                "relative_ci_low": rel.ci_low[j],
                "relative_ci_high": rel.ci_high[j],
                "plain_estimate": plain.estimate[j],
                "plain_ci_low": plain.ci_low[j],
                "plain_ci_high": plain.ci_high[j],
                "plain_p_value": plain.p_value[j],
                "plain_relative": plain_rel.estimate[j],
                "plain_relative_ci_low": plain_rel.ci_low[j],
                "plain_relative_ci_high": plain_rel.ci_high[j],
                "width_ratio": ratio[j],
                "variance_reduction": reduction[j],
                "theta": cmp.theta[j],
                "covariate": bool(covered[0] and covered[j + 1]),
                "method": "CUPED: the user's pre-period metric as covariate, θ pooled over arms, delta method "
                "for ratio metrics (Deng et al. 2013); Welch t; relative: the lift of the adjusted means, delta "
                "method",
            }
        )
    return rows


def has_pre_period(log_root: str | Path, experiment: str) -> bool:
    """Whether the log at ``log_root`` holds a pre-period of ``experiment``."""
    from abkit.log.layout import kind_glob

    return bool(globmod.glob(kind_glob(Path(log_root), "predictions", pre_period_key(experiment))))


def collect_cuped(
    log_root: str | Path,
    experiment: str,
    variants: Sequence[str],
    metric: Any,
    *,
    engine: str = "duckdb",
    spark: Any = None,
) -> CupedStats | None:
    """Per-arm ``CupedStats`` of ``metric`` (a concrete ratio ``Metric`` of the registry) with each user's
    pre-period value as covariate, or None when the log holds no pre-period. Both periods are reduced to
    per-user sums inside the engine (users matched by their ids, or by their 64-bit keys once both periods are
    compacted); only those sums leave it."""
    both = _both_periods(log_root, experiment, metric, engine, spark, by_day=False)
    if both is None:
        return None
    test, pre, unit = both
    empty = UserSums(np.array([], dtype=unit), np.zeros(0), np.zeros(0))
    return cuped_stats([test.get(v, empty) for v in variants], pre)


def collect_cuped_daily(
    log_root: str | Path,
    experiment: str,
    variants: Sequence[str],
    metric: Any,
    days: Sequence[int],
    *,
    engine: str = "duckdb",
    spark: Any = None,
) -> CupedStats | None:
    """``CupedStats`` of ``metric`` at every cut-off day of ``days`` (day numbers, every day of the log), arrays
    of shape (days, arms), or None without a pre-period: the sequential view of ``collect_cuped``, from per-(user,
    day) sums reduced in the engine."""
    both = _both_periods(log_root, experiment, metric, engine, spark, by_day=True)
    if both is None:
        return None
    test, pre, unit = both
    empty = UserDaySums(np.array([], dtype=unit), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
    return cuped_daily_stats([test.get(v, empty) for v in variants], pre, days)


def _both_periods(
    log_root: str | Path, experiment: str, metric: Any, engine: str, spark: Any, *, by_day: bool
) -> tuple[dict[str, Any], UserSums, type] | None:
    """The test's per-arm user sums (per day with ``by_day``), the pre-period's pooled over its arms, and the
    type of the user column; None without a pre-period."""
    if not has_pre_period(log_root, experiment):
        return None
    test_src, pre_src, keyed = _sources(log_root, experiment)
    pre = _pooled(_user_sums(pre_src, metric, engine, spark, keyed=keyed).values())
    test = _user_sums(test_src, metric, engine, spark, by_day=by_day, keyed=keyed)
    return test, pre, np.int64 if keyed else str


def _pooled(parts: Any) -> UserSums:
    parts = list(parts)
    if not parts:
        return UserSums(np.array([], dtype=str), np.zeros(0), np.zeros(0))
    return UserSums(*(np.concatenate([getattr(p, f) for p in parts]) for f in UserSums._fields))


def _sources(log_root: str | Path, experiment: str) -> tuple[Any, Any, bool]:
    """The log sources of the test and of its pre-period, and whether users may be matched by their 64-bit keys
    (both compacted with one-to-one keys and labels carrying their prediction's copy): integers to group, join
    and sort instead of strings."""
    from abkit.log.layout import log_source

    test, pre = log_source(log_root, experiment), log_source(log_root, pre_period_key(experiment))
    return test, pre, test.copied and pre.copied


def _user_sums(
    source: Any, metric: Any, engine: str, spark: Any, *, by_day: bool = False, keyed: bool = False
) -> dict[str, Any]:
    """Per arm, every user's sums of ``metric``'s numerator and denominator in the experiment of ``source``
    (``UserSums``), or with ``by_day`` every user's sums per day (``UserDaySums``). ``keyed``: users are their
    64-bit keys and the labels' sums come from their copy of the prediction (no join of the two)."""
    from abkit.engine import open_engine
    from abkit.metrics.registry import VARIABLES

    eng = open_engine(source, engine, spark=spark)
    try:
        d = eng.dialect

        def agg(name: str) -> str:  # a user's exact integer sum, as a 64-bit integer
            var = VARIABLES[name]
            return d.whole.format(x=var.per_user.format(whole=d.whole.format(x=var.fixed) if var.fixed else ""))

        day = ", day" if by_day else ""
        latency = f"{d.whole.format(x='latency_ms * 1000')} AS latency_us"
        if keyed:
            sums = {"m": metric.numerator, "d": metric.denominator}
            on_labels = {k for k, v in sums.items() if VARIABLES[v].side == "labels"}
            p_aggs = ", ".join(f"{agg(v)} AS {k}" for k, v in sums.items() if k not in on_labels) or "COUNT(*) AS n"
            users = (
                f"SELECT variant, unit_key AS unit, {d.day} AS day, {latency}, confidence FROM abkit_pred"
                if by_day
                else f"SELECT variant, unit_key AS unit, {latency}, confidence FROM abkit_pred"
            )
            query = f"SELECT variant, unit{day}, {p_aggs} FROM ({users}) u GROUP BY variant, unit{day}"
            if on_labels == set(sums):  # users with no label add nothing (``cuped_stats`` skips zero sums)
                query = (
                    f"SELECT variant, unit_key AS unit{', prediction_day AS day' if by_day else ''}, "
                    + ", ".join(f"{agg(v)} AS {k}" for k, v in sums.items())
                    + f" FROM abkit_lab GROUP BY variant, unit{day}"
                )
            elif on_labels:
                l_aggs = ", ".join(f"{agg(sums[k])} AS {k}" for k in sorted(on_labels))
                lab = (
                    f"SELECT variant, unit_key AS unit{', prediction_day AS day' if by_day else ''}, label, "
                    "predicted_label FROM abkit_lab"
                )
                match = " AND ".join(f"p.{c} = l.{c}" for c in ("variant", "unit", *(["day"] if by_day else [])))
                picks = ", ".join(f"COALESCE(l.{k}, 0) AS {k}" if k in on_labels else f"p.{k}" for k in sums)
                query = (
                    f"SELECT p.variant, p.unit{', p.day' if by_day else ''}, {picks} FROM ({query}) p LEFT JOIN "
                    f"(SELECT variant, unit{day}, {l_aggs} FROM ({lab}) x GROUP BY variant, unit{day}) l ON {match}"
                )
        else:
            rows = (
                f"SELECT variant, unit, {d.day} AS day, {latency}, confidence, predicted_label, label FROM "
                "(SELECT p.variant, p.unit_id AS unit, p.ts, p.latency_ms, p.confidence, p.predicted_label, l.label "
                "FROM abkit_pred_once p LEFT JOIN abkit_lab_once l ON p.request_id = l.request_id) j"
            )
            query = (
                f"SELECT variant, unit{day}, {agg(metric.numerator)} AS m, {agg(metric.denominator)} AS d "
                f"FROM ({rows}) r GROUP BY variant, unit{day}"
            )
        table = eng.arrow(query)
    finally:
        eng.close()
    m_scale, d_scale = VARIABLES[metric.numerator].scale, VARIABLES[metric.denominator].scale
    arms = pc.dictionary_encode(table["variant"].combine_chunks())
    arm = arms.indices.to_numpy(zero_copy_only=False)
    units = table["unit"].to_numpy()
    unit = units.astype(np.int64) if keyed else units.astype(str)
    days = table["day"].to_numpy().astype(np.int64) if by_day else np.zeros(len(unit), dtype=np.int64)
    m = pc.fill_null(table["m"], 0).to_numpy().astype(np.float64) / m_scale  # an empty sum: 0
    dd = pc.fill_null(table["d"], 0).to_numpy().astype(np.float64) / d_scale
    out: dict[str, Any] = {}
    for i, v in enumerate(arms.dictionary.to_pylist()):
        sel = np.flatnonzero(arm == i)
        # users (and days) in one order whatever the engine returned, so the float sums of ``cuped_stats`` are the
        # same on DuckDB and Spark (the per-user sums themselves are exact integers)
        sel = sel[np.lexsort((days[sel], unit[sel])) if by_day else np.argsort(unit[sel], kind="stable")]
        out[v] = UserDaySums(unit[sel], days[sel], m[sel], dd[sel]) if by_day else UserSums(unit[sel], m[sel], dd[sel])
    return out
