"""One call from a prediction log to the full A/B analysis: metrics with intervals, effects, sequential
view, Bayesian chance to win, latency tails, SRM and the recommendation.

``analyze(log_root, experiment)`` returns an :class:`AnalysisResult`; ``.to_json()`` is the dict that
notebook 20_analyze writes:

- ``metrics``: one row per metric and variant with ``name, variant, estimate, ci_low, ci_high, p_value,
  method, n``. ``estimate`` and the interval are the *arm's own* value (accuracy, mean confidence, mean
  latency, latency quantiles; ``predictions`` is a count without interval); ``p_value`` is the test of
  that variant against control (null on control rows); ``n`` is the number of users (the randomization
  unit, by which intervals are clustered).
- ``effects``: challenger − control per metric statistic: difference, relative lift (delta method),
  fixed-horizon and always-valid intervals and p-values, multiplicity-adjusted p (primary metric),
  Bayesian chance to win and expected losses.
- ``sequential``: the cumulative difference and its always-valid interval per day.
- ``srm``: ``p_value``, statistic, observed/expected users, status and reason.
- ``recommendation``: ``decision``, ``variant``, ``reasons`` (+ method, users/days still needed).

Every float is finite or null.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from abkit.decide import Comparison, NonInferiorityPolicy, Recommendation, decide_policy
from abkit.display import DictsReprMixin, ResultTable
from abkit.errors import AbkitError
from abkit.metrics.compute import QUANTILES, LogStats, collect
from abkit.metrics.registry import METRICS
from abkit.stats.aggregates import Moments
from abkit.stats.bayesian import bayes_test
from abkit.stats.config import check_alpha, get_config, resolve
from abkit.stats.frequentist import ttest
from abkit.stats.quantiles import quantile_difference
from abkit.stats.sequential import confidence_sequence
from abkit.stats.srm import SRMResult, srm_test

_STAT_NAME = {0.5: "p50", 0.95: "p95", 0.99: "p99"}


def _clean(x: Any) -> Any:
    """float → finite float or None; numpy scalars → Python; containers recursively."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


@dataclasses.dataclass(frozen=True)
class AnalysisResult(DictsReprMixin):
    """Everything notebook 20_analyze shows; tables render in notebooks, ``to_json`` feeds the results file."""

    experiment: str
    variants: tuple[str, ...]
    control: str
    alpha: float
    engine: str
    primary_metric: str
    metrics: ResultTable  # per metric and variant (see the module docstring)
    effects: ResultTable  # challenger − control per metric statistic
    sequential: ResultTable  # per day, metric and challenger
    srm: SRMResult
    recommendation: Recommendation
    stats: LogStats  # the sufficient statistics the analysis used
    comparisons: tuple[Comparison, ...]
    cuped: ResultTable = dataclasses.field(default_factory=lambda: ResultTable([]))  # primary metric with and
    #   without each user's pre-period value as covariate (empty without a pre-period in the log)

    def to_dicts(self) -> list[dict[str, Any]]:
        return self.metrics.to_dicts()

    def srm_dict(self) -> dict[str, Any]:
        s = self.srm
        return _clean(
            {
                "p_value": s.p_value,
                "statistic": s.statistic,
                "df": s.df,
                "observed": list(s.observed),
                "expected": list(s.expected),
                "max_share_deviation": s.max_share_deviation,
                "status": s.status,
                "reason": s.reason,
                "method": s.method,
                "alpha": get_config("srm_alpha"),
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The results dict of issue 3 (finite numbers or null only)."""
        st = self.stats
        return _clean(
            {
                "experiment": self.experiment,
                "variants": list(self.variants),
                "control": self.control,
                "alpha": self.alpha,
                "engine": self.engine,
                "primary_metric": self.primary_metric,
                "metrics": self.metrics.to_dicts(),
                "effects": self.effects.to_dicts(),
                "sequential": self.sequential.to_dicts(),
                "srm": self.srm_dict(),
                "recommendation": self.recommendation.to_dict(),
                "counts": {
                    "users": st.units.tolist(),
                    "predictions": st.predictions.tolist(),
                    "labelled": st.labelled.tolist(),
                    "duplicates_dropped": st.duplicates,
                    "days": list(st.days),
                    "first_day": st.first_day,
                    "last_day": st.last_day,
                    "n_days": st.n_days,
                    "unknown_variants": list(st.unknown_variants),
                    "invalid_predictions_skipped": st.invalid_predictions,
                    "invalid_labels_skipped": st.invalid_labels,
                },
                "confusion": self.confusion_table().to_dicts(),
                "cuped": self.cuped.to_dicts(),
            }
        )

    def confusion_table(self) -> ResultTable:
        """The confusion counts per arm: one row per (variant, label, predicted_label) of labelled requests."""
        return ResultTable(
            [{"variant": v, "label": lab, "predicted_label": p, "n": n} for v, lab, p, n in self.stats.confusion]
        )

    def srm_table(self) -> ResultTable:
        """The SRM check as a one-row table."""
        d = self.srm_dict()
        d["observed"] = ", ".join(f"{v}: {int(o)}" for v, o in zip(self.variants, self.srm.observed))
        d["expected"] = ", ".join(f"{v}: {e:.1f}" for v, e in zip(self.variants, self.srm.expected))
        return ResultTable([d])

    def check(self) -> AnalysisResult:
        """Raise ``AbkitError`` if the analysis itself is broken (not for an "invalid" recommendation)."""
        names = {r["name"] for r in self.metrics.to_dicts()}
        missing = {*(n for n, m in METRICS.items() if not m.per_label), "predictions"} - names
        if missing:
            raise AbkitError(f"analysis is missing metrics {sorted(missing)}; the log or the metric SQL is broken")
        if self.recommendation.decision == "invalid" and not self.recommendation.reasons:
            raise AbkitError("an 'invalid' recommendation without reasons; decide() is broken")
        return self

    def _repr_html_(self) -> str:
        return self.recommendation._repr_html_() + self.metrics.to_html()


def _load_experiment(experiment: Any) -> Any:
    from abkit.experiment import Experiment

    if isinstance(experiment, (str, Path)):
        return Experiment.load(experiment)
    if not isinstance(experiment, Experiment):
        raise AbkitError(
            f"experiment={experiment!r} must be an abkit.experiment.Experiment or a path to experiment.json"
        )
    return experiment


def _arm_interval(mo: Moments, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy import stats as sps

    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(mo.var / mo.n)
        df = np.where(mo.n > 1, mo.n - 1, np.nan)
        t = sps.t.ppf(1 - alpha / 2, df)
    return mo.mean - t * se, mo.mean + t * se


def _metric_moments(st: LogStats) -> list[tuple[str, Any, Moments]]:
    """(name, registry metric, per-arm Moments) of every metric the log was reduced to: the ratios, then the
    smooth functions of ratios (macro-F1); per-class rows such as ``recall:spam`` take their family's metric."""
    out = [(name, METRICS[name.split(":")[0]], s.moments()) for name, s in st.stats.items()]
    return out + [(name, METRICS[name], mo) for name, mo in st.moments.items()]


def _method(name: str, metric: Any, positive_label: str | None) -> str:
    if metric.reduce == "macro":
        return (
            "mean over the classes of each class's F1 = Σ 2·TP / Σ (predicted + actual), delta method over the "
            "joint covariance of the per-user sums, clustered by user"
        )
    what = (
        f" of class {name.split(':', 1)[1]!r}"
        if ":" in name
        else (f" of class {positive_label!r}" if metric.per_label else "")
    )
    return f"Σ per-user {metric.numerator} / Σ per-user {metric.denominator}{what}, delta method clustered by user"


def analyze(
    log_root: str | Path,
    experiment: Any,
    *,
    alpha: float | None = None,
    engine: str = "duckdb",
    spark: Any = None,
    inference: str = "sequential",
    sequential_tuning: float | None = None,
    prior_mean: float | None = None,
    prior_var: float | None = None,
    multiple: str = "holm",
    min_units: int | None = None,
    min_labelled_units: int | None = None,
    min_effect: float | None = None,
    quantiles: Sequence[float] = QUANTILES,
    con: Any = None,
    daily: bool = True,
    policy: NonInferiorityPolicy | None = None,
    positive_label: str | None = None,
    cuped: bool = True,
) -> AnalysisResult:
    """Analyze the log at ``log_root`` for ``experiment`` (an ``Experiment`` or a path to its JSON).

    ``inference`` ("sequential" | "fixed") is what the recommendation uses; both are reported.
    ``min_effect`` (absolute, in the primary metric's units) enables futility stops and sizes "continue".
    ``min_units`` / ``min_labelled_units``: the minimum evidence per arm (users / units carrying the primary
    metric, e.g. labelled users); None takes them from ``abkit.stats.config``.
    ``daily=False`` skips the per-day sequential view (the costliest SQL step on large logs).
    ``policy``: None ships a challenger shown better on the primary metric; a ``NonInferiorityPolicy`` also
    ships one that is non-inferior on it and better on a named secondary metric.
    ``positive_label`` adds precision, recall and F1 of that class; with more than two classes, recall per class
    and macro-F1 are added; the confusion counts per arm are always reported.
    ``cuped``: when the log holds the experiment's pre-period (``abkit.cuped``), every figure of the primary
    metric's comparison (difference, intervals, p-values, relative change, chance to win) uses each user's
    pre-period value as covariate; ``result.cuped`` shows both. The per-day ``sequential`` table is not adjusted.
    """
    exp = _load_experiment(experiment)
    a = check_alpha(alpha)
    tuning = float(resolve("sequential_tuning", sequential_tuning))
    variants = list(exp.variant_names)
    wanted = [exp.primary_metric, *(g.metric for g in exp.guardrails)]
    needs = [m for m in wanted if METRICS[m].per_label and METRICS[m].reduce == "ratio"]
    if needs and not positive_label:
        raise AbkitError(f"metrics {needs} are computed for one class: give positive_label, e.g. positive_label='spam'")
    st = collect(
        log_root,
        exp.key,
        variants,
        quantiles=quantiles,
        alpha=a,
        engine=engine,
        spark=spark,
        con=con,
        daily=daily,
        positive_label=positive_label or None,
        class_metrics=True,
    )
    if st.invalid_predictions or st.invalid_labels:  # shown in the report: the kernel's warnings are output
        warnings.warn(
            f"the log of {exp.key!r} holds {st.invalid_predictions} prediction and {st.invalid_labels} label "
            "row(s) that the analysis cannot use (written by another tool: a null id, NaN or out-of-range "
            "confidence or latency...); they were skipped and are counted in the results.",
            stacklevel=2,
        )
    srm = srm_test(st.units, exp.weights)
    control = variants[0]
    rows: list[dict[str, Any]] = []
    effects: list[dict[str, Any]] = []
    comps: list[Comparison] = []
    seq_rows: list[dict[str, Any]] = []
    ok = st.units > 0
    for name, metric, mo in _metric_moments(st):
        lo, hi = _arm_interval(mo, a)
        c = Moments(mo.mean[0], mo.var[0], mo.n[0])
        t = Moments(mo.mean[1:], mo.var[1:], mo.n[1:])
        res = ttest(c, t, alpha=a)
        rel = ttest(c, t, alpha=a, relative=True, relative_ci="delta")
        seq = confidence_sequence(res.estimate, res.se, c.n + t.n, tuning=tuning, alpha=a)
        bay = bayes_test(c, t, prior_mean=prior_mean, prior_var=prior_var, inverse=not metric.higher_is_better, alpha=a)
        # an informational metric (mean confidence: a diagnostic) claims no win unless it is decided on
        ranked = not metric.informational or name == exp.primary_metric or any(g.metric == name for g in exp.guardrails)
        method = _method(name, metric, positive_label)
        for i, v in enumerate(variants):
            rows.append(
                {
                    "name": name,
                    "variant": v,
                    "estimate": mo.mean[i],
                    "ci_low": lo[i],
                    "ci_high": hi[i],
                    "p_value": None if i == 0 else res.p_value[i - 1],
                    "method": method + ("" if i == 0 else "; p: Welch t vs control"),
                    "n": int(st.units[i]),
                }
            )
        for j, v in enumerate(variants[1:]):
            comps.append(
                Comparison(
                    name,
                    "mean",
                    v,
                    float(res.estimate[j]),
                    float(res.ci_low[j]),
                    float(res.ci_high[j]),
                    float(res.p_value[j]),
                    float(seq.ci_low[j]),
                    float(seq.ci_high[j]),
                    float(seq.p_value[j]),
                    float(res.se[j]),
                    float(c.var),
                    float(c.mean),
                    float(c.n + t.n[j]),
                    n_control=float(c.n),
                    n_treatment=float(t.n[j]),
                )
            )
            effects.append(
                {
                    "metric": name,
                    "statistic": "mean",
                    "variant": v,
                    "control": c.mean,
                    "treatment": t.mean[j],
                    "estimate": res.estimate[j],
                    "ci_low": res.ci_low[j],
                    "ci_high": res.ci_high[j],
                    "p_value": res.p_value[j],
                    "relative": rel.estimate[j],
                    "relative_ci_low": rel.ci_low[j],
                    "relative_ci_high": rel.ci_high[j],
                    "seq_ci_low": seq.ci_low[j],
                    "seq_ci_high": seq.ci_high[j],
                    "seq_p_value": seq.p_value[j],
                    # a diagnostic metric (neither primary nor guardrail) gets no chance to win: no win is claimed on it
                    "chance_to_win": bay.chance_to_win[j] if ranked else None,
                    "risk_control": bay.risk_control[j] if ranked else None,
                    "risk_treatment": bay.risk_treatment[j] if ranked else None,
                    "n_control": c.n,
                    "n_treatment": t.n[j],
                    "method": f"{res.method}; relative: delta method; sequential: {seq.method}; Bayesian: {bay.method}",
                }
            )
        if st.days and name in st.daily:
            dm = st.daily[name].moments()
            dc = Moments(dm.mean[:, :1], dm.var[:, :1], dm.n[:, :1])
            dt_ = Moments(dm.mean[:, 1:], dm.var[:, 1:], dm.n[:, 1:])
            dres = ttest(dc, dt_, alpha=a)
            dseq = confidence_sequence(dres.estimate, dres.se, dc.n + dt_.n, tuning=tuning, alpha=a)
            for d, day in enumerate(st.days):
                for j, v in enumerate(variants[1:]):
                    seq_rows.append(
                        {
                            "day": day,
                            "metric": name,
                            "variant": v,
                            "control": dc.mean[d, 0],
                            "treatment": dt_.mean[d, j],
                            "estimate": dres.estimate[d, j],
                            "ci_low": dseq.ci_low[d, j],
                            "ci_high": dseq.ci_high[d, j],
                            "p_value": dseq.p_value[d, j],
                            "users": st.daily_units[d].sum(),
                        }
                    )
    for p, q in st.quantiles.items():
        stat = _STAT_NAME.get(p, f"p{p * 100:g}")
        qd = quantile_difference(
            q.estimate[0], q.ci_low[0], q.ci_high[0], q.estimate[1:], q.ci_low[1:], q.ci_high[1:], alpha=a
        )
        qseq = confidence_sequence(qd.estimate, qd.se, st.units[0] + st.units[1:], tuning=tuning, alpha=a)
        for i, v in enumerate(variants):
            rows.append(
                {
                    "name": f"latency_{stat}",
                    "variant": v,
                    "estimate": q.estimate[i],
                    "ci_low": q.ci_low[i],
                    "ci_high": q.ci_high[i],
                    "p_value": None if i == 0 else qd.p_value[i - 1],
                    "method": "quantile of latency in whole µs (linear interpolation), clustered rank interval (Deng, Knoblich & Lu 2018)",
                    "n": int(st.units[i]),
                }
            )
        for j, v in enumerate(variants[1:]):
            comps.append(
                Comparison(
                    "latency_ms",
                    stat,
                    v,
                    float(qd.estimate[j]),
                    float(qd.ci_low[j]),
                    float(qd.ci_high[j]),
                    float(qd.p_value[j]),
                    float(qseq.ci_low[j]),
                    float(qseq.ci_high[j]),
                    float(qseq.p_value[j]),
                    float(qd.se[j]),
                    float("nan"),
                    float(q.estimate[0]),
                    float(st.units[0] + st.units[j + 1]),
                    n_control=float(st.units[0]),
                    n_treatment=float(st.units[j + 1]),
                )
            )
            effects.append(
                {
                    "metric": "latency_ms",
                    "statistic": stat,
                    "variant": v,
                    "control": q.estimate[0],
                    "treatment": q.estimate[j + 1],
                    "estimate": qd.estimate[j],
                    "ci_low": qd.ci_low[j],
                    "ci_high": qd.ci_high[j],
                    "p_value": qd.p_value[j],
                    "seq_ci_low": qseq.ci_low[j],
                    "seq_ci_high": qseq.ci_high[j],
                    "seq_p_value": qseq.p_value[j],
                    "method": qd.method,
                }
            )
    for i, v in enumerate(variants):
        rows.append(
            {
                "name": "predictions",
                "variant": v,
                "estimate": float(st.predictions[i]),
                "ci_low": None,
                "ci_high": None,
                "p_value": None,
                "method": "count of deduplicated predictions (first by ts)",
                "n": int(st.units[i]),
            }
        )

    cuped_rows: list[dict[str, Any]] = []
    if cuped and METRICS[exp.primary_metric].reduce == "ratio":
        cuped_rows = _apply_cuped(
            log_root,
            exp,
            positive_label,
            (comps, effects, seq_rows),
            st.days,
            engine=engine,
            spark=spark,
            alpha=a,
            tuning=tuning,
            prior=(prior_mean, prior_var),
        )
    higher = {m: spec.higher_is_better for m, spec in METRICS.items()}
    higher.update({name: spec.higher_is_better for name, spec, _ in _metric_moments(st)})
    end = dt.date.fromisoformat(exp.start) + dt.timedelta(days=exp.duration_days)
    duration_over = st.last_day is not None and dt.date.fromisoformat(st.last_day) >= end - dt.timedelta(days=1)
    per_day = float(st.stats[exp.primary_metric].n.sum()) / max(st.n_days, 1)  # units carrying the primary metric
    if st.unknown_variants:
        rec = Recommendation(
            "invalid",
            None,
            (
                f"the log holds variants {list(st.unknown_variants)} that experiment "
                f"{exp.key!r} does not define {variants}",
            ),
            "data check",
        )
    elif not ok.all() and srm.status != "mismatch":
        rec = Recommendation(
            "invalid",
            None,
            tuple(f"too little data: variant {v} has no users" for v, k in zip(variants, ok) if not k),
            "data check",
        )
    else:
        rec = decide_policy(
            comps,
            srm,
            policy=policy,
            sequential_tuning=tuning,
            primary_metric=exp.primary_metric,
            higher_is_better=higher,
            guardrails=exp.guardrails,
            units=dict(zip(variants, st.units.tolist())),
            alpha=a,
            multiple=multiple,
            inference=inference,
            min_units=min_units,
            min_labelled_units=min_labelled_units,
            min_effect=min_effect,
            units_per_day=per_day,
            duration_over=duration_over,
        )
    for e in effects:
        if e["metric"] == exp.primary_metric and e["statistic"] == "mean":
            e["p_adjusted"] = rec.p_adjusted.get(e["variant"])
    return AnalysisResult(
        exp.key,
        tuple(variants),
        control,
        a,
        engine,
        exp.primary_metric,
        ResultTable(rows),
        ResultTable(effects),
        ResultTable(seq_rows),
        srm,
        rec,
        st,
        tuple(comps),
        ResultTable(cuped_rows),
    )


def _apply_cuped(
    log_root: str | Path,
    exp: Any,
    positive_label: str | None,
    rows: tuple[list[Comparison], list[dict[str, Any]], list[dict[str, Any]]],
    days: Sequence[str],
    *,
    engine: str,
    spark: Any,
    alpha: float,
    tuning: float,
    prior: tuple[float | None, float | None],
) -> list[dict[str, Any]]:
    """With a pre-period in the log: every figure of the primary metric's comparison becomes CUPED-adjusted (each
    user's pre-period value as covariate): the difference, its fixed and always-valid intervals and p-values, the
    relative change and its interval (the lift of the adjusted means, delta method: ``cuped_lift``), the Bayesian
    chance to win and expected losses (the same normal posterior as without CUPED, from the adjusted lift and
    its standard error), the control variance that sizes "continue" and, with ``days``, the day-by-day sequential
    rows (CUPED at every cut-off day; the last day is the whole test). The arms' own values (``control``,
    ``treatment``, the metric rows) stay what was observed: the adjustment is a better estimate of the
    *difference*, not of either arm. ``rows``: the comparisons, effects and sequential rows, updated in place.
    Returns the with/without rows for the report (else [])."""
    from abkit.cuped import collect_cuped, collect_cuped_daily, cuped_compare, cuped_effects
    from abkit.metrics.classes import concrete
    from abkit.stats.bayesian import normal_posterior

    comps, effects, seq_rows = rows
    variants = list(exp.variant_names)
    name = exp.primary_metric
    spec = concrete(METRICS[name], positive_label)
    if days:  # one read of the log for both: the totals are the last cut-off day
        numbers = [(dt.date.fromisoformat(d) - dt.date(1970, 1, 1)).days for d in days]
        daily = collect_cuped_daily(log_root, exp.key, variants, spec, numbers, engine=engine, spark=spark)
        cs = None if daily is None else daily[-1]
    else:
        daily, cs = None, collect_cuped(log_root, exp.key, variants, spec, engine=engine, spark=spark)
    if cs is None:
        return []
    if daily is not None:
        _adjust_sequential(seq_rows, name, days, variants, cuped_compare(daily, alpha=alpha), tuning, alpha)
    table = cuped_effects(cs, name, variants, alpha=alpha)
    cmp = cuped_compare(cs, alpha=alpha)
    res, rel = cmp.adjusted, cmp.relative
    seq = confidence_sequence(res.estimate, res.se, cmp.control.n + cmp.treatment.n, tuning=tuning, alpha=alpha)
    bay = normal_posterior(
        rel.estimate, rel.se, prior_mean=prior[0], prior_var=prior[1], inverse=not spec.higher_is_better, alpha=alpha
    )
    control_var = np.broadcast_to(cmp.control.var, np.shape(res.estimate))  # θ, hence it, per challenger
    for j, v in enumerate(variants[1:]):
        new: dict[str, Any] = {
            "estimate": float(res.estimate[j]),
            "ci_low": float(res.ci_low[j]),
            "ci_high": float(res.ci_high[j]),
            "p_value": float(res.p_value[j]),
            "seq_ci_low": float(seq.ci_low[j]),
            "seq_ci_high": float(seq.ci_high[j]),
            "seq_p_value": float(seq.p_value[j]),
        }
        for i, c in enumerate(comps):
            if c.metric == name and c.statistic == "mean" and c.variant == v:
                comps[i] = c._replace(**new, se=float(res.se[j]), control_var=float(control_var[j]))
        for e in effects:
            if e["metric"] == name and e["statistic"] == "mean" and e["variant"] == v:
                e.update(new)
                e.update(
                    relative=rel.estimate[j],
                    relative_ci_low=rel.ci_low[j],
                    relative_ci_high=rel.ci_high[j],
                )
                if e.get("chance_to_win") is not None:  # the primary metric is always ranked; kept as a guard
                    e.update(
                        chance_to_win=bay.chance_to_win[j],
                        risk_control=bay.risk_control[j],
                        risk_treatment=bay.risk_treatment[j],
                    )
                e["method"] += (
                    "; CUPED (each user's pre-period value as covariate; see the cuped table): difference, "
                    "intervals, p-values, relative change (lift of the adjusted means, delta method) and chance "
                    "to win are adjusted"
                )
    return table


def _adjust_sequential(
    seq_rows: list[dict[str, Any]],
    name: str,
    days: Sequence[str],
    variants: list[str],
    cmp: Any,
    tuning: float,
    alpha: float,
) -> None:
    """The sequential rows of metric ``name`` from the CUPED comparison at every cut-off day (``cmp``: a
    ``CupedComparison`` of shape (days, challengers)): difference, always-valid interval and p-value."""
    res = cmp.adjusted
    seq = confidence_sequence(res.estimate, res.se, cmp.control.n + cmp.treatment.n, tuning=tuning, alpha=alpha)
    at = {(day, v): (d, j) for d, day in enumerate(days) for j, v in enumerate(variants[1:])}
    for r in seq_rows:
        if r["metric"] == name and (r["day"], r["variant"]) in at:
            d, j = at[(r["day"], r["variant"])]
            r.update(estimate=res.estimate[d, j], ci_low=seq.ci_low[d, j], ci_high=seq.ci_high[d, j])
            r["p_value"] = seq.p_value[d, j]
