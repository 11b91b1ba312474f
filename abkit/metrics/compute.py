"""Per-arm sufficient statistics of a prediction log, computed inside the engine that holds it.

The metrics of the registry (``abkit.metrics.registry``: a numerator and a denominator variable per
prediction, clustered by ``unit_id``) are rendered to SQL and run through an engine (``abkit.engine``:
DuckDB by default, or Spark). The pipeline:

1. requests: predictions of the experiment, each ``request_id`` once (the first by ``ts``), left-joined
   with its first label (by ``labelled_at``); ``labelled`` and ``correct`` flags per prediction. When every
   file of the log carries the writers' uniqueness guarantee (``abkit.log.layout``: each request id
   stored once, and the ids' stored 64-bit keys one-to-one), this reads only the experiment's own folders
   and is a plain join on the integer ``request_key``, streamed into the next step, with users grouped by
   ``unit_key``. When, in addition, every label carries its prediction's copy (written when the label was
   appended after its prediction), there is no join at all: predictions and labels are aggregated
   separately (step 3). Otherwise the requests are deduplicated on the strings and
   materialized once;
2. then each arm on its own (``WHERE variant = …``; on a log written by ``abkit.log`` each arm is its own
   row group, so the engine reads only that arm), as an independent job: with DuckDB on a unique log the
   arms run side by side, spread over one connection per core (each with its share of the threads).
   First the latency quantiles with clustered rank intervals (``abkit.stats.quantiles``): latency is kept
   in whole microseconds, so one pass gives the arm's exact histogram (distinct values and counts, far
   fewer than the rows) and with it every quantile: the estimates first, whose thresholds the per-user
   pass counts requests against (constants in its SQL), then the quantiles at the interval's probabilities;
3. per-user sums, and per side when labels carry their copy: no moment term mixes label and prediction
   variables, so the labels are aggregated on their own. Then the sums, squares and cross-products of the
   per-user sums;
4. with the daily view, per (user, day) sums instead, and a window over each user's days turns them into
   increments of the per-user sums, squares and cross-products, so the daily totals *accumulate* exactly
   into the per-arm ``ArmStats`` at every cut-off day (the sequential view); the last day is the whole test.

``abkit.stats`` never sees a row; the histograms are the one per-arm distribution that leaves the engine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from abkit.engine import ENGINES, Dialect, DuckDBEngine, Engine, SparkEngine, spark_session
from abkit.log.layout import LogSource, has_predictions, log_source
from abkit.metrics.classes import HIDDEN, derive_f1, expand, macro_moments
from abkit.metrics.custom import check_on_engine, declared_errors
from abkit.metrics.registry import VARIABLES, Metric, MetricError, check_metric
from abkit.metrics.registry import names as metric_names
from abkit.sql import sql_string
from abkit.stats.aggregates import ArmStats, Moments
from abkit.stats.config import check_alpha
from abkit.stats.quantiles import quantile_rank_interval

QUANTILES = (0.5, 0.95, 0.99)


_FIXED = {"latency_us": "latency_ms * 1000"}  # request columns kept as whole numbers, before rounding


def _fixed(dialect: Dialect, column: str) -> str:
    """The fixed-point integer of ``column`` (a variable's ``fixed`` or ``_FIXED``), rounded half to even in
    every engine. Per-user sums are then exact integers, so every sum, square and cross-product is exact:
    results do not depend on the engine's summation order, runs are bit-for-bit reproducible and DuckDB and
    Spark agree exactly."""
    var = VARIABLES.get(column)
    return dialect.whole.format(x=var.fixed if var is not None and var.fixed else _FIXED[column])


def _scale(name: str) -> float:
    """What a variable's per-user sums are divided by to give its value (1 for the quantile indicators)."""
    return VARIABLES[name].scale if name in VARIABLES else 1.0


def _label_side(name: str) -> bool:
    """Whether variable ``name`` is computed from the labels (the quantile indicators ``ind<j>`` are not)."""
    return name in VARIABLES and VARIABLES[name].side == "labels"


class QuantileStats(NamedTuple):
    """Per-arm quantile of latency with its clustered interval."""

    p: float  # probability, e.g. 0.95
    estimate: np.ndarray  # per arm quantile (linear interpolation)
    ci_low: np.ndarray  # per arm lower bound
    ci_high: np.ndarray  # per arm upper bound
    rank_se: np.ndarray  # clustered standard error of F̂(q̂) per arm


@dataclasses.dataclass(frozen=True)
class LogStats:
    """Everything the statistics need from a log; arrays are indexed by ``variants`` (and ``days``)."""

    variants: tuple[str, ...]  # arms in experiment order
    units: np.ndarray  # users per arm
    predictions: np.ndarray  # deduplicated predictions per arm
    labelled: np.ndarray  # predictions with a label per arm
    stats: dict[str, ArmStats]  # metric -> ArmStats with arrays over arms
    days: tuple[str, ...]  # ISO dates present in the log
    daily: dict[str, ArmStats]  # metric -> cumulative ArmStats, arrays of shape (days, arms)
    daily_units: np.ndarray  # cumulative users per (day, arm)
    quantiles: dict[float, QuantileStats]  # latency quantiles by probability
    unknown_variants: tuple[str, ...]  # variants in the log that the experiment does not define
    duplicates: int  # prediction rows dropped as repeated request ids
    engine: str
    indicators: tuple[
        ArmStats, ...
    ] = ()  # per quantile: per-user counts of requests at or below it (m) over requests (d)
    first_day: str | None = None  # first ISO date in the log
    last_day: str | None = None  # last ISO date in the log
    n_days: int = 0  # distinct dates in the log
    moments: dict[str, Moments] = dataclasses.field(default_factory=dict)  # metric -> Moments over arms
    #   for metrics that are smooth functions of several ratios (macro-F1)
    confusion: tuple[
        tuple[str, str, str, int], ...
    ] = ()  # (variant, label, predicted_label, count) of labelled requests
    invalid_predictions: int = 0  # rows another tool wrote that the analysis cannot use, skipped
    invalid_labels: int = 0  # label rows skipped for the same reason


_REQ_COLS = "variant, unit_id, request_id, ts, predicted_label, confidence, latency_ms"
# one row per request: ``unit`` identifies the user (its id, or its 64-bit key in a unique log)
_OUT_COLS = "variant, {unit} AS unit, {day} AS day, {latency_us} AS latency_us, confidence, predicted_label, label"


def _unique_requests_sql(dialect: Dialect) -> str:
    """Predictions with their label when the writer guaranteed each request id once and the ids' 64-bit
    keys one-to-one, reading only the experiment's own files (see module docs): a join and grouping on
    integers."""
    return f"""
SELECT {_OUT_COLS.format(unit="unit_key", day=dialect.day, latency_us=_fixed(dialect, "latency_us"))}
FROM (SELECT variant, unit_key, request_key, ts, predicted_label, confidence, latency_ms FROM abkit_pred) p
LEFT JOIN (SELECT request_key, label FROM abkit_lab) l USING (request_key)"""


def _copied_requests_sql(dialect: Dialect) -> tuple[str, str]:
    """When every label carries its prediction's copy: the predictions alone (``abkit_req``) and the labels
    as their predictions' rows (``abkit_labels``), so per-user label counts need no join."""
    preds = (
        f"SELECT variant, unit_key AS unit, {dialect.day} AS day, {_fixed(dialect, 'latency_us')} AS latency_us, confidence, "
        "predicted_label, CAST(NULL AS STRING) AS label FROM abkit_pred"
    )
    labels = "SELECT variant, unit_key AS unit, prediction_day AS day, predicted_label, label FROM abkit_lab"
    return preds, labels


def _rows_sql(unique: bool, dialect: Dialect) -> str:
    """Per prediction: arm, latency (µs) and day number (the input of the quantiles and the date range)."""
    if not unique:
        return "SELECT variant, latency_us, day FROM abkit_req"
    return f"SELECT variant, {_fixed(dialect, 'latency_us')} AS latency_us, {dialect.day} AS day FROM abkit_pred"


def _once_requests_sql(dialect: Dialect) -> str:
    """Predictions with their label from the engine's exactly-once views (compacted rows as they are, appended
    rows deduplicated against them), joined on the string ids."""
    return f"""
SELECT {_OUT_COLS.format(unit="unit_id", day=dialect.day, latency_us=_fixed(dialect, "latency_us"))}
FROM (SELECT p.variant, p.unit_id, p.ts, p.predicted_label, p.confidence, p.latency_ms, l.label
      FROM abkit_pred_once p LEFT JOIN abkit_lab_once l ON p.request_id = l.request_id) j"""


def _requests_sql(key: str, dialect: Dialect) -> str:
    """Deduplicated predictions with their first label. Only request ids stored more than once go through
    the (costly) window; the rest pass through an anti-join. Sources are inlined (not shared CTEs) so that
    each reference scans only the columns it needs instead of materializing the log."""
    k = sql_string(key)
    cols = _REQ_COLS
    p = f"(SELECT {cols} FROM abkit_pred WHERE experiment = {k})"
    l0 = f"(SELECT request_id, label, labelled_at FROM abkit_lab WHERE experiment = {k})"
    return f"""
WITH pdup AS (SELECT request_id FROM abkit_pred WHERE experiment = {k} GROUP BY request_id HAVING COUNT(*) > 1),
pd AS (
  SELECT {cols} FROM {p} p1 WHERE request_id NOT IN (SELECT request_id FROM pdup)
  UNION ALL
  SELECT {cols} FROM (
    SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY request_id
                                      ORDER BY ts, variant, unit_id, predicted_label, confidence, latency_ms) AS rn
    FROM {p} p2 WHERE request_id IN (SELECT request_id FROM pdup)) pw WHERE rn = 1),
ldup AS (SELECT request_id FROM abkit_lab WHERE experiment = {k} GROUP BY request_id HAVING COUNT(*) > 1),
l AS (
  SELECT request_id, label FROM {l0} l1 WHERE request_id NOT IN (SELECT request_id FROM ldup)
  UNION ALL
  SELECT request_id, label FROM (
    SELECT request_id, label, ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY labelled_at, label) AS rn
    FROM {l0} l2 WHERE request_id IN (SELECT request_id FROM ldup)) lw WHERE rn = 1),
j AS (SELECT pd.variant, pd.unit_id, pd.ts, pd.predicted_label, pd.confidence, pd.latency_ms, l.label
      FROM pd LEFT JOIN l ON pd.request_id = l.request_id)
SELECT {_OUT_COLS.format(unit="unit_id", day=dialect.day, latency_us=_fixed(dialect, "latency_us"))} FROM j"""


def _variables(metrics: Sequence[Metric], n_quantiles: int) -> list[str]:
    base = sorted({v for m in metrics for v in (m.numerator, m.denominator)} | {"n", "labelled"})
    return base + [f"ind{j}" for j in range(n_quantiles)]


def _moment_terms(metrics: Sequence[Metric], n_quantiles: int = 0) -> list[tuple[str, str, str]]:
    """(alias, a, b) products Σ a·b of per-user sums needed by the metrics and quantile indicators."""
    pairs = [(m.numerator, m.denominator) for m in metrics] + [(f"ind{j}", "n") for j in range(n_quantiles)]
    terms: dict[str, tuple[str, str, str]] = {}
    for num, den in pairs:
        for a, b in ((num, num), (den, den), (num, den)):
            a, b = sorted((a, b))
            terms.setdefault(f"{a}__{b}", (f"{a}__{b}", a, b))
    return list(terms.values())


class _Side(NamedTuple):
    """Requests (``abkit_req``) or, when labels carry their prediction's copy, the labels (``abkit_labels``),
    aggregated per user on their own: no moment term mixes the two sides."""

    source: str
    variables: list[str]
    terms: list[tuple[str, str, str]]
    counts_users: bool  # the side whose users are the arm's users
    pairs: list[tuple[str, str]]  # (numerator, denominator) of the metrics whose users carrying them it counts


def _sides(metrics: Sequence[Metric], n_quantiles: int, copied: bool) -> list[_Side]:
    variables, terms = _variables(metrics, n_quantiles), _moment_terms(metrics, n_quantiles)
    pairs = sorted({(m.numerator, m.denominator) for m in metrics})
    if not copied:
        return [_Side("abkit_req", variables, terms, True, pairs)]
    if any(_label_side(a) != _label_side(b) for _, a, b in terms):  # pragma: no cover - METRICS guard
        raise MetricError("a metric mixes label and prediction variables; it needs the joined requests")
    return [
        _Side(
            "abkit_req",
            [v for v in variables if not _label_side(v)],
            [t for t in terms if not _label_side(t[1])],
            True,
            [p for p in pairs if not _label_side(p[0])],
        ),
        _Side(
            "abkit_labels",
            [v for v in variables if _label_side(v)],
            [t for t in terms if _label_side(t[1])],
            False,
            [p for p in pairs if _label_side(p[0])],
        ),
    ]


def _user_sums(variables: Sequence[str], thresholds: Sequence[int] | None, dialect: Dialect) -> str:
    """Aggregates of one user's requests in one arm: the metric variables, then ``ind<j>``, the requests at
    or below the arm's latency threshold j (none without one: the arm has no predictions)."""
    sums = [
        f"{VARIABLES[v].per_user.format(whole=_fixed(dialect, v) if VARIABLES[v].fixed else '')} AS {v}"
        for v in variables
        if not v.startswith("ind")
    ]
    sums += [
        f"COUNT_IF(latency_us <= {int(thresholds[int(v[3:])])}) AS {v}" if thresholds else f"0 AS {v}"
        for v in variables
        if v.startswith("ind")
    ]
    return ", ".join(sums)


def _arm_sql(
    side: _Side, arm: str, thresholds: Sequence[int] | None, columns: Sequence[str], dialect: Dialect, daily: bool
) -> str:
    """One arm's ``columns`` (``s_<variable>``, ``ss_<term>``, ``new_units``) from one side; the columns of
    the other side are 0. ``daily``: per day, increments of the per-user cumulative sums (a window over each
    user's days), so the daily totals accumulate exactly into the statistics at every cut-off day;
    otherwise one row (day -1) over the whole log."""
    w = dialect.wide
    where = f"FROM {side.source} WHERE variant = {sql_string(arm)}"
    if daily:

        def product(a: str, b: str) -> str:
            return f"CAST(c_{a} AS {w}) * CAST(c_{b} AS {w}) - CAST(c_{a} - {a} AS {w}) * CAST(c_{b} - {b} AS {w})"

        cum = ", ".join(
            f"SUM({v}) OVER (PARTITION BY {dialect.user_key} ORDER BY day "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS c_{v}"
            for v in side.variables
        )
        source = (
            f"(SELECT ud.*, {cum} FROM (SELECT unit, day, {_user_sums(side.variables, thresholds, dialect)} "
            f"{where} GROUP BY unit, day) ud) cu GROUP BY day"
        )
        day, units = "day", "SUM(CASE WHEN c_n = n THEN 1 ELSE 0 END)"  # a user's first day
    else:

        def product(a: str, b: str) -> str:
            return f"CAST({a} AS {w}) * CAST({b} AS {w})"

        source = f"(SELECT unit, {_user_sums(side.variables, thresholds, dialect)} {where} GROUP BY unit) u"
        day, units = "-1", "COUNT(*)"
    own = {f"s_{v}": f"SUM({v})" for v in side.variables}
    own.update({f"ss_{alias}": f"SUM({product(a, b)})" for alias, a, b in side.terms})
    own["new_units"] = units if side.counts_users else "0"
    for num, den in side.pairs:  # users carrying each metric: a non-zero numerator or denominator
        now = f"{num} <> 0 OR {den} <> 0"
        if daily:  # counted on the first day the user carries it (nothing before: cumulative sums were 0)
            now = f"(c_{num} <> 0 OR c_{den} <> 0) AND c_{num} - {num} = 0 AND c_{den} - {den} = 0"
        own[_carrying(num, den)] = f"SUM(CASE WHEN {now} THEN 1 ELSE 0 END)"
    return (
        f"SELECT {sql_string(arm)} AS variant, {day} AS day, "
        f"{', '.join(f'{own.get(c, 0)} AS {c}' for c in columns)} FROM {source}"
    )


def _stats_sql(
    metrics: Sequence[Metric],
    dialect: Dialect,
    arm: str,
    thresholds: Sequence[int] | None,
    n_q: int,
    copied: bool,
    daily: bool,
) -> str:
    """Per (arm, day) rows of ``_columns`` for one arm, one aggregation per side, with the arm's ``n_q``
    latency thresholds (µs) as constants (None: the arm has no predictions); on a clustered log the engine
    reads only the arm's row groups."""
    columns = _columns(metrics, n_q)
    return "\nUNION ALL\n".join(
        _arm_sql(side, arm, thresholds, columns, dialect, daily) for side in _sides(metrics, n_q, copied)
    )


def _columns(metrics: Sequence[Metric], n_quantiles: int) -> list[str]:
    return (
        [f"s_{v}" for v in _variables(metrics, n_quantiles)]
        + [f"ss_{alias}" for alias, _, _ in _moment_terms(metrics, n_quantiles)]
        + ["new_units"]
        + sorted({_carrying(m.numerator, m.denominator) for m in metrics})
    )


def _carrying(num: str, den: str) -> str:
    """Column of the users that carry the metric ``num``/``den`` (any non-zero per-user sum of either)."""
    return f"k_{num}__{den}"


def collect(
    log_root: str | Path,
    experiment: str,
    variants: Sequence[str],
    *,
    metrics: Sequence[str] | None = None,
    quantiles: Sequence[float] = QUANTILES,
    alpha: float = 0.05,
    engine: str = "duckdb",
    spark: Any = None,
    con: Any = None,
    daily: bool = True,
    positive_label: str | None = None,
    class_metrics: bool = False,
) -> LogStats:
    """Reduce the log at ``log_root`` for ``experiment`` to per-arm (and per-day cumulative) statistics.

    ``engine="spark"`` uses ``spark`` (or a new local session); ``con`` reuses a DuckDB connection (the arms
    then run one after another on it); ``daily=False`` skips the cumulative per-day statistics (the
    sequential view), the costliest step. ``positive_label`` adds precision, recall and F1 of that label;
    ``class_metrics`` (or a positive label) adds the confusion counts per arm and, with more than two classes,
    recall per class and macro-F1 (``abkit.metrics.classes``).
    """
    root = Path(log_root)
    if engine not in ENGINES:
        raise MetricError(f"engine={engine!r} is unknown; use one of {ENGINES}")
    specs = [check_metric(m) for m in (metric_names() if metrics is None else metrics)]
    a = check_alpha(alpha)
    for p in quantiles:
        if not 0.0 < p < 1.0:
            raise MetricError(f"quantile {p!r} must lie strictly between 0 and 1, e.g. 0.95")
    if not has_predictions(root):
        raise MetricError(f"no prediction files under {root / 'predictions'}; check log_root (the PredictionLog root)")
    names = list(variants)
    probs = list(quantiles)
    src = log_source(root, experiment)
    duplicates = src.dropped  # rows compaction removed as copies of a counted request
    invalid_predictions, invalid_labels = src.invalid  # rows compaction left out as unusable
    confusion: list[tuple[str, str, str, int]] = []
    if engine == "duckdb" and con is None and src.unique and len(names) > 1:
        if positive_label or class_metrics:
            confusion = _confusion(src, experiment)
        specs, hidden, macros, derived = expand(specs, positive_label, _classes(confusion), required=metrics or ())
        job = functools.partial(_arm_pass, specs=specs + hidden, probs=probs, copied=src.copied, daily=daily)
        with ThreadPoolExecutor(1) as side:  # the variants come from file metadata meanwhile
            variants_in_log = side.submit(_variants, src, experiment)
            with declared_errors(engine, specs):
                done = _in_parallel(job, src, experiment, names)
            found = variants_in_log.result()
    else:
        opened = (
            DuckDBEngine(src, con)
            if engine == "duckdb"
            else SparkEngine(src, spark if spark is not None else spark_session())
        )
        check_on_engine(opened, specs)  # declared metrics in this engine's SQL, before a row is read
        eng = _prepared(opened, src, experiment)
        try:
            if positive_label or class_metrics:
                confusion = _confusion(src, experiment, eng)
            specs, hidden, macros, derived = expand(specs, positive_label, _classes(confusion), required=metrics or ())
            job = functools.partial(_arm_pass, specs=specs + hidden, probs=probs, copied=src.copied, daily=daily)
            with declared_errors(engine, specs):
                done = [job(eng, v) for v in names]
            found = _variants(src, experiment, eng)
            if not src.unique:
                raw, kept, lo, hi, n_days = eng.sql(
                    f"SELECT (SELECT COUNT(*) FROM abkit_pred WHERE experiment = {sql_string(experiment)}), "
                    "COUNT(*), MIN(day), MAX(day), COUNT(DISTINCT day) FROM abkit_rows"
                )[0]
                duplicates, first, last = int(raw) - int(kept) + src.dropped, _iso_day(lo), _iso_day(hi)
                invalid_predictions, invalid_labels = eng.invalid_rows()
        finally:
            for name in ("abkit_rows", "abkit_labels", "abkit_req"):
                eng.drop(name)
    if src.unique:  # no duplicates; the days are the experiment's date partitions
        first, last, n_days = src.days[0], src.days[-1], len(src.days)
    hists, rows = [h for h, _ in done], [r for _, arm_rows in done for r in arm_rows]
    unknown = tuple(sorted(found - set(names)))
    st = _assemble(rows, names, specs + hidden, len(probs), unknown, duplicates, engine)
    moments = {name: macro_moments(st.stats, pairs) for name, pairs in macros.items()}
    keep = {m.name for m in specs}
    for name, parts in derived.items():
        st.stats[name] = derive_f1(st.stats, *parts)
        if st.daily:
            st.daily[name] = derive_f1(st.daily, *parts)
        keep.add(name)
    st = dataclasses.replace(
        st,
        first_day=first,
        last_day=last,
        n_days=int(n_days),
        moments=moments,
        invalid_predictions=invalid_predictions,
        invalid_labels=invalid_labels,
        stats={k: v for k, v in st.stats.items() if k in keep},
        daily={k: v for k, v in st.daily.items() if k in keep},
        confusion=tuple(r for r in confusion if r[0] in set(names)),
    )
    if not daily:
        st = dataclasses.replace(st, days=(), daily={}, daily_units=np.zeros((0, len(names))))
    qs = _quantiles(hists, probs, _quantile_values(hists, probs), st, a) if probs else {}
    return dataclasses.replace(st, quantiles=qs)


_E = TypeVar("_E", bound=Engine)


def _prepared(eng: _E, src: LogSource, experiment: str) -> _E:
    """``eng`` with the requests (``abkit_req``), the labels with their copy (``abkit_labels``, when copied)
    and the per-prediction rows (``abkit_rows``) of ``src`` registered; materialized when they must be
    deduplicated."""
    if src.copied:
        preds, labels = _copied_requests_sql(eng.dialect)
        eng.view("abkit_req", preds)
        eng.view("abkit_labels", labels)
    elif src.unique:
        eng.view("abkit_req", _unique_requests_sql(eng.dialect))
    elif src.compacted["predictions"] or src.compacted["labels"]:  # deduplicate the appended rows only
        eng.materialize("abkit_req", _once_requests_sql(eng.dialect))
    else:  # nothing compacted yet: the same rule, only ids stored more than once go through a window
        eng.materialize("abkit_req", _requests_sql(experiment, eng.dialect))
    eng.view("abkit_rows", _rows_sql(src.unique, eng.dialect))
    return eng


def _arm_pass(
    eng: Engine, arm: str, *, specs: list[Metric], probs: list[float], copied: bool, daily: bool
) -> tuple[_Histogram | None, list[tuple[Any, ...]]]:
    """One arm on its own: its latency histogram, then its statistics rows, counting requests against its own
    quantile thresholds (latencies are whole µs: "at or below q̂" is "at or below floor(q̂)")."""
    hist = _latency_histogram(eng, arm)
    thresholds = [math.floor(q) for q in _quantile_values([hist], probs)[:, 0]] if hist is not None else None
    return hist, eng.sql(_stats_sql(specs, eng.dialect, arm, thresholds, len(probs), copied, daily))


def _in_parallel(job: Any, src: LogSource, experiment: str, arms: list[str]) -> list[Any]:
    """``job(engine, arm)`` for every arm, the arms spread over one DuckDB connection per core. The arms
    are independent (and, in a clustered log, each its own row groups): single-threaded aggregations side
    by side waste less than one multi-threaded query after another."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(len(arms), cores))
    config: dict[str, Any] = {"threads": max(1, cores // workers)}  # each connection its share of the cores
    if hasattr(os, "sysconf"):  # and of DuckDB's default memory limit, 80 % of the RAM
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        config["memory_limit"] = f"{int(0.8 * ram / workers)}B"

    def run(share: list[str]) -> list[Any]:
        eng = _prepared(DuckDBEngine(src, config=config), src, experiment)
        try:
            return [job(eng, arm) for arm in share]
        finally:
            eng.close()

    shares = [arms[w::workers] for w in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(run, shares))
    by_arm = {arm: out for share, outs in zip(shares, done) for arm, out in zip(share, outs)}
    return [by_arm[arm] for arm in arms]


def _variants(src: LogSource, experiment: str, eng: Engine | None = None) -> set[str]:
    """The variants in the log: for a unique source of clustered files from the row-group statistics (each
    row group holds one arm), else queried (on ``eng`` or a new engine)."""
    known = src.variants()
    if known is not None:
        return known
    own = _prepared(DuckDBEngine(src), src, experiment) if eng is None else eng
    try:
        return {str(r[0]) for r in own.sql("SELECT DISTINCT variant FROM abkit_rows")}
    finally:
        if eng is None:
            own.close()


def _confusion(src: LogSource, experiment: str, eng: Engine | None = None) -> list[tuple[str, str, str, int]]:
    """(variant, label, predicted_label, count) of the labelled requests (on ``eng`` or a new DuckDB engine)."""
    own = _prepared(DuckDBEngine(src), src, experiment) if eng is None else eng
    source = "abkit_labels" if src.copied else "abkit_req"
    try:
        rows = own.sql(
            f"SELECT variant, label, predicted_label, COUNT(*) AS n FROM {source} WHERE label IS NOT NULL "
            "GROUP BY variant, label, predicted_label"
        )
    finally:
        if eng is None:
            own.close()
    return sorted((str(v), str(lab), str(p), int(n)) for v, lab, p, n in rows)


def _classes(confusion: Sequence[tuple[str, str, str, int]]) -> list[str]:
    """The classes seen among the labelled requests (true or predicted)."""
    return sorted({r[1] for r in confusion} | {r[2] for r in confusion})


def _iso_day(number: int | None) -> str | None:
    """ISO date of a day number (days since 1970-01-01)."""
    return None if number is None else (dt.date(1970, 1, 1) + dt.timedelta(days=int(number))).isoformat()


def _assemble(
    rows: list[tuple[Any, ...]],
    variants: list[str],
    specs: list[Metric],
    n_q: int,
    unknown: tuple[str, ...],
    duplicates: int,
    engine: str,
) -> LogStats:
    """Sum the (arm, day) rows of ``_stats_sql`` (several per arm and day: one per side) into statistics."""
    variables = _variables(specs, n_q)
    terms = _moment_terms(specs, n_q)
    names = _columns(specs, n_q)
    numbers = sorted({int(r[1]) for r in rows})
    days = tuple(str(_iso_day(d)) for d in numbers)
    day_ix = {d: i for i, d in enumerate(numbers)}
    arm_ix = {v: i for i, v in enumerate(variants)}
    inc = np.zeros((len(names), max(len(days), 1), len(variants)))
    for r in rows:
        if r[0] in arm_ix:
            inc[:, day_ix[int(r[1])], arm_ix[r[0]]] += [0.0 if x is None else float(x) for x in r[2:]]
    cum = np.cumsum(inc, axis=1)
    scale = {f"s_{v}": _scale(v) for v in variables}
    scale.update({f"ss_{alias}": _scale(a) * _scale(b) for alias, a, b in terms})
    col = {k: c / scale.get(k, 1.0) for k, c in zip(names, cum)}

    def stats_of(num: str, den: str, sl: Any, own_units: bool = True) -> ArmStats:
        def sq(a: str, b: str) -> np.ndarray:
            a, b = sorted((a, b))
            return col[f"ss_{a}__{b}"][sl]

        # units = the users carrying the metric (labelled users for accuracy): users without any of its data add
        # nothing to the sums, so the moments, and Welch's degrees of freedom, are those of the carrying users.
        # The helper pairs of a function of several ratios (macro-F1) keep every user: their joint moments need
        # one common set of units, and zeros are valid data points.
        units = col.get(_carrying(num, den), col["new_units"]) if own_units else col["new_units"]
        return ArmStats(units[sl], col[f"s_{num}"][sl], sq(num, num), col[f"s_{den}"][sl], sq(den, den), sq(num, den))

    def metric_stats(m: Metric, sl: Any) -> ArmStats:
        return stats_of(m.numerator, m.denominator, sl, not m.name.startswith(HIDDEN))

    last = -1
    return LogStats(
        variants=tuple(variants),
        units=col["new_units"][last],
        predictions=col["s_n"][last],
        labelled=col["s_labelled"][last],
        stats={m.name: metric_stats(m, last) for m in specs},
        days=days,
        daily={m.name: metric_stats(m, slice(None)) for m in specs} if days else {},
        daily_units=col["new_units"] if days else np.zeros((0, len(variants))),
        quantiles={},
        unknown_variants=unknown,
        duplicates=duplicates,
        engine=engine,
        indicators=tuple(stats_of(f"ind{j}", "n", last) for j in range(n_q)),
    )


class _Histogram(NamedTuple):
    """One arm's latency distribution: distinct values (µs, ascending) and cumulative counts."""

    values: np.ndarray
    cumulative: np.ndarray


def _latency_histogram(eng: Engine, arm: str) -> _Histogram | None:
    """The arm's exact histogram of latency in µs (None for an empty arm): one pass gives every quantile."""
    cols = eng.arrays(
        f"SELECT latency_us, COUNT(*) AS n FROM abkit_rows WHERE variant = {sql_string(arm)} GROUP BY latency_us"
    )
    value, count = np.asarray(cols["latency_us"], dtype=np.int64), np.asarray(cols["n"], dtype=np.int64)
    if not len(value):
        return None
    order = np.argsort(value, kind="stable")
    return _Histogram(value[order], np.cumsum(count[order]))


def _quantile_values(hists: Sequence[_Histogram | None], probs: Sequence[float]) -> np.ndarray:
    """Quantiles (µs) by linear interpolation between order statistics (numpy's default, type 7), shape
    (probabilities, arms); NaN for empty arms."""
    out = np.full((len(probs), len(hists)), np.nan)
    p = np.asarray(probs, dtype=np.float64)
    for i, h in enumerate(hists):
        if h is None or not len(p):
            continue
        n = int(h.cumulative[-1])
        pos = (n - 1) * p
        below = np.floor(pos)
        ranks = np.stack([below, np.minimum(below + 1, n - 1)]).astype(np.int64)
        lo, hi = h.values[np.searchsorted(h.cumulative, ranks, side="right")].astype(np.float64)
        out[:, i] = lo + (pos - below) * (hi - lo)
    return out


def _quantiles(
    hists: Sequence[_Histogram | None], probs: list[float], est_us: np.ndarray, st: LogStats, alpha: float
) -> dict[float, QuantileStats]:
    est = est_us / 1e3
    k = est.shape[1]
    nan = np.full(k, np.nan)
    if not st.indicators:
        return {p: QuantileStats(p, est[j], nan, nan, nan) for j, p in enumerate(probs)}
    lo_p, hi_p, se = (
        np.stack(x) for x in zip(*(quantile_rank_interval(p, ind, alpha=alpha) for p, ind in zip(probs, st.indicators)))
    )
    ok = np.isfinite(est) & np.isfinite(lo_p) & np.isfinite(hi_p)
    low, high = np.full(est.shape, np.nan), np.full(est.shape, np.nan)
    for i in range(k):
        col = ok[:, i]
        if col.any():
            low[col, i] = _quantile_values([hists[i]], lo_p[col, i])[:, 0] / 1e3
            high[col, i] = _quantile_values([hists[i]], hi_p[col, i])[:, 0] / 1e3
    return {p: QuantileStats(p, est[j], low[j], high[j], se[j]) for j, p in enumerate(probs)}
