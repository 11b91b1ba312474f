"""The scorecard: what a stakeholder reads in one minute at the top of the A/B report.

A banner (decision, users and labelled share per arm, days running, SRM state), then one row per metric
and challenger: control and challenger values, the relative change with its interval drawn as a bar on
one shared axis and coloured by the metric's direction (good, bad, inconclusive, or informational for a
metric without a direction), and the chance to win once the minimum evidence is met. Below it the classic
side-by-side table of the arms.

It reads the analysis results dict (``AnalysisResult.to_json()``, the ``20_analyze.json`` file), so the
same code serves the notebook and the run index. Every number goes through :mod:`abkit.format`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from abkit import format as F

_DIRECTIONS = ("higher", "lower", "neutral")


@dataclass(frozen=True)
class MetricInfo:
    """How the report shows a metric: its label, unit (see :data:`abkit.format.UNITS`) and direction."""

    label: str
    unit: str
    direction: str  # "higher" | "lower" | "neutral" (informational: no good or bad side)
    needs_labels: bool = False


# Units the registry names, in the report's terms (abkit.format.UNITS).
_UNITS = {"share": "rate", "probability": "rate", "rate": "rate", "ms": "ms", "count": "count"}
# What is shown but not a registered metric.
_EXTRA: dict[str, MetricInfo] = {"predictions": MetricInfo("Predictions", "count", "neutral")}


def metric_info(name: str) -> MetricInfo:
    """Label, unit and direction of metric ``name`` from the metric registry (``abkit.metrics.registry``);
    a name it does not hold is shown as a neutral plain number, so any registered metric can be shown."""
    from abkit.metrics.registry import MetricError, get_metric

    try:
        m = get_metric(name)
    except MetricError:
        return _EXTRA.get(name, MetricInfo(name.replace("_", " ").capitalize(), "number", "neutral"))
    direction = m.direction if m.direction in _DIRECTIONS else "neutral"
    return MetricInfo(m.title, _UNITS.get(m.unit, "number"), direction, m.needs_labels)


def statistic_label(metric: str, statistic: str) -> str:
    """``Accuracy``, ``Mean latency``, ``p95 latency``."""
    label = metric_info(metric).label
    if statistic == "mean":
        return label
    base = label[5:] if label.lower().startswith("mean ") else label.lower()
    return f"{statistic} {base}"


# --------------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class ScoreRow:
    """One metric statistic of one challenger against control."""

    metric: str
    statistic: str
    variant: str
    control: float | None
    treatment: float | None
    relative: float | None  # challenger / control − 1
    low: float | None  # relative interval (the one the recommendation uses)
    high: float | None
    status: str  # "good" | "bad" | "inconclusive" | "info" | "pending"
    chance_to_win: float | None
    note: str  # why a value is pending, or how to read the row


def _num(x: Any) -> float | None:
    return None if F.missing(x) else float(x)


def _relative(effect: Mapping[str, Any], sequential: bool) -> tuple[float | None, float | None, float | None]:
    """Relative change and its interval; the always-valid one is the fixed one widened by the ratio of the
    absolute intervals' widths (both are symmetric around the estimate); quantiles: difference / control."""
    ctl = _num(effect.get("control"))
    est = _num(effect.get("estimate"))
    lo_k, hi_k = ("seq_ci_low", "seq_ci_high") if sequential else ("ci_low", "ci_high")
    lo, hi = _num(effect.get(lo_k)), _num(effect.get(hi_k))
    rel = _num(effect.get("relative"))
    if rel is not None:
        rlo, rhi = _num(effect.get("relative_ci_low")), _num(effect.get("relative_ci_high"))
        flo, fhi = _num(effect.get("ci_low")), _num(effect.get("ci_high"))
        if None in (rlo, rhi, lo, hi, flo, fhi):
            return rel, None, None
        scale = (hi - lo) / (fhi - flo) if fhi != flo else 1.0  # type: ignore[operator]
        half = (rhi - rlo) / 2 * scale  # type: ignore[operator]
        return rel, rel - half, rel + half
    if ctl is None or est is None or ctl == 0:
        return None, None, None
    if lo is None or hi is None:
        return est / ctl, None, None
    return est / ctl, lo / ctl, hi / ctl


def _status(direction: str, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "pending"
    if direction == "neutral":
        return "info"
    if low > 0:
        return "good" if direction == "higher" else "bad"
    if high < 0:
        return "bad" if direction == "higher" else "good"
    return "inconclusive"


def evidence_gap(results: Mapping[str, Any], min_units: int) -> str | None:
    """Why there is not yet enough evidence to read a chance to win, or None when there is."""
    counts = results.get("counts", {})
    variants = results.get("variants", [])
    users = counts.get("users", [])
    small = [f"{v}: {F.count(u)}" for v, u in zip(variants, users) if (u or 0) < min_units]
    if small:
        return f"fewer than {F.count(min_units)} users in an arm ({', '.join(small)})"
    if results.get("srm", {}).get("status") == "mismatch":
        return "the traffic split is off (SRM), so no comparison can be trusted"
    return None


def _fewest(effect: Mapping[str, Any]) -> float:
    """The fewer of the users carrying the metric in the two arms of an effect (inf when the results predate
    these counts: the arm-level evidence check then stands alone)."""
    counts = [_num(effect.get("n_control")), _num(effect.get("n_treatment"))]
    if all(c is None for c in counts):
        return float("inf")
    return min((c if c is not None else 0.0) for c in counts)


def score_rows(
    results: Mapping[str, Any],
    *,
    min_units: int = 100,
    min_labelled_units: int = 30,
    inference: str = "sequential",
    statistics: Sequence[str] = ("mean", "p95"),
) -> list[ScoreRow]:
    """One :class:`ScoreRow` per effect of the results dict whose statistic is in ``statistics``; a chance to
    win shows once every arm has ``min_units`` users and ``min_labelled_units`` users carrying the metric."""
    gap = evidence_gap(results, min_units)
    labelled = results.get("counts", {}).get("labelled", [])
    rows = []
    for e in results.get("effects", []):
        if e.get("statistic") not in statistics:
            continue
        info = metric_info(e["metric"])
        rel, lo, hi = _relative(e, inference == "sequential")
        status = _status(info.direction, lo, hi)
        note = ""
        if status == "pending":
            if info.needs_labels and not all(labelled or [0]):
                note = "no labels yet in an arm"
            else:
                note = "too little data for an interval"
        ctw = _num(e.get("chance_to_win"))
        if info.direction == "neutral":
            ctw = None
            note = note or "informational: no better or worse direction"
        elif gap is not None:
            ctw = None
            note = note or f"chance to win pending: {gap}"
        elif info.needs_labels and _fewest(e) < min_labelled_units:
            ctw = None
            note = note or (
                f"chance to win pending: fewer than {F.count(min_labelled_units)} labelled users in an arm "
                f"({F.count(_fewest(e))})"
            )
        rows.append(
            ScoreRow(
                e["metric"],
                e["statistic"],
                e["variant"],
                _num(e.get("control")),
                _num(e.get("treatment")),
                rel,
                lo,
                hi,
                status,
                ctw,
                note,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------------
# HTML

_CSS = """<style>
.abk{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:14px;color:#1f2328;max-width:1180px}
.abk *{box-sizing:border-box}
.abk-banner{border-left:8px solid var(--c);background:#f6f8fa;padding:10px 14px;margin:0 0 10px}
.abk-decision{font-size:22px;font-weight:700;color:var(--c)}
.abk-reason{margin:4px 0 8px}
.abk-facts{display:flex;flex-wrap:wrap;gap:6px 18px;color:#57606a}
.abk-facts b{color:#1f2328}
.abk table{border-collapse:collapse;width:100%;table-layout:fixed;margin:6px 0 12px}
.abk th,.abk td{border-bottom:1px solid #d0d7de;padding:5px 8px;text-align:right;vertical-align:middle;
 overflow-wrap:anywhere}
.abk th{background:#f6f8fa;font-weight:600}
.abk td.l,.abk th.l{text-align:left}
.abk-bar{position:relative;height:18px;background:#fff}
.abk-zero{position:absolute;top:0;bottom:0;border-left:1px dashed #57606a}
.abk-ci{position:absolute;top:5px;height:8px;border-radius:4px;opacity:.85}
.abk-dot{position:absolute;top:2px;width:4px;height:14px;margin-left:-2px;background:#1f2328}
.abk-axis{display:flex;justify-content:space-between;font-weight:400;color:#57606a;font-size:12px}
.abk-good{--c:#1a7f37}.abk-bad{--c:#cf222e}.abk-inconclusive{--c:#9a6700}.abk-info{--c:#8c959f}
.abk-pending{--c:#8c959f}
.abk-tag{color:var(--c);font-weight:600}
.abk-note{color:#57606a;font-size:12px}
.abk-small{color:#57606a;font-size:12px;margin:2px 0}
</style>"""

_DECISION = {
    "ship": ("#1a7f37", "Ship {variant}"),
    "keep": ("#57606a", "Keep the control"),
    "continue": ("#9a6700", "Continue the test"),
    "stop": ("#57606a", "Stop: no improvement to find"),
    "invalid": ("#cf222e", "Invalid: do not act on this test"),
}
_STATUS_WORD = {
    "good": "better",
    "bad": "worse",
    "inconclusive": "inconclusive",
    "info": "informational",
    "pending": "pending",
}

_E_NUMBER = re.compile(r"(p = )?(?<![0-9A-Za-z.])([+-]?\d+(?:\.\d+)?[eE][+-]?\d+)(?![0-9A-Za-z])")


def plain_text(text: str) -> str:
    """``text`` with every number in scientific notation written out (p-values as ``< 0.001``)."""

    def repl(m: re.Match[str]) -> str:
        x = float(m.group(2))
        if m.group(1):
            return p_phrase(x)
        return F.number(x, signed=m.group(2).startswith("+"))

    return _E_NUMBER.sub(repl, text)


def top_reason(recommendation: Mapping[str, Any]) -> str:
    """The one reason a reader needs: the first for ship and invalid, what is missing for continue (with the
    time it takes), the closing line for keep and stop."""
    reasons = list(recommendation.get("reasons") or [])
    if not reasons:
        return ""
    decision = recommendation.get("decision")
    if decision in ("ship", "invalid"):
        return plain_text(reasons[0])
    if decision == "continue":
        pick = next((r for r in reasons if r.startswith(("too little", "continue"))), reasons[-1])
        when = reasons[-1] if reasons[-1].startswith("about") and reasons[-1] != pick else ""
        return plain_text(pick + (f" ({when})" if when else ""))
    return plain_text(reasons[-1])


def _axis_limit(rows: Sequence[ScoreRow]) -> float:
    """A round half-width (1, 2 or 5 × 10^k) for the shared axis that holds every interval."""
    ext = max(
        [abs(x) for r in rows for x in (r.low, r.high, r.relative) if x is not None and math.isfinite(x)] + [0.001]
    )
    k = math.floor(math.log10(ext))
    for m in (1, 2, 5, 10):
        if m * 10**k >= ext:
            return m * 10**k
    return 10 ** (k + 1)  # pragma: no cover - the loop always returns


def _bar(row: ScoreRow, limit: float) -> str:
    def pos(x: float) -> float:
        return 50 + 50 * max(-1.0, min(1.0, x / limit))

    if row.low is None or row.high is None:
        return '<div class="abk-bar"><div class="abk-zero" style="left:50%"></div></div>'
    left, right = pos(row.low), pos(row.high)
    dot = f'<div class="abk-dot" style="left:{pos(row.relative):.2f}%"></div>' if row.relative is not None else ""
    return (
        f'<div class="abk-bar abk-{row.status}"><div class="abk-zero" style="left:50%"></div>'
        f'<div class="abk-ci" style="left:{left:.2f}%;width:{max(right - left, 0.6):.2f}%;background:var(--c)">'
        f"</div>{dot}</div>"
    )


def _fmt_axis(x: float) -> str:
    return F.percent(x, 0 if abs(x) >= 0.1 else (1 if abs(x) >= 0.01 else 2), signed=x != 0)


def _arm_facts(results: Mapping[str, Any]) -> list[str]:
    e = html.escape
    c = results.get("counts", {})
    out = []
    for i, v in enumerate(results.get("variants", [])):
        users = c.get("users", [None] * (i + 1))[i]
        preds = c.get("predictions", [None] * (i + 1))[i]
        lab = c.get("labelled", [None] * (i + 1))[i]
        share = F.percent(lab / preds, 0) if preds else F.pending("no predictions")
        out.append(f"<span><b>{e(v)}</b>: {F.count(users)} users, {share} labelled</span>")
    return out


def _days_fact(results: Mapping[str, Any], duration_days: int | None) -> str:
    c = results.get("counts", {})
    n = c.get("n_days") or 0
    planned = f" of {duration_days} planned" if duration_days else ""
    span = f" ({c.get('first_day')} to {c.get('last_day')})" if n else ""
    return f"<span><b>{n} day{'s' if n != 1 else ''}</b> running{planned}{span}</span>"


def p_phrase(p: Any) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    text = F.p_value(p)
    return f"p {text}" if text[0] in "<>" else f"p = {text}"


def _srm_fact(results: Mapping[str, Any]) -> str:
    s = results.get("srm", {})
    status = s.get("status", "unknown")
    colour = {"ok": "abk-good", "mismatch": "abk-bad"}.get(status, "abk-inconclusive")
    word = {"ok": "traffic split as planned", "mismatch": "traffic split is OFF"}.get(status, status)
    return f'<span>SRM: <span class="abk-tag {colour}">{html.escape(word)}</span> ({p_phrase(s.get("p_value"))})</span>'


def banner_html(results: Mapping[str, Any], *, duration_days: int | None = None) -> str:
    """The decision banner with its top reason and the run's vital signs."""
    e = html.escape
    rec = results.get("recommendation", {})
    decision = rec.get("decision", "invalid")
    colour, title = _DECISION.get(decision, ("#57606a", decision))
    title = title.format(variant=rec.get("variant") or "the challenger")
    facts = _arm_facts(results) + [_days_fact(results, duration_days), _srm_fact(results)]
    return (
        f'<div class="abk-banner" style="--c:{colour}"><div class="abk-decision">{e(title)}</div>'
        f'<div class="abk-reason">{e(top_reason(rec))}</div>'
        f'<div class="abk-facts">{"".join(facts)}</div></div>'
    )


def _metric_value(row_metric: str, statistic: str, x: float | None, reason: str = "") -> str:
    info = metric_info(row_metric)
    return F.value(x, info.unit, reason=reason or None) if info.unit != "rate" else F.percent(x, reason=reason or None)


def rows_html(rows: Sequence[ScoreRow], results: Mapping[str, Any], *, inference: str) -> str:
    """The per-metric table with interval bars on one shared axis."""
    e = html.escape
    if not rows:
        return '<p class="abk-note">No metric rows yet: the log holds no comparable data.</p>'
    limit = _axis_limit(rows)
    control = results.get("control", "control")
    many = len({r.variant for r in rows}) > 1
    kind = "always-valid" if inference == "sequential" else f"{100 * (1 - results.get('alpha', 0.05)):.0f} %"
    head = (
        f'<tr><th class="l" style="width:17%">metric</th><th style="width:11%">{e(control)}</th>'
        f'<th style="width:11%">{"challenger" if many else e(rows[0].variant)}</th>'
        f'<th style="width:15%">relative change<br><span class="abk-note">{e(kind)} interval</span></th>'
        f'<th style="width:26%"><div class="abk-axis"><span>{_fmt_axis(-limit)}</span><span>0</span>'
        f"<span>{_fmt_axis(limit)}</span></div></th>"
        '<th style="width:9%">chance to win</th><th class="l" style="width:11%">verdict</th></tr>'
    )
    body = []
    for r in rows:
        name = statistic_label(r.metric, r.statistic) + (f" · {r.variant}" if many else "")
        change = (
            F.estimate_with_interval(r.relative, r.low, r.high, "rate", signed=True)
            if r.relative is not None
            else F.pending()
        )
        change = change.replace(" (", "<br>(", 1)
        note = f'<div class="abk-note">{e(r.note)}</div>' if r.note else ""
        body.append(
            f'<tr><td class="l">{e(name)}{note}</td><td>{e(_metric_value(r.metric, r.statistic, r.control))}</td>'
            f"<td>{e(_metric_value(r.metric, r.statistic, r.treatment))}</td><td>{change}</td>"
            f"<td>{_bar(r, limit)}</td><td>{e(F.chance(r.chance_to_win)) if r.chance_to_win is not None else '—'}"
            "</td>"
            f'<td class="l"><span class="abk-tag abk-{r.status}">{_STATUS_WORD[r.status]}</span></td></tr>'
        )
    return f"<table>{head}{''.join(body)}</table>"


def why_not_yet(rows: Sequence[ScoreRow], results: Mapping[str, Any]) -> str:
    """A sentence when a high chance to win sits next to "continue" or "keep" (they answer different questions)."""
    rec = results.get("recommendation", {})
    primary = results.get("primary_metric")
    hi = [r for r in rows if r.metric == primary and r.statistic == "mean" and (r.chance_to_win or 0) >= 0.9]
    if rec.get("decision") in ("continue", "keep", "stop") and hi and isinstance(primary, str):
        return (
            '<p class="abk-small">Why not ship at a high chance to win? The decision needs the '
            f"{'always-valid ' if 'always-valid' in rec.get('method', '') else ''}interval of "
            f"{html.escape(statistic_label(primary, 'mean').lower())} to exclude zero (and every guardrail to "
            "pass); the chance to win is a Bayesian summary shown for context, not the decision rule.</p>"
        )
    return ""


_SIDE_BY_SIDE = (
    ("accuracy", "Accuracy"),
    ("confidence", "Mean confidence"),
    ("latency_ms", "Mean latency"),
    ("latency_p95", "p95 latency"),
    ("predictions", "Predictions"),
)


def side_by_side_html(results: Mapping[str, Any]) -> str:
    """The classic table: one row per metric, the arms side by side with their own intervals."""
    e = html.escape
    variants = list(results.get("variants", []))
    by = {(m["name"], m["variant"]): m for m in results.get("metrics", [])}
    names = [n for n, _ in _SIDE_BY_SIDE if any((n, v) in by for v in variants)]
    names += [
        n
        for n in dict.fromkeys(m["name"] for m in results.get("metrics", []))
        if n not in names and not n.startswith("latency_p")
    ]
    counts = results.get("counts", {})
    head = '<tr><th class="l">metric</th>' + "".join(f"<th>{e(v)}</th>" for v in variants) + "</tr>"
    body = []
    for n in names:
        label = dict(_SIDE_BY_SIDE).get(n) or metric_info(n).label
        unit = "ms" if n.startswith("latency") else metric_info(n).unit
        arms = [by.get((n, v), {}) for v in variants]
        widths = [
            F.interval_decimals(m["ci_low"], m["ci_high"], unit)
            for m in arms
            if not (F.missing(m.get("ci_low")) or F.missing(m.get("ci_high")))
        ]
        cells = []
        for i, m in enumerate(arms):
            no_labels = metric_info(n).needs_labels and not (counts.get("labelled") or [0] * len(variants))[i]
            cells.append(
                F.estimate_with_interval(
                    m.get("estimate"),
                    m.get("ci_low"),
                    m.get("ci_high"),
                    unit,
                    decimals=max(widths) if widths else None,
                    reason="no labels yet" if no_labels else None,
                )
            )
        body.append(f'<tr><td class="l">{e(label)}</td>' + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    users = "".join(f"<td>{F.count(u)}</td>" for u in counts.get("users", []))
    body.append(f'<tr><td class="l">Users</td>{users}</tr>')
    return (
        f'<table style="width:auto;min-width:50%">{head}{"".join(body)}</table>'
        '<p class="abk-small">Each arm\'s own value with its 95 % interval, clustered by user.</p>'
    )


@dataclass(frozen=True)
class Scorecard:
    """The report's first screen; renders itself in a notebook (``_repr_html_``)."""

    results: Mapping[str, Any]
    min_units: int = 100
    inference: str = "sequential"
    duration_days: int | None = None
    min_labelled_units: int = 30

    @classmethod
    def from_result(
        cls,
        result: Any,
        *,
        min_units: int = 100,
        min_labelled_units: int = 30,
        inference: str = "sequential",
        experiment: Any = None,
    ) -> Scorecard:
        """Build from an ``AnalysisResult`` (and the ``Experiment``, for the planned duration)."""
        duration = getattr(experiment, "duration_days", None)
        return cls(result.to_json(), min_units, inference, duration, min_labelled_units)

    @property
    def rows(self) -> list[ScoreRow]:
        return score_rows(
            self.results,
            min_units=self.min_units,
            min_labelled_units=self.min_labelled_units,
            inference=self.inference,
        )

    def to_html(self) -> str:
        rows = self.rows
        return (
            f'{_CSS}<div class="abk">{banner_html(self.results, duration_days=self.duration_days)}'
            f"{rows_html(rows, self.results, inference=self.inference)}{why_not_yet(rows, self.results)}"
            f"<h3>The arms side by side</h3>{side_by_side_html(self.results)}</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        rec = self.results.get("recommendation", {})
        return f"Scorecard(decision={rec.get('decision')!r}, rows={len(self.rows)})"


def reasons_html(recommendation: Mapping[str, Any]) -> str:
    """Every reason of the recommendation as a list, numbers written out, with the method."""
    e = html.escape
    items = "".join(f"<li>{e(plain_text(r))}</li>" for r in recommendation.get("reasons") or [])
    extra = ""
    if recommendation.get("samples_needed") is not None:
        days = recommendation.get("days_needed")
        extra = (
            f"<p>About {F.count(recommendation['samples_needed'])} more users needed"
            + (f" (~{F.number(days, 2)} days at the current traffic)" if days is not None else "")
            + ".</p>"
        )
    method = e(plain_text(recommendation.get("method", "")))
    return f'<ul>{items}</ul>{extra}<p class="abk-small">Method: {method}</p>'


# --------------------------------------------------------------------------------------------------
# The run index: one line per run, the primary metric's lift on an axis shared by every run


def primary_row(results: Mapping[str, Any], parameters: Mapping[str, Any]) -> ScoreRow | None:
    """The scorecard row of a run's primary metric (first challenger), read with the run's own parameters."""
    rows = score_rows(
        results,
        min_units=int(parameters.get("min_units", 100)),
        min_labelled_units=int(parameters.get("min_labelled_units", 30)),
        inference=str(parameters.get("inference", "sequential")),
        statistics=("mean",),
    )
    return next((r for r in rows if r.metric == results.get("primary_metric")), None)


def runs_table_html(runs: Sequence[tuple[str, str, Mapping[str, Any], Mapping[str, Any] | None]]) -> str:
    """The run index body: for each (link, started, run record, analysis results or None) the scenario,
    date, status, decision, top reason and the primary metric's lift with its interval, bars on one axis."""
    e = html.escape
    prim = {i: primary_row(res, run.get("parameters", {})) for i, (_, _, run, res) in enumerate(runs) if res}
    limit = _axis_limit([r for r in prim.values() if r is not None])
    head = (
        '<tr><th class="l" style="width:14%">run</th><th class="l" style="width:11%">scenario</th>'
        '<th class="l" style="width:10%">started (UTC)</th><th class="l" style="width:12%">decision</th>'
        '<th class="l" style="width:21%">top reason</th><th style="width:13%">primary metric lift</th>'
        f'<th style="width:19%"><div class="abk-axis"><span>{_fmt_axis(-limit)}</span><span>0</span>'
        f"<span>{_fmt_axis(limit)}</span></div></th></tr>"
    )
    body = []
    for i, (link, started, run, res) in enumerate(runs):
        scenario = ", ".join(_stem(p) for p in run.get("params_files", [])) or "—"
        status = "ok" if run.get("ok") else "failed"
        if res:
            rec = res.get("recommendation", {})
            decision = _DECISION.get(rec.get("decision", ""), ("", rec.get("decision", "")))[1]
            decision = decision.format(variant=rec.get("variant") or "the challenger")
            reason = top_reason(rec)
        else:
            decision, reason = ("failed" if status == "failed" else "no analysis"), ""
        r = prim.get(i)
        if r is not None:
            change = F.estimate_with_interval(r.relative, r.low, r.high, "rate", signed=True)
            lift = f"{e(statistic_label(r.metric, 'mean'))}<br>" + change.replace(" (", "<br>(", 1)
            bar = _bar(r, limit)
        else:
            lift, bar = "—", ""
        cls = "abk-bad" if status == "failed" else ""
        body.append(
            f'<tr><td class="l"><a href="{e(link)}">{e(run.get("run_name", ""))}</a></td>'
            f'<td class="l">{e(scenario)}</td><td class="l">{e(started)}</td>'
            f'<td class="l"><span class="abk-tag {cls}">{e(decision)}</span></td><td class="l">{e(reason)}</td>'
            f"<td>{lift}</td><td>{bar}</td></tr>"
        )
    note = (
        '<p class="abk-small">Lift: the challenger against control on each run\'s primary metric, with the '
        "interval its recommendation uses, drawn on one axis for every run.</p>"
    )
    return f'{_CSS}<div class="abk"><table>{head}{"".join(body)}</table>{note}</div>'


def _stem(path: str) -> str:
    """``params/scenarios/aa.yaml`` → ``aa``."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name
