"""Recommendations with reasons: ship a variant, keep the control, continue, stop for futility, or invalid.

``decide`` reads one ``Comparison`` per (challenger, metric, statistic) and the SRM result. Rules, in order:

1. SRM mismatch ⇒ "invalid" (every comparison is suspect). No comparison for the primary metric, or numbers
   that contradict each other (a p-value outside [0, 1], an interval whose ends are swapped, negative or
   infinite counts) ⇒ "invalid" with the reason named.
2. **Minimum evidence.** Fewer than ``min_units`` users in an arm, or fewer than ``min_labelled_units`` units
   carrying the primary metric (labelled users for accuracy) in an arm ⇒ "continue" with how many more are
   needed. A primary comparison without an estimable variance (NaN: zero or undefined variance, the one
   "insufficient data" result of every method in ``abkit.stats``) ⇒ "continue"; NaN is never a pass.
3. Primary metric: p-values of the challengers are adjusted over that family (Holm by default). A
   challenger *wins* when its adjusted p < α and the effect goes the better way.
4. A winner ships only if every guardrail passes non-inferiority: the interval bound in the harmful
   direction lies within the margin. A clearly violated guardrail (whole interval beyond the margin) blocks
   the winner; an undecided one (or NaN) makes the result "continue". A guardrail's direction comes from
   ``higher_is_better`` (the metric registry); an unknown metric without a direction is an error.
5. No winner: every challenger significantly worse ⇒ "keep"; every interval excludes ``min_effect`` in the
   better direction ⇒ "stop" (futility); the planned duration is over ⇒ "keep"; else "continue" with the
   estimated units and days still needed to detect ``min_effect`` (or the observed effect).

With ``inference="sequential"`` (default) the always-valid p-values and intervals are used, so the
recommendation may be read at every look. ``decide`` raises only on configuration (an unknown option or
metric direction); every numeric edge case becomes "continue" or "invalid" with its reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from abkit.errors import AbkitError
from abkit.stats.config import check_alpha, resolve
from abkit.stats.multiple import METHODS, adjust
from abkit.stats.srm import SRMResult

Decision = Literal["ship", "keep", "continue", "stop", "invalid"]
DECISIONS: tuple[str, ...] = ("ship", "keep", "continue", "stop", "invalid")
INFERENCES = ("sequential", "fixed")


class Comparison(NamedTuple):
    """One challenger against control on one metric statistic (absolute difference challenger − control)."""

    metric: str  # a metric of the registry, e.g. "accuracy" | "confidence" | "latency_ms"
    statistic: str  # "mean" | "p50" | "p95" | "p99"
    variant: str  # the challenger
    estimate: float  # challenger − control
    ci_low: float  # fixed-horizon interval (NaN: insufficient data)
    ci_high: float
    p_value: float  # fixed-horizon p-value (NaN: insufficient data)
    seq_ci_low: float  # always-valid interval
    seq_ci_high: float
    seq_p_value: float  # always-valid p-value
    se: float  # standard error of the difference
    control_var: float  # per-unit variance of control's estimator (for sample-size planning)
    control_mean: float
    units: float  # units carrying the metric in both arms
    n_control: float = math.nan  # units carrying the metric in control (labelled users for accuracy)
    n_treatment: float = math.nan  # units carrying the metric in the challenger


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The decision, the variant it concerns (if any) and the reasons, each a sentence."""

    decision: Decision
    variant: str | None
    reasons: tuple[str, ...]
    method: str = ""
    samples_needed: int | None = None  # more units carrying the primary metric (all arms), for "continue"
    days_needed: float | None = None  # days at the observed rate, for "continue"
    p_adjusted: Mapping[str, float] = dataclasses.field(default_factory=dict)  # primary metric, by challenger

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise AbkitError(f"decision={self.decision!r} is not one of {DECISIONS}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (no NaN)."""
        days = self.days_needed
        return {
            "decision": self.decision,
            "variant": self.variant,
            "reasons": list(self.reasons),
            "method": self.method,
            "samples_needed": self.samples_needed,
            "days_needed": None if days is None or not math.isfinite(days) else round(days, 2),
            "p_adjusted": {k: (float(v) if math.isfinite(v) else None) for k, v in self.p_adjusted.items()},
        }

    def _repr_html_(self) -> str:
        import html

        colour = {"ship": "#1a7f37", "keep": "#57606a", "continue": "#9a6700", "stop": "#57606a", "invalid": "#cf222e"}
        what = self.decision.upper() + (f": {self.variant}" if self.variant else "")
        items = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        return (
            f'<div style="border-left:6px solid {colour[self.decision]};padding:8px 12px">'
            f"<b>{html.escape(what)}</b><ul>{items}</ul><small>{html.escape(self.method)}</small></div>"
        )


def _finite(*xs: Any) -> bool:
    try:
        return all(x is not None and math.isfinite(x) for x in xs)
    except TypeError:
        return False


def _num(x: Any) -> float:
    """``x`` as a float; anything that is not a number becomes NaN."""
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _count(x: float) -> str:
    return f"{x:.0f}" if _finite(x) else "unknown"


def _view(c: Comparison, seq: bool) -> tuple[float, float, float]:
    """(p-value, interval low, interval high) of the inference in use."""
    return (c.seq_p_value, c.seq_ci_low, c.seq_ci_high) if seq else (c.p_value, c.ci_low, c.ci_high)


def _contradiction(c: Comparison, seq: bool) -> str | None:
    """A reason when the numbers of ``c`` contradict each other (never for NaN: that is missing data)."""
    p, lo, hi = (_num(x) for x in _view(c, seq))
    est = _num(c.estimate)
    if not math.isnan(p) and not 0.0 <= p <= 1.0:
        return f"p-value {p!r} lies outside [0, 1]"
    if math.isinf(est):
        return f"the estimate is {est!r}"
    if not (math.isnan(lo) or math.isnan(hi)) and lo > hi:
        return f"the interval ({lo:.4g}, {hi:.4g}) has its ends swapped"
    for name in ("n_control", "n_treatment", "units"):
        v = _num(getattr(c, name))
        if not math.isnan(v) and (v < 0 or math.isinf(v)):
            return f"{name} = {v!r} is not a count"
    return None


def _insufficient(c: Comparison, seq: bool) -> str | None:
    p, lo, hi = (_num(x) for x in _view(c, seq))
    if not _finite(_num(c.estimate)):
        return "the estimate is undefined (no data carrying the metric)"
    if not _finite(p, lo, hi):
        return "insufficient data: the variance is zero or undefined, so no interval or p-value exists yet"
    return None


def _direction(g: Any, higher_is_better: Mapping[str, bool]) -> bool:
    """The guardrail's direction: the registry's for a known metric; its own only for an unknown one."""
    known = higher_is_better.get(g.metric)
    own = getattr(g, "higher_is_better", None)
    if known is None and own is None:
        raise AbkitError(
            f"guardrail on metric {g.metric!r} has no direction: the metric registry does not know it; "
            "declare the metric with its direction, or give the guardrail higher_is_better"
        )
    if known is not None and own is not None and bool(own) != bool(known):
        raise AbkitError(
            f"guardrail on metric {g.metric!r} says higher_is_better={own!r}, but the metric registry "
            f"says {known!r}; drop the flag (the registry decides)"
        )
    return bool(known if known is not None else own)


def _min_count(value: int | None, key: str) -> int:
    v = resolve(key, value)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 1 or v != int(v):
        raise AbkitError(f"{key}={v!r} must be a whole number >= 1")
    return int(v)


def decide(
    comparisons: Sequence[Comparison],
    srm: SRMResult,
    *,
    primary_metric: str,
    higher_is_better: Mapping[str, bool],
    guardrails: Sequence[Any] = (),
    units: Mapping[str, float] | None = None,
    alpha: float | None = None,
    multiple: str = "holm",
    inference: str = "sequential",
    min_units: int | None = None,
    min_labelled_units: int | None = None,
    min_effect: float | None = None,
    units_per_day: float | None = None,
    duration_over: bool = False,
) -> Recommendation:
    """Turn comparisons into a :class:`Recommendation`; see the module docstring for the rules.

    ``units``: users per arm (default: the largest count any comparison carries per arm). ``min_units`` and
    ``min_labelled_units`` default to the ``abkit.stats.config`` values. ``units_per_day``: units carrying the
    primary metric per day (all arms), to turn "units needed" into days.
    """
    a = check_alpha(alpha)
    if inference not in INFERENCES:
        raise AbkitError(f"inference={inference!r} is unknown; use one of {INFERENCES}")
    if multiple not in METHODS:
        raise AbkitError(f"multiple={multiple!r} is unknown; use one of {METHODS}")
    if primary_metric not in higher_is_better:
        raise AbkitError(f"primary_metric={primary_metric!r} has no direction; known: {sorted(higher_is_better)}")
    min_n, min_lab = _min_count(min_units, "min_units"), _min_count(min_labelled_units, "min_labelled_units")
    directions = {id(g): _direction(g, higher_is_better) for g in guardrails}
    seq = inference == "sequential"
    method = (
        f"{'always-valid (confidence sequence)' if seq else 'fixed-horizon'} inference, α = {a:g}, "
        f"{multiple} over challengers on {primary_metric}; guardrails by non-inferiority; minimum evidence "
        f"{min_n} users and {min_lab} units carrying {primary_metric} per arm"
    )
    min_effect = min_effect if min_effect is None or _finite(_num(min_effect)) else None
    per_day = _num(units_per_day)
    rate = per_day if _finite(per_day) and per_day > 0 else None

    def invalid(*why: str) -> Recommendation:
        return Recommendation("invalid", None, why, method)

    if srm.status == "mismatch":
        return invalid(srm.reason, "every comparison is suspect until the cause is found")
    prim = [c for c in comparisons if c.metric == primary_metric and c.statistic == "mean"]
    if not prim:
        return invalid(f"too little data: no comparison for primary metric {primary_metric!r}")
    broken = [
        f"{c.metric} {c.statistic} for {c.variant}: {why}" for c in comparisons if (why := _contradiction(c, seq))
    ]
    if broken:
        return invalid(*broken, "the statistics contradict each other; the log or the analysis is broken")

    short = _evidence(comparisons, prim, units, min_n, min_lab, primary_metric)
    if short is not None:
        short_reasons, more = short
        return _wait(short_reasons, more, rate, method)
    thin = [(c, why) for c in prim if (why := _insufficient(c, seq))]
    if thin:
        thin_reasons = [f"{primary_metric} for {c.variant}: {why}" for c, why in thin]
        return _wait(
            thin_reasons + ["no verdict until the variance can be estimated: collect more labelled data"],
            None,
            rate,
            method,
        )

    up = higher_is_better[primary_metric]
    p_adj = adjust([_view(c, seq)[0] for c in prim], multiple, alpha=a).p_adjusted
    adjusted = {c.variant: float(p) for c, p in zip(prim, p_adj)}
    reasons: list[str] = []
    winners, losers = [], []
    for c, p in zip(prim, p_adj):
        better = (c.estimate > 0) == up
        _, lo, hi = _view(c, seq)
        txt = f"{primary_metric} {c.variant} − control = {c.estimate:+.4g} (CI {lo:.4g} to {hi:.4g}, adjusted p = {p:.3g})"
        if p < a and better and c.estimate != 0:
            winners.append(c)
            reasons.append(txt + ": better")
        elif p < a and c.estimate != 0:
            losers.append(c)
            reasons.append(txt + ": worse")
        else:
            reasons.append(txt + ": not significant")

    blocked_hard: list[Comparison] = []
    undecided: list[Comparison] = []
    for c in sorted(winners, key=lambda c: c.estimate if up else -c.estimate, reverse=True):
        verdicts = [_guardrail(g, directions[id(g)], c.variant, comparisons, seq) for g in guardrails]
        reasons.extend(v for _, v in verdicts)
        states = {s for s, _ in verdicts}
        if states <= {"pass"}:
            return Recommendation("ship", c.variant, tuple(reasons), method, p_adjusted=adjusted)
        (blocked_hard if "fail" in states else undecided).append(c)
    if undecided:
        return _continue(
            reasons + ["a winner awaits an undecided guardrail"],
            prim,
            method,
            adjusted,
            min_effect,
            rate,
            undecided[0].variant,
        )
    if winners:
        return Recommendation(
            "keep", None, tuple(reasons + ["every winner violates a guardrail"]), method, p_adjusted=adjusted
        )
    if len(losers) == len(prim):
        return Recommendation(
            "keep", None, tuple(reasons + ["control is better than every challenger"]), method, p_adjusted=adjusted
        )
    if min_effect is not None:
        futile = all((_view(c, seq)[2] < min_effect) if up else (_view(c, seq)[1] > -min_effect) for c in prim)
        if futile:
            return Recommendation(
                "stop",
                None,
                tuple(reasons + [f"futility: every interval excludes an improvement of {min_effect:g}"]),
                method,
                p_adjusted=adjusted,
            )
    if duration_over:
        return Recommendation(
            "keep",
            None,
            tuple(reasons + ["planned duration reached without a significant improvement"]),
            method,
            p_adjusted=adjusted,
        )
    return _continue(reasons, prim, method, adjusted, min_effect, rate, None)


def _per_arm(comparisons: Sequence[Comparison], *, fewest: bool) -> dict[str, float]:
    """Per arm ("control" and each challenger), the fewest units over the comparisons (NaN if any is unknown)
    or, with ``fewest=False``, the most units any of them carries (NaN if none is known)."""
    seen: dict[str, list[float]] = {}
    for c in comparisons:
        for arm, n in (("control", c.n_control), (c.variant, c.n_treatment)):
            seen.setdefault(arm, []).append(_num(n))
    out = {}
    for arm, ns in seen.items():
        known = [n for n in ns if _finite(n)]
        out[arm] = (min(ns) if len(known) == len(ns) else math.nan) if fewest else max(known, default=math.nan)
    return out


def _evidence(
    comparisons: Sequence[Comparison],
    prim: Sequence[Comparison],
    units: Mapping[str, float] | None,
    min_n: int,
    min_lab: int,
    metric: str,
) -> tuple[list[str], int | None] | None:
    """Reasons and the units carrying ``metric`` still missing (all arms) when an arm is below the minimum
    evidence, else None. Users per arm come from ``units`` or, without it, from the largest count any
    comparison carries (every user carries the per-prediction metrics); unknown counts never pass."""
    carried = _per_arm(prim, fewest=True)
    users = {arm: _num(n) for arm, n in units.items()} if units is not None else _per_arm(comparisons, fewest=False)
    reasons: list[str] = []
    more: int | None = None
    for label, counts, floor in (("users", users, min_n), (f"units carrying {metric}", carried, min_lab)):
        low = {arm: n for arm, n in counts.items() if not (_finite(n) and n >= floor)}
        if not low:
            continue
        txt = ", ".join(f"{arm}: {_count(n)}" for arm, n in low.items())
        reasons.append(f"too little evidence: {label} per arm {txt}; a verdict needs at least {floor} per arm")
        if all(_finite(n) for n in low.values()):
            more = int(math.ceil(sum(floor - n for n in low.values())))
            reasons.append(f"continue: at least {more} more {label} (all arms) before any verdict")
        else:
            more = None
            reasons.append("per-arm counts are unknown: pass units= and comparisons with n_control and n_treatment")
    return (reasons, more) if reasons else None


def _wait(reasons: Sequence[str], more: int | None, rate: float | None, method: str) -> Recommendation:
    days = more / rate if more is not None and rate else None
    if days is not None:
        reasons = [*reasons, f"about {days:.1f} days at the current rate"]
    return Recommendation("continue", None, tuple(reasons), method, more, days)


def _guardrail(g: Any, up: bool, variant: str, comparisons: Sequence[Comparison], seq: bool) -> tuple[str, str]:
    """("pass" | "fail" | "undecided", reason) for one guardrail of one challenger."""
    name = f"guardrail {g.statistic} {g.metric} (margin {g.margin:g})"
    match = [c for c in comparisons if c.metric == g.metric and c.statistic == g.statistic and c.variant == variant]
    if not match:
        return "undecided", f"{name} for {variant}: no comparison available"
    c = match[0]
    _, lo, hi = _view(c, seq)
    if not _finite(lo, hi, c.estimate):
        return "undecided", f"{name} for {variant}: interval undefined (insufficient data), not a pass"
    worst, best = (lo, hi) if up else (-hi, -lo)  # harm = negative values
    if worst >= -g.margin:
        return "pass", f"{name} for {variant}: non-inferior (worst case {worst:+.4g} ≥ −{g.margin:g})"
    if best < -g.margin:
        return "fail", f"{name} for {variant}: worse by more than the margin (best case {best:+.4g})"
    return "undecided", f"{name} for {variant}: cannot yet rule out harm beyond the margin"


def _continue(
    reasons: list[str],
    prim: Sequence[Comparison],
    method: str,
    adjusted: Mapping[str, float],
    min_effect: float | None,
    rate: float | None,
    variant: str | None,
) -> Recommendation:
    from abkit.stats.power import sample_size

    need: list[int] = []
    for c in prim:
        eff = min_effect if min_effect is not None else abs(c.estimate)
        if not _finite(eff, c.control_var, c.control_mean, c.units) or eff <= 0 or c.control_var <= 0:
            continue
        try:
            n = sample_size(
                eff, mean=c.control_mean, var=c.control_var, relative=False, sequential_tuning=max(c.units, 1.0)
            )
        except (AbkitError, ArithmeticError, ValueError):  # a root the search cannot bracket: size unknown
            continue
        need.append(max(0, int(n - c.units)))
    more = min(need) if need else None
    days = (more / rate) if (more is not None and rate) else None
    what = f"about {more} more units carrying the metric" if more is not None else "more units (size unknown)"
    if days is not None:
        what += f" (~{days:.1f} days at the current rate)"
    target = f"an effect of {min_effect:g}" if min_effect is not None else "the observed effect"
    return Recommendation(
        "continue",
        variant,
        tuple(reasons + [f"continue: {what} to detect {target} with 80% power"]),
        method,
        more,
        days,
        adjusted,
    )


POLICIES = ("superiority", "non-inferiority")
STATISTICS = ("mean", "p50", "p95", "p99")


@dataclasses.dataclass(frozen=True)
class NonInferiorityPolicy:
    """Ship a challenger that is non-inferior on the primary metric and better on a named secondary metric.

    ``margin`` (≥ 0) is the loss on the primary metric still accepted, in its units, or with ``relative`` as a
    fraction of the control mean (taken as known, as spotify-confidence does). ``secondary_metric`` and
    ``secondary_statistic`` name the comparison the challenger must win (e.g. latency_ms, p50).
    """

    margin: float
    secondary_metric: str
    secondary_statistic: str = "mean"
    relative: bool = False

    def __post_init__(self) -> None:
        m = _num(self.margin)
        if not (_finite(m) and m >= 0) or isinstance(self.margin, bool):
            raise AbkitError(
                f"ni_margin={self.margin!r} must be a finite number >= 0 (the accepted loss on the "
                "primary metric, e.g. 0.02 for two accuracy points)"
            )
        if not isinstance(self.secondary_metric, str) or not self.secondary_metric:
            raise AbkitError(
                f"secondary_metric={self.secondary_metric!r} must name the metric the challenger must "
                "win, e.g. 'latency_ms'"
            )
        if self.secondary_statistic not in STATISTICS:
            raise AbkitError(f"secondary_statistic={self.secondary_statistic!r} is unknown; use one of {STATISTICS}")


def decide_policy(
    comparisons: Sequence[Comparison],
    srm: SRMResult,
    *,
    policy: NonInferiorityPolicy | None,
    sequential_tuning: float | None = None,
    **kwargs: Any,
) -> Recommendation:
    """``decide`` (``policy`` None: superiority) or ``decide_non_inferior`` with the same keyword arguments."""
    if policy is None:
        return decide(comparisons, srm, **kwargs)
    return decide_non_inferior(comparisons, srm, policy=policy, sequential_tuning=sequential_tuning, **kwargs)


def decide_non_inferior(
    comparisons: Sequence[Comparison],
    srm: SRMResult,
    *,
    policy: NonInferiorityPolicy,
    primary_metric: str,
    higher_is_better: Mapping[str, bool],
    guardrails: Sequence[Any] = (),
    sequential_tuning: float | None = None,
    **kwargs: Any,
) -> Recommendation:
    """ "Ship if non-inferior on the primary metric and better on the secondary": ``decide`` first (an invalid
    result, too little evidence, or a challenger that is plainly better stand as they are); otherwise a
    challenger ships when its primary effect passes the one-sided non-inferiority test at the margin, its
    secondary effect the one-sided superiority test, and every guardrail passes. Each test is at α / (number
    of challengers) (Bonferroni), fixed-horizon or always-valid like ``inference``.
    """
    from abkit.stats.noninferiority import effect_margin_test

    if policy.secondary_metric not in higher_is_better:
        raise AbkitError(
            f"secondary_metric={policy.secondary_metric!r} has no direction; known: {sorted(higher_is_better)}"
        )
    base = decide(
        comparisons,
        srm,
        primary_metric=primary_metric,
        higher_is_better=higher_is_better,
        guardrails=guardrails,
        **kwargs,
    )
    a = check_alpha(kwargs.get("alpha"))
    seq = kwargs.get("inference", "sequential") == "sequential"
    prim = [c for c in comparisons if c.metric == primary_metric and c.statistic == "mean"]
    method = (
        f"{base.method}; policy: ship if non-inferior on {primary_metric} (margin {policy.margin:g}"
        f"{' of the control mean' if policy.relative else ''}) and better on {policy.secondary_statistic} "
        f"{policy.secondary_metric}, one-sided tests at α/{max(len(prim), 1)}"
    )
    if base.decision in ("ship", "invalid") or any(
        r.startswith(("too little evidence", "no verdict until")) for r in base.reasons
    ):
        return dataclasses.replace(base, method=method)
    level = a / max(len(prim), 1)
    up = higher_is_better[primary_metric]
    sec_up = higher_is_better[policy.secondary_metric]
    directions = {id(g): _direction(g, higher_is_better) for g in guardrails}
    test: dict[str, Any] = {
        "alpha": level,
        "inference": "sequential" if seq else "fixed",
        "sequential_tuning": sequential_tuning,
    }
    reasons: list[str] = list(base.reasons)
    worse: list[Comparison] = []
    for c in sorted(prim, key=lambda c: c.estimate if up else -c.estimate, reverse=True):
        delta = policy.margin * abs(c.control_mean) if policy.relative else policy.margin
        ni = effect_margin_test(c.estimate, c.se, n=c.units, margin=delta, higher_is_better=up, **test)
        bound = float(ni.ci_low if up else ni.ci_high)
        if not _finite(bound):
            reasons.append(f"non-inferiority of {primary_metric} for {c.variant}: insufficient data, not a pass")
            continue
        reasons.append(
            f"non-inferiority of {primary_metric} for {c.variant} (margin {delta:.4g}): one-sided bound "
            f"{bound:+.4g} {'>' if bool(ni.passed) else 'does not clear'} {float(ni.threshold):+.4g}"
            f" (p = {float(ni.p_value):.3g})"
        )
        if not bool(ni.passed):
            _, lo, hi = _view(c, seq)
            if _finite(lo, hi) and ((hi < -delta) if up else (lo > delta)):
                worse.append(c)
            continue
        sec = [
            s
            for s in comparisons
            if s.metric == policy.secondary_metric
            and s.statistic == policy.secondary_statistic
            and s.variant == c.variant
        ]
        if not sec:
            reasons.append(f"{policy.secondary_statistic} {policy.secondary_metric} for {c.variant}: no comparison")
            continue
        s = sec[0]
        sup = effect_margin_test(s.estimate, s.se, n=s.units, hypothesis="superiority", higher_is_better=sec_up, **test)
        good = bool(sup.passed)
        reasons.append(
            f"{policy.secondary_statistic} {policy.secondary_metric} {c.variant} − control = "
            f"{s.estimate:+.4g} (p = {float(sup.p_value):.3g}): {'better' if good else 'not shown better'}"
        )
        if not good:
            continue
        verdicts = [_guardrail(g, directions[id(g)], c.variant, comparisons, seq) for g in guardrails]
        reasons.extend(v for _, v in verdicts)
        if {st for st, _ in verdicts} <= {"pass"}:
            return Recommendation("ship", c.variant, tuple(reasons), method, p_adjusted=base.p_adjusted)
    if prim and len(worse) == len(prim):
        why = f"every challenger is worse than control by more than the margin on {primary_metric}"
        return Recommendation("keep", None, (*reasons, why), method, p_adjusted=base.p_adjusted)
    return dataclasses.replace(base, reasons=tuple(reasons), method=method)
