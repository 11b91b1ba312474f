"""Recommendations with reasons: ship a variant, keep the control, continue, stop for futility, or invalid.

``decide`` reads one ``Comparison`` per (challenger, metric, statistic) and the SRM result. Rules, in order:

1. SRM mismatch ⇒ "invalid" (every comparison is suspect). An arm below ``min_units`` users, or no
   comparison for the primary metric, ⇒ "invalid" (too little data).
2. A NaN in a primary comparison ⇒ "invalid" with the reason named; NaN is never a pass.
3. Primary metric: p-values of the challengers are adjusted over that family (Holm by default). A
   challenger *wins* when its adjusted p < α and the effect goes the better way.
4. A winner ships only if every guardrail passes non-inferiority: the interval bound in the harmful
   direction lies within the margin. A clearly violated guardrail (whole interval beyond the margin) blocks
   the winner; an undecided one (or NaN) makes the result "continue".
5. No winner: every challenger significantly worse ⇒ "keep"; every interval excludes ``min_effect`` in the
   better direction ⇒ "stop" (futility); the planned duration is over ⇒ "keep"; else "continue" with the
   estimated users and days still needed to detect ``min_effect`` (or the observed effect).

With ``inference="sequential"`` (default) the always-valid p-values and intervals are used, so the
recommendation may be read at every look.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple


from abkit.errors import AbkitError
from abkit.stats.config import check_alpha
from abkit.stats.multiple import adjust
from abkit.stats.srm import SRMResult

Decision = Literal["ship", "keep", "continue", "stop", "invalid"]
DECISIONS: tuple[str, ...] = ("ship", "keep", "continue", "stop", "invalid")
INFERENCES = ("sequential", "fixed")


class Comparison(NamedTuple):
    """One challenger against control on one metric statistic (absolute difference challenger − control)."""

    metric: str  # "accuracy" | "confidence" | "latency_ms"
    statistic: str  # "mean" | "p50" | "p95" | "p99"
    variant: str  # the challenger
    estimate: float  # challenger − control
    ci_low: float  # fixed-horizon interval
    ci_high: float
    p_value: float  # fixed-horizon p-value
    seq_ci_low: float  # always-valid interval
    seq_ci_high: float
    seq_p_value: float  # always-valid p-value
    se: float  # standard error of the difference
    control_var: float  # per-unit variance of control's estimator (for sample-size planning)
    control_mean: float
    units: float  # users in both arms


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The decision, the variant it concerns (if any) and the reasons, each a sentence."""

    decision: Decision
    variant: str | None
    reasons: tuple[str, ...]
    method: str = ""
    samples_needed: int | None = None  # more users (all arms) needed, for "continue"
    days_needed: float | None = None  # days at the observed traffic, for "continue"
    p_adjusted: Mapping[str, float] = dataclasses.field(default_factory=dict)  # primary metric, by challenger

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise AbkitError(f"decision={self.decision!r} is not one of {DECISIONS}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (no NaN)."""
        return {
            "decision": self.decision, "variant": self.variant, "reasons": list(self.reasons), "method": self.method,
            "samples_needed": self.samples_needed,
            "days_needed": None if self.days_needed is None or not math.isfinite(self.days_needed) else round(self.days_needed, 2),
            "p_adjusted": {k: (float(v) if math.isfinite(v) else None) for k, v in self.p_adjusted.items()},
        }

    def _repr_html_(self) -> str:
        import html

        colour = {"ship": "#1a7f37", "keep": "#57606a", "continue": "#9a6700", "stop": "#57606a", "invalid": "#cf222e"}
        what = self.decision.upper() + (f": {self.variant}" if self.variant else "")
        items = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        return (f'<div style="border-left:6px solid {colour[self.decision]};padding:8px 12px">'
                f"<b>{html.escape(what)}</b><ul>{items}</ul><small>{html.escape(self.method)}</small></div>")


def _finite(*xs: float) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _bad(c: Comparison, sequential: bool) -> str | None:
    p = c.seq_p_value if sequential else c.p_value
    lo, hi = (c.seq_ci_low, c.seq_ci_high) if sequential else (c.ci_low, c.ci_high)
    if not _finite(c.estimate):
        return "the estimate is undefined"
    if not _finite(p):
        return "the p-value is undefined"
    if not _finite(lo, hi):
        return "the interval is undefined"
    return None


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
    min_units: int = 100,
    min_effect: float | None = None,
    units_per_day: float | None = None,
    duration_over: bool = False,
) -> Recommendation:
    """Turn comparisons into a :class:`Recommendation`; see the module docstring for the rules."""
    a = check_alpha(alpha)
    if inference not in INFERENCES:
        raise AbkitError(f"inference={inference!r} is unknown; use one of {INFERENCES}")
    if primary_metric not in higher_is_better:
        raise AbkitError(f"primary_metric={primary_metric!r} has no direction; known: {sorted(higher_is_better)}")
    seq = inference == "sequential"
    method = (f"{'always-valid (confidence sequence)' if seq else 'fixed-horizon'} inference, α = {a:g}, "
              f"{multiple} over challengers on {primary_metric}; guardrails by non-inferiority")
    if srm.status == "mismatch":
        return Recommendation("invalid", None, (srm.reason, "every comparison is suspect until the cause is found"), method)
    small = {v: n for v, n in (units or {}).items() if not (n >= min_units)}
    if small:
        txt = ", ".join(f"{v}: {int(n) if _finite(n) else 0}" for v, n in small.items())
        return Recommendation("invalid", None, (f"too little data: users per arm {txt} < {min_units}",), method)
    prim = [c for c in comparisons if c.metric == primary_metric and c.statistic == "mean"]
    if not prim:
        return Recommendation("invalid", None, (f"too little data: no comparison for primary metric {primary_metric!r}",), method)
    bad = [(c, _bad(c, seq)) for c in prim]
    bad = [(c, why) for c, why in bad if why]
    if bad:
        return Recommendation("invalid", None, tuple(f"{primary_metric} for {c.variant}: {why} (no labelled or no valid data?)" for c, why in bad), method)

    up = higher_is_better[primary_metric]
    p_adj = adjust([c.seq_p_value if seq else c.p_value for c in prim], multiple, alpha=a).p_adjusted
    adjusted = {c.variant: float(p) for c, p in zip(prim, p_adj)}
    reasons: list[str] = []
    winners, losers = [], []
    for c, p in zip(prim, p_adj):
        better = (c.estimate > 0) == up
        lo, hi = (c.seq_ci_low, c.seq_ci_high) if seq else (c.ci_low, c.ci_high)
        txt = f"{primary_metric} {c.variant} − control = {c.estimate:+.4g} (CI {lo:.4g} to {hi:.4g}, adjusted p = {p:.3g})"
        if p < a and better:
            winners.append(c)
            reasons.append(txt + ": better")
        elif p < a:
            losers.append(c)
            reasons.append(txt + ": worse")
        else:
            reasons.append(txt + ": not significant")

    blocked_hard, undecided = [], []
    for c in sorted(winners, key=lambda c: c.estimate if up else -c.estimate, reverse=True):
        verdicts = [_guardrail(g, c.variant, comparisons, seq) for g in guardrails]
        reasons.extend(v for _, v in verdicts)
        states = {s for s, _ in verdicts}
        if states <= {"pass"}:
            return Recommendation("ship", c.variant, tuple(reasons), method, p_adjusted=adjusted)
        (blocked_hard if "fail" in states else undecided).append(c)
    if undecided:
        return _continue(reasons + ["a winner awaits an undecided guardrail"], prim, method, adjusted, min_effect, units_per_day, undecided[0].variant)
    if winners:
        return Recommendation("keep", None, tuple(reasons + ["every winner violates a guardrail"]), method, p_adjusted=adjusted)
    if len(losers) == len(prim):
        return Recommendation("keep", None, tuple(reasons + ["control is better than every challenger"]), method, p_adjusted=adjusted)
    if min_effect is not None:
        futile = all(((c.seq_ci_high if seq else c.ci_high) < min_effect) if up else
                     ((c.seq_ci_low if seq else c.ci_low) > -min_effect) for c in prim)
        if futile:
            return Recommendation("stop", None, tuple(reasons + [f"futility: every interval excludes an improvement of {min_effect:g}"]), method, p_adjusted=adjusted)
    if duration_over:
        return Recommendation("keep", None, tuple(reasons + ["planned duration reached without a significant improvement"]), method, p_adjusted=adjusted)
    return _continue(reasons, prim, method, adjusted, min_effect, units_per_day, None)


def _guardrail(g: Any, variant: str, comparisons: Sequence[Comparison], seq: bool) -> tuple[str, str]:
    """("pass" | "fail" | "undecided", reason) for one guardrail of one challenger."""
    name = f"guardrail {g.statistic} {g.metric} (margin {g.margin:g})"
    match = [c for c in comparisons if c.metric == g.metric and c.statistic == g.statistic and c.variant == variant]
    if not match:
        return "undecided", f"{name} for {variant}: no comparison available"
    c = match[0]
    lo, hi = (c.seq_ci_low, c.seq_ci_high) if seq else (c.ci_low, c.ci_high)
    if not _finite(lo, hi, c.estimate):
        return "undecided", f"{name} for {variant}: interval undefined, not a pass"
    worst, best = (lo, hi) if g.higher_is_better else (-hi, -lo)  # harm = negative values
    if worst >= -g.margin:
        return "pass", f"{name} for {variant}: non-inferior (worst case {worst:+.4g} ≥ −{g.margin:g})"
    if best < -g.margin:
        return "fail", f"{name} for {variant}: worse by more than the margin (best case {best:+.4g})"
    return "undecided", f"{name} for {variant}: cannot yet rule out harm beyond the margin"


def _continue(reasons: list[str], prim: Sequence[Comparison], method: str, adjusted: Mapping[str, float],
              min_effect: float | None, units_per_day: float | None, variant: str | None) -> Recommendation:
    from abkit.stats.power import sample_size

    need: list[int] = []
    for c in prim:
        eff = min_effect if min_effect is not None else abs(c.estimate)
        if not _finite(eff, c.control_var, c.control_mean) or eff <= 0 or c.control_var <= 0:
            continue
        try:
            n = sample_size(eff, mean=c.control_mean, var=c.control_var, relative=False, sequential_tuning=max(c.units, 1.0))
        except AbkitError:
            continue
        need.append(max(0, int(n - c.units)))
    more = min(need) if need else None
    days = (more / units_per_day) if (more is not None and units_per_day and units_per_day > 0) else None
    what = f"about {more} more users" if more is not None else "more users (size unknown)"
    if days is not None:
        what += f" (~{days:.1f} days at the current traffic)"
    target = f"an effect of {min_effect:g}" if min_effect is not None else "the observed effect"
    return Recommendation("continue", variant, tuple(reasons + [f"continue: {what} to detect {target} with 80% power"]),
                          method, more, days, adjusted)
