"""The rollout policy: a frozen, validated value built from keyword arguments or a plain dict (params YAML).

Gates are strategy objects: a ``Threshold`` turns one comparison (tested model − reference, from the
analysis) into a ``GateResult`` that passes, fails or is inconclusive. Thresholds register themselves by
``type`` so ``Threshold.parse({"type": "non_inferiority", ...})`` builds one from config; an unknown type
lists the known ones.

>>> p = RolloutPolicy.from_dict({"stages": [0.1, 0.25, 0.5, 1.0], "guardrails": [
...     {"type": "non_inferiority", "metric": "latency_ms", "statistic": "p95", "margin": 10.0}]})
>>> p.canary_shares, p.guardrails[0].higher_is_better
((0.1, 0.25, 0.5), False)
>>> RolloutPolicy(stages=(0.5, 0.25))
Traceback (most recent call last):
...
abkit.rollout.policy.RolloutError: rollout field 'stages' is [0.5, 0.25]; stages must increase strictly, e.g. [0.1, 0.25, 0.5, 1.0].
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from abkit.errors import AbkitError

__all__ = [
    "GATE_STATUSES",
    "GateResult",
    "NonInferiority",
    "RolloutError",
    "RolloutPolicy",
    "Threshold",
    "metric_direction",
    "parse_stages",
]

GateStatus = Literal["pass", "fail", "inconclusive"]
GATE_STATUSES = ("pass", "fail", "inconclusive")
PROMOTE_WHEN = ("better", "non_inferior_and_cheaper")


class RolloutError(AbkitError):
    """A rollout policy, state or evidence is invalid; the message names the field, the value and the fix."""


def _fail(field: str, value: Any, fix: str) -> RolloutError:
    return RolloutError(f"rollout field {field!r} is {value!r}; {fix}")


def metric_direction(metric: str, field: str = "metric") -> bool:
    """``higher_is_better`` of a metric, read from the one metric registry; unknown metrics are refused."""
    from abkit.metrics.registry import get_metric

    try:
        return bool(get_metric(metric).higher_is_better)
    except AbkitError as exc:
        raise _fail(field, metric, f"it is not a known metric ({exc})") from exc


class GateResult(NamedTuple):
    """One gate of one step: its verdict, the number it read and the bound it was held to."""

    name: str  # e.g. "primary accuracy", "guardrail p95 latency_ms", "srm", "min sample", "drift"
    status: str  # "pass" | "fail" | "inconclusive" (missing data, NaN, too small a sample: never a pass)
    value: float | None  # the number the gate read (worst case of an interval, a p-value, a count)
    threshold: float | None  # the bound it was held to
    reason: str  # one sentence

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers as None)."""
        return {
            "name": self.name,
            "status": self.status,
            "value": _num(self.value),
            "threshold": _num(self.threshold),
            "reason": self.reason,
        }


def _num(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _finite(*xs: Any) -> bool:
    return all(x is not None and math.isfinite(float(x)) for x in xs)


class Threshold:
    """A gate's strategy: ``evaluate(comparison)`` → ``GateResult``; subclasses register a ``type`` key."""

    kinds: ClassVar[dict[str, type[Threshold]]] = {}
    type: ClassVar[str] = ""

    def __init_subclass__(cls, type: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type:
            cls.type = type
            Threshold.kinds[type] = cls

    @classmethod
    def parse(cls, spec: Any) -> Threshold:
        """Build a threshold from ``{"type": ..., **fields}`` (or return a threshold unchanged)."""
        if isinstance(spec, Threshold):
            return spec
        if not isinstance(spec, Mapping):
            raise _fail(
                "guardrails[]",
                spec,
                "give a mapping such as {type: non_inferiority, metric: latency_ms, statistic: p95, margin: 10}.",
            )
        spec = dict(spec)
        kind = spec.pop("type", "non_inferiority")
        if kind not in cls.kinds:
            raise _fail("guardrails[].type", kind, f"choose one of {sorted(cls.kinds)}.")
        fields = {f.name for f in dataclasses.fields(cls.kinds[kind])}  # type: ignore[arg-type]
        unknown = sorted(set(spec) - fields)
        if unknown:
            raise _fail("guardrails[]", unknown, f"unknown field(s) for type {kind!r}; valid: {sorted(fields)}.")
        return cls.kinds[kind](**spec)

    def key(self) -> tuple[str, str]:  # pragma: no cover - abstract
        """(metric, statistic) of the comparison this threshold reads."""
        raise NotImplementedError

    def evaluate(
        self, estimate: float, ci_low: float, ci_high: float, reference: float | None = None
    ) -> GateResult:  # pragma: no cover - abstract
        """The verdict on an interval of tested − reference; ``reference`` is the reference arm's value."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True)
class NonInferiority(Threshold, type="non_inferiority"):
    """Pass when the always-valid interval of (tested − reference) rules out harm beyond ``margin``.

    Harm is read in the metric's own direction (from the metric registry): for latency, higher is harm.
    Fail when the whole interval is harm beyond the margin; otherwise (or with NaN) inconclusive.
    ``relative=True`` reads the margin as a share of the reference's value.
    """

    metric: str
    statistic: str = "mean"
    margin: float = 0.0
    relative: bool = False
    higher_is_better: bool = dataclasses.field(init=False, default=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "higher_is_better", metric_direction(self.metric, "guardrails[].metric"))
        if self.statistic not in ("mean", "p50", "p95", "p99"):
            raise _fail("guardrails[].statistic", self.statistic, "choose one of mean, p50, p95, p99.")
        if (
            isinstance(self.margin, bool)
            or not isinstance(self.margin, (int, float))
            or not math.isfinite(self.margin)
            or self.margin < 0
        ):
            raise _fail("guardrails[].margin", self.margin, "give a finite margin >= 0 in the metric's units.")
        object.__setattr__(self, "margin", float(self.margin))

    def key(self) -> tuple[str, str]:
        return self.metric, self.statistic

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "metric": self.metric,
            "statistic": self.statistic,
            "margin": self.margin,
            "relative": self.relative,
        }

    def evaluate(self, estimate: float, ci_low: float, ci_high: float, reference: float | None = None) -> GateResult:
        name = f"guardrail {self.statistic} {self.metric}"
        margin = self.margin * abs(reference) if self.relative and reference is not None else self.margin
        if not _finite(estimate, ci_low, ci_high, margin):
            return GateResult(
                name, "inconclusive", None, -margin, f"{name}: interval undefined (no or too little data)"
            )
        worst, best = (ci_low, ci_high) if self.higher_is_better else (-ci_high, -ci_low)  # harm is negative
        if worst >= -margin:
            return GateResult(
                name, "pass", worst, -margin, f"{name}: non-inferior (worst case {worst:+.4g} ≥ −{margin:.4g})"
            )
        if best < -margin:
            return GateResult(
                name, "fail", best, -margin, f"{name}: worse by more than the margin (best case {best:+.4g})"
            )
        return GateResult(name, "inconclusive", worst, -margin, f"{name}: cannot yet rule out harm beyond {margin:.4g}")


def _number(
    field: str, value: Any, *, low: float | None = None, low_open: bool = False, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(field, value, "give a finite number.")
    value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise _fail(field, value, f"give a number {'>' if low_open else '>='} {low:g}.")
    if high is not None and value > high:
        raise _fail(field, value, f"give a number <= {high:g}.")
    return value


@dataclasses.dataclass(frozen=True)
class RolloutPolicy:
    """How a challenger is ramped, gated, promoted, watched and rolled back; validated on construction.

    ``stages``: the challenger's traffic share at each canary stage, strictly increasing in (0, 1]; a last
    share of 1.0 is the switch itself (promotion). ``min_units``: labelled users per arm (pairs in shadow)
    before a gate is read. ``primary_margin``: how much worse (absolute, in the primary metric's units) the
    challenger may be and still pass a stage's "not worse" gate. ``promote_when``: "better" (the always-valid
    interval excludes no gain) or "non_inferior_and_cheaper" (non-inferior, and ``cost_metric`` shown better).
    ``stage_deadline_days``: how long a stage may stay inconclusive before it aborts. ``watch_days``: how
    long the new champion is watched against a ``watch_share`` holdback of the previous one.
    """

    stages: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    shadow: bool = False
    primary_metric: str = "accuracy"
    primary_margin: float = 0.01
    promote_when: str = "better"
    cost_metric: tuple[str, str] = ("latency_ms", "p95")
    guardrails: tuple[Threshold, ...] = ()
    min_units: int = 200
    stage_deadline_days: float = 7.0
    watch_days: float = 7.0
    watch_share: float = 0.1
    watch_margin: float = 0.0
    alpha: float = 0.05
    registry_path: str | None = None

    def __post_init__(self) -> None:
        stages = self.stages
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
            raise _fail("stages", stages, "give a list of traffic shares, e.g. [0.1, 0.25, 0.5, 1.0].")
        shares = tuple(_number("stages[]", s) for s in stages)
        if any(not 0.0 < s <= 1.0 for s in shares):
            raise _fail("stages", list(shares), "every share must lie in (0, 1], e.g. 0.1 for 10 %.")
        if any(b <= a for a, b in itertools.pairwise(shares)):
            raise _fail("stages", list(shares), "stages must increase strictly, e.g. [0.1, 0.25, 0.5, 1.0].")
        if shares == (1.0,):
            raise _fail("stages", list(shares), "give at least one canary share below 1, e.g. [0.1, 1.0].")
        object.__setattr__(self, "stages", shares)
        if not isinstance(self.shadow, bool):
            raise _fail("shadow", self.shadow, "give true or false.")
        metric_direction(self.primary_metric, "primary_metric")
        object.__setattr__(self, "primary_margin", _number("primary_margin", self.primary_margin, low=0.0))
        if self.promote_when not in PROMOTE_WHEN:
            raise _fail("promote_when", self.promote_when, f"choose one of {PROMOTE_WHEN}.")
        cost = tuple(self.cost_metric)
        if len(cost) != 2:
            raise _fail("cost_metric", self.cost_metric, "give [metric, statistic], e.g. [latency_ms, p95].")
        metric_direction(cost[0], "cost_metric")
        object.__setattr__(self, "cost_metric", cost)
        guards = self.guardrails
        if isinstance(guards, (str, bytes, Mapping)) or not isinstance(guards, Sequence):
            raise _fail("guardrails", guards, "give a list of thresholds.")
        object.__setattr__(self, "guardrails", tuple(Threshold.parse(g) for g in guards))
        if isinstance(self.min_units, bool) or not isinstance(self.min_units, int) or self.min_units < 2:
            raise _fail("min_units", self.min_units, "give a whole number >= 2 of labelled users per arm.")
        object.__setattr__(
            self,
            "stage_deadline_days",
            _number("stage_deadline_days", self.stage_deadline_days, low=0.0, low_open=True),
        )
        object.__setattr__(self, "watch_days", _number("watch_days", self.watch_days, low=0.0))
        object.__setattr__(
            self, "watch_share", _number("watch_share", self.watch_share, low=0.0, low_open=True, high=0.5)
        )
        object.__setattr__(self, "watch_margin", _number("watch_margin", self.watch_margin, low=0.0))
        a = _number("alpha", self.alpha, low=0.0, low_open=True)
        if a >= 1:
            raise _fail("alpha", a, "give a level in (0, 1), e.g. 0.05.")
        if self.registry_path is not None:
            path = Path(self.registry_path)
            if not path.is_dir():
                raise _fail(
                    "registry_path",
                    str(self.registry_path),
                    "the folder does not exist; create the registry first (ModelRegistry(path, create=True)).",
                )
            object.__setattr__(self, "registry_path", str(path))

    @property
    def canary_shares(self) -> tuple[float, ...]:
        """The shares gated as canary stages (a final 1.0 is the switch, not a stage)."""
        return tuple(s for s in self.stages if s < 1.0)

    @property
    def higher_is_better(self) -> bool:
        """Direction of the primary metric, from the metric registry."""
        return metric_direction(self.primary_metric, "primary_metric")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``from_dict(to_dict())`` gives an equal policy."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["stages"] = list(self.stages)
        d["cost_metric"] = list(self.cost_metric)
        d["guardrails"] = [g.to_dict() for g in self.guardrails]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RolloutPolicy:
        """Build from a mapping (a params YAML ``rollout:`` block); unknown keys are refused."""
        if not isinstance(d, Mapping):
            raise _fail("<rollout>", d, "give a mapping of rollout fields.")
        d = dict(d.get("rollout", d)) if isinstance(d.get("rollout"), Mapping) else dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise _fail("<rollout>", unknown, f"unknown field(s); valid fields are {sorted(known)}.")
        if isinstance(d.get("stages"), str):
            d["stages"] = parse_stages(d["stages"])
        for k in ("stages", "guardrails", "cost_metric"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


def parse_stages(text: str) -> tuple[float, ...]:
    """Percentages "10/25/50/100" to shares (0.1, 0.25, 0.5, 1.0); order and range are checked by the policy.

    >>> parse_stages("10/25/50/100")
    (0.1, 0.25, 0.5, 1.0)
    """
    try:
        return tuple(float(p) / 100.0 for p in str(text).replace(" ", "").split("/"))
    except ValueError:
        raise _fail("stages", text, "write percentages separated by '/', e.g. '10/25/50/100'.") from None
