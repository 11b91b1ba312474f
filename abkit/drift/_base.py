"""What every batch detector shares: input checks, the insufficient-data path and the alarm rule.

A detector is fitted on a reference window, then ``test(current)`` returns an ``Outcome`` (statistic,
p-value, effect size and the statistic's critical value as a function of the false-alarm level), and
``Outcome.decide(alpha)`` turns it into a ``DriftResult``. ``calculate(current, alpha=...)`` does both;
a monitor that controls several checks together calls ``test`` first and ``decide`` with the corrected level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from abkit.drift.result import DriftResult
from abkit.errors import AbkitError

__all__ = ["BatchDetector", "DriftError", "Outcome", "check_alpha"]


class DriftError(AbkitError):
    """A drift detector was misconfigured or used out of order."""


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` if it is a level in (0, 1), else raise naming it."""
    if not isinstance(alpha, (int, float)) or not (0.0 < float(alpha) < 1.0):
        raise DriftError(f"{name}={alpha!r} must be a false-alarm level strictly between 0 and 1, e.g. 0.001.")
    return float(alpha)


@dataclass(frozen=True)
class Outcome:
    """A test's numbers before a false-alarm level is chosen."""

    signal: str
    method: str
    n_reference: int
    n_current: int
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    effect_threshold: float = 0.0
    critical: Callable[[float], float] | None = field(default=None, repr=False, compare=False)
    insufficient: tuple[str, ...] = ()  # reasons why no verdict is possible
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def decidable(self) -> bool:
        return not self.insufficient

    def decide(self, alpha: float) -> DriftResult:
        """The result at per-check level ``alpha``: alarm iff statistic >= critical(alpha) and effect >= floor."""
        alpha = check_alpha(alpha)
        common: dict[str, Any] = {
            "signal": self.signal,
            "method": self.method,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "effect_threshold": self.effect_threshold,
            "details": dict(self.details),
        }
        if self.insufficient or self.critical is None or self.statistic is None:
            return DriftResult(
                statistic=self.statistic,
                p_value=self.p_value,
                effect_size=self.effect_size,
                threshold=None,
                alpha=alpha,
                alarm=None,
                status="insufficient data",
                reasons=self.insufficient or ("no statistic could be computed",),
                **common,
            )
        threshold = float(self.critical(alpha))
        stat = float(self.statistic)
        effect = float(self.effect_size) if self.effect_size is not None else stat
        significant = stat >= threshold
        large = effect >= self.effect_threshold
        p = "" if self.p_value is None else f", p = {self.p_value:.3g}"
        if significant and large:
            reasons = (
                (
                    f"{self.signal}: {stat:.4g} >= threshold {threshold:.4g} at alpha = {alpha:.3g}{p}; "
                    f"effect {effect:.4g} >= {self.effect_threshold:.4g}"
                ),
            )
        elif significant:
            reasons = (
                (
                    f"{self.signal}: {stat:.4g} >= threshold {threshold:.4g}{p}, but the effect {effect:.4g} is "
                    f"below the smallest that matters ({self.effect_threshold:.4g}); no alarm"
                ),
            )
        else:
            reasons = (f"{self.signal}: {stat:.4g} < threshold {threshold:.4g} at alpha = {alpha:.3g}{p}",)
        return DriftResult(
            statistic=stat,
            p_value=self.p_value,
            effect_size=effect,
            threshold=threshold,
            alpha=alpha,
            alarm=bool(significant and large),
            reasons=reasons,
            **common,
        )


class BatchDetector:
    """Base of the batch detectors: ``fit(reference) -> self``, ``calculate(current) -> DriftResult``.

    Subclasses set ``signal``/``method``, convert inputs in ``_prepare`` (returning the values and a list
    of problems such as NaN entries), may refuse a reference in ``_reference_problem`` and compute the
    test in ``_test``. Construction only stores (keyword) arguments.
    """

    signal: ClassVar[str] = "drift"
    method: ClassVar[str] = ""
    default_effect_threshold: ClassVar[float] = 0.0

    def __init__(self, *, alpha: float = 0.05, min_size: int = 30, effect_threshold: float | None = None) -> None:
        self.alpha = check_alpha(alpha)
        if not isinstance(min_size, int) or min_size < 1:
            raise DriftError(f"min_size={min_size!r} must be a positive integer (the smallest usable window).")
        self.min_size = min_size
        self.effect_threshold = self.default_effect_threshold if effect_threshold is None else float(effect_threshold)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({args})"

    # -- hooks
    def _prepare(self, values: Any) -> tuple[Any, list[str]]:
        """Numeric values as a float array, with NaN entries reported as a problem."""
        arr = np.asarray(values, dtype=float).ravel()
        bad = int(np.isnan(arr).sum())
        return arr, ([f"{bad} of {arr.size} values are NaN"] if bad else [])

    def _reference_problem(self, reference: Any) -> str | None:
        return None

    def _fit(self, reference: Any) -> None:
        raise NotImplementedError

    def _test(self, current: Any) -> Outcome:
        raise NotImplementedError

    # -- template
    def fit(self, reference: Any) -> BatchDetector:
        """Learn the reference; a reference that cannot support a verdict makes every check insufficient."""
        ref, problems = self._prepare(reference)
        n = len(ref)
        if n == 0:
            problems.append("the reference window is empty")
        elif n < self.min_size:
            problems.append(f"the reference has {n} values; {self.signal} needs at least {self.min_size}")
        if not problems and (extra := self._reference_problem(ref)):
            problems.append(extra)
        self.n_reference_ = n
        self.reference_problems_ = tuple(f"reference: {p}" for p in problems)
        if not problems:
            self._fit(ref)
        return self

    def test(self, current: Any) -> Outcome:
        """The test's numbers for ``current``, or the reasons why it cannot be decided."""
        if not hasattr(self, "reference_problems_"):
            raise DriftError(f"{type(self).__name__} is not fitted; call .fit(reference) first.")
        cur, problems = self._prepare(current)
        m = len(cur)
        if m == 0:
            problems.append("the current window is empty")
        elif m < self.min_size:
            problems.append(f"the current window has {m} values; {self.signal} needs at least {self.min_size}")
        reasons = self.reference_problems_ + tuple(f"current: {p}" for p in problems)
        if reasons:
            return Outcome(
                self.signal,
                self.method,
                self.n_reference_,
                m,
                effect_threshold=self.effect_threshold,
                insufficient=reasons,
            )
        return self._test(cur)

    def calculate(self, current: Any, *, alpha: float | None = None) -> DriftResult:
        """Check ``current`` against the reference at false-alarm level ``alpha`` (default: the detector's)."""
        return self.test(current).decide(self.alpha if alpha is None else alpha)

    check = calculate

    def _outcome(
        self,
        n_current: int,
        statistic: float,
        p_value: float | None,
        critical: Callable[[float], float],
        effect_size: float | None = None,
        **details: Any,
    ) -> Outcome:
        """An ``Outcome`` of this detector with its effect threshold."""
        p = None if p_value is None else float(min(max(p_value, 0.0), 1.0))
        return Outcome(
            self.signal,
            self.method,
            self.n_reference_,
            n_current,
            float(statistic),
            p,
            None if effect_size is None else float(effect_size),
            self.effect_threshold,
            critical,
            details=details,
        )


def effective_n(n: int, m: int) -> float:
    """n·m/(n+m): the sample size that scales two-sample statistics."""
    return n * m / (n + m)


def finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
