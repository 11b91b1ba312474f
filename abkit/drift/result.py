"""The records a drift check produces: ``DriftResult`` (every check) and ``Alarm`` (a check that fired).

A result is ``insufficient data`` (``alarm is None``) when the window or the reference cannot support a
verdict; it is never reported as "no drift".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from abkit.display import DictsReprMixin

Status = Literal["ok", "insufficient data"]


def _finite(value: float | None) -> float | None:
    """A JSON-safe number: None for None, NaN or inf."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class DriftResult:
    """One check of one signal on one window against the reference.

    ``alarm`` is True when ``statistic >= threshold`` *and* ``effect_size >= effect_threshold``;
    ``threshold`` is the statistic's critical value at ``alpha`` (the per-check level after the
    multiple-testing correction), so ``p_value <= alpha`` exactly when the statistic reaches it.
    """

    signal: str  #: what is monitored, e.g. "confidence_ks"
    method: str  #: the test, in words
    statistic: float | None  #: the test statistic
    p_value: float | None  #: its p-value against the reference (None where the method has none)
    effect_size: float | None  #: a scale-free size of the change (see ``method``)
    threshold: float | None  #: critical value of ``statistic`` actually used
    effect_threshold: float  #: smallest effect that may alarm (protects large samples from trivial changes)
    alpha: float | None  #: per-check false-alarm level actually used
    n_reference: int  #: reference sample size
    n_current: int  #: current window's sample size
    alarm: bool | None  #: None means insufficient data
    status: Status = "ok"
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)  #: extra numbers (e.g. estimated accuracy band)
    variant: str = "all"  #: arm whose model the signal belongs to, "all" for shared traffic
    window: str = ""  #: window label
    window_start: str | None = None  #: ISO time (UTC) of the window's first moment
    window_end: str | None = None  #: ISO time (UTC) just after the window

    def with_context(self, **context: Any) -> DriftResult:
        """A copy with variant/window fields set."""
        return dataclasses.replace(self, **context)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields (non-finite numbers become None)."""
        out = dataclasses.asdict(self)
        for key in ("statistic", "p_value", "effect_size", "threshold", "alpha"):
            out[key] = _finite(out[key])
        out["reasons"] = list(self.reasons)
        out["details"] = {k: (_finite(v) if isinstance(v, float) else v) for k, v in self.details.items()}
        return out


@dataclass(frozen=True)
class Alarm:
    """A drift alarm as a decision record (inputs, statistic, threshold, sizes, seed, model versions, reasons)."""

    signal: str
    variant: str
    window: str
    window_start: str | None
    window_end: str | None
    statistic: float | None
    threshold: float | None
    p_value: float | None
    effect_size: float | None
    alpha: float | None
    correction: str
    n_reference: int
    n_current: int
    seed: int | None
    model_name: str | None
    model_version: str | None
    reasons: tuple[str, ...]
    inputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(
        cls,
        result: DriftResult,
        *,
        correction: str,
        seed: int | None,
        model_name: str | None = None,
        model_version: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> Alarm:
        """The record of an alarming result."""
        if result.alarm is not True:
            raise ValueError(f"result of {result.signal!r} on {result.window!r} did not alarm")
        return cls(
            result.signal,
            result.variant,
            result.window,
            result.window_start,
            result.window_end,
            _finite(result.statistic),
            _finite(result.threshold),
            _finite(result.p_value),
            _finite(result.effect_size),
            _finite(result.alpha),
            correction,
            result.n_reference,
            result.n_current,
            seed,
            model_name,
            model_version,
            result.reasons,
            dict(inputs or {}),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alarm:
        """Rebuild an alarm from ``to_dict`` output (e.g. read from ``30_drift.json``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {k: (tuple(v) if k == "reasons" else v) for k, v in data.items() if k in names}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["reasons"] = list(self.reasons)
        return out


class DriftResults(DictsReprMixin):
    """A table of results (notebook display); ``results`` keeps the typed records."""

    columns = (
        "signal",
        "variant",
        "window",
        "statistic",
        "threshold",
        "p_value",
        "effect_size",
        "alpha",
        "n_reference",
        "n_current",
        "alarm",
        "status",
    )

    def __init__(self, results: Sequence[DriftResult]) -> None:
        self.results = tuple(results)

    def __len__(self) -> int:
        return len(self.results)

    def to_dicts(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.results:
            row = {c: getattr(r, c) for c in self.columns}
            row["alarm"] = "insufficient data" if r.alarm is None else ("ALARM" if r.alarm else "no")
            rows.append(row)
        return rows
