"""The one registry of metrics: what every other module (experiment definitions, the analysis, reports, drift,
rollout) reads to know a metric's name, direction, unit, description and how it is reduced.

A metric is reduced from per-request *variables* (``Variable``: how one user's requests in one arm sum up in
SQL, on which side of the log it lives, its fixed-point scale). The reduction kinds:

- ``"ratio"``: Σ per-user numerator / Σ per-user denominator over the arm's users, clustered by user (delta
  method); ``numerator``/``denominator`` name variables.
- ``"macro"``: the mean over the classes of the ratio numerator/denominator, each a variable template of a
  class (macro-F1); a smooth function of ratios, delta method over the joint covariance of all the sums.

*Class metrics* (``per_label``: precision, recall, F1 of a positive label, macro-F1) name variable templates
whose SQL holds ``{label}``; ``abkit.metrics.classes`` fills in the experiment's positive label (or each class)
before the engine runs, so the registry holds one definition whatever the labels are.

New kinds (functions of several ratios, user-declared SQL numerators and denominators) are added by giving
``Metric.reduce`` a new value and the fields it needs, registering their variables with
``register_variable`` and teaching ``abkit.metrics.compute`` to reduce them; ``register`` checks that the
variables a metric names exist.

>>> check_metric("accuracy").higher_is_better, check_metric("latency_ms").unit
(True, 'ms')
>>> get_metric("acc")
Traceback (most recent call last):
...
abkit.metrics.registry.MetricError: metric 'acc' is unknown; use one of ['accuracy', 'confidence', 'f1', 'latency_ms', 'macro_f1', 'precision', 'recall']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from abkit.errors import AbkitError

__all__ = [
    "METRICS",
    "REDUCTIONS",
    "VARIABLES",
    "Metric",
    "MetricError",
    "Variable",
    "check_metric",
    "get_metric",
    "names",
    "register",
    "register_variable",
]

REDUCTIONS = ("ratio", "macro")


class MetricError(AbkitError):
    """An unknown metric, engine or variant, or a log that cannot be read."""


@dataclass(frozen=True)
class Variable:
    """A per-request variable, summed per user (and arm) inside the engine.

    ``per_user`` is the SQL aggregate over one user's requests (columns of the joined requests: ``label``,
    ``predicted_label``, ``confidence``, ``latency_us``...); ``{whole}`` in it stands for ``fixed`` rounded to a
    whole number. Sums are exact integers: the value is the sum divided by ``scale``.
    """

    name: str
    per_user: str
    side: Literal["predictions", "labels"]  # labels: computable from the labels (with their prediction copy)
    scale: float = 1.0
    fixed: str | None = None  # SQL of value × scale before rounding (a fixed-point variable), else None
    declared: str = ""  # the per-request SQL expression a user declared (``abkit.metrics.custom``), else ""


@dataclass(frozen=True)
class Metric:
    """A metric: its name, whether higher is better, unit, description and how it is reduced."""

    name: str
    numerator: str  # variable summed per user
    denominator: str  # variable summed per user ("n" = one per prediction)
    higher_is_better: bool
    description: str
    unit: str = ""
    reduce: str = "ratio"  # one of REDUCTIONS
    label: str = ""  # a name for people (reports); empty: derived from ``name``
    informational: bool = False  # a diagnostic: reports show it without a good or bad side
    per_label: bool = False  # a class metric: its variables are templates of a label (``{label}``)

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"``: which way is better; ``"neutral"`` for an informational metric."""
        return "neutral" if self.informational else "higher" if self.higher_is_better else "lower"

    @property
    def title(self) -> str:
        """``label``, or the name in words ("latency_ms" -> "Latency ms")."""
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def needs_labels(self) -> bool:
        """Whether the metric is computed from labels (then only labelled requests carry it)."""
        return any(VARIABLES[v].side == "labels" for v in (self.numerator, self.denominator) if v in VARIABLES)


VARIABLES: dict[str, Variable] = {}
METRICS: dict[str, Metric] = {}


def register_variable(variable: Variable, *, replace: bool = False) -> Variable:
    """Add ``variable`` (an error if its name is taken, unless ``replace``)."""
    if variable.name in VARIABLES and not replace:
        raise MetricError(f"variable {variable.name!r} is already registered; pick another name or replace=True")
    VARIABLES[variable.name] = variable
    return variable


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry (an error if its name is taken, unless ``replace``, or if it names an
    unknown reduction or variable)."""
    if metric.name in METRICS and not replace:
        raise MetricError(f"metric {metric.name!r} is already registered; pick another name or replace=True")
    if metric.reduce not in REDUCTIONS:
        raise MetricError(f"metric {metric.name!r}: reduce={metric.reduce!r} is unknown; use one of {REDUCTIONS}")
    for role in ("numerator", "denominator"):
        if getattr(metric, role) not in VARIABLES:
            raise MetricError(
                f"metric {metric.name!r}: {role} {getattr(metric, role)!r} is not a registered "
                f"variable; use one of {sorted(VARIABLES)} or register_variable() it first"
            )
    METRICS[metric.name] = metric
    return metric


def names() -> list[str]:
    """The registered metric names, in registration order."""
    return list(METRICS)


def get_metric(name: str) -> Metric:
    """The metric called ``name`` or a ``MetricError`` listing the known ones."""
    if name not in METRICS:
        raise MetricError(f"metric {name!r} is unknown; use one of {sorted(METRICS)}")
    return METRICS[name]


check_metric = get_metric  # the name the analysis has always used


for _v in (
    Variable("n", "COUNT(*)", "predictions"),
    Variable("labelled", "COUNT(label)", "labels"),
    Variable("correct", "COUNT_IF(label = predicted_label)", "labels"),
    Variable("confidence", "SUM({whole})", "predictions", 1e6, "confidence * 1000000"),  # fixed point, 1e-6
    Variable("latency_ms", "SUM(latency_us)", "predictions", 1e3),  # latency is kept in whole µs
):
    register_variable(_v)
for _m in (
    Metric(
        "accuracy",
        "correct",
        "labelled",
        True,
        "share of labelled predictions that are correct",
        "share",
        label="Accuracy",
    ),
    Metric(
        "confidence",
        "confidence",
        "n",
        True,
        "mean confidence per prediction",
        "probability",
        label="Mean confidence",
        informational=True,
    ),
    Metric("latency_ms", "latency_ms", "n", False, "mean latency per prediction (ms)", "ms", label="Mean latency"),
):
    register(_m)
# class metrics: templates of a label, filled in by abkit.metrics.classes (per-user counts of labelled requests)
for _v in (
    Variable("tp", "COUNT_IF(label = {label} AND predicted_label = {label})", "labels"),
    Variable("pred_pos", "COUNT_IF(label IS NOT NULL AND predicted_label = {label})", "labels"),
    Variable("actual_pos", "COUNT_IF(label = {label})", "labels"),
    Variable("f1_num", "2 * COUNT_IF(label = {label} AND predicted_label = {label})", "labels"),
    Variable(
        "f1_den", "COUNT_IF(label IS NOT NULL AND predicted_label = {label}) + COUNT_IF(label = {label})", "labels"
    ),
):
    register_variable(_v)
for _m in (
    Metric(
        "precision",
        "tp",
        "pred_pos",
        True,
        "share of predictions of the positive label that are right (labelled requests)",
        "share",
        label="Precision",
        per_label=True,
    ),
    Metric(
        "recall",
        "tp",
        "actual_pos",
        True,
        "share of requests of the positive label that are found",
        "share",
        label="Recall",
        per_label=True,
    ),
    Metric(
        "f1",
        "f1_num",
        "f1_den",
        True,
        "F1 of the positive label: 2·TP / (predicted + actual positives)",
        "share",
        label="F1",
        per_label=True,
    ),
    Metric(
        "macro_f1",
        "f1_num",
        "f1_den",
        True,
        "mean over the classes of each class's F1",
        "share",
        reduce="macro",
        label="Macro-F1",
        per_label=True,
    ),
):
    register(_m)
