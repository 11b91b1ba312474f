"""Class metrics of an experiment's labels: precision, recall and F1 of the positive label; recall per class and
macro-F1 when there are more than two classes.

Each is a ratio of per-user sums of labelled requests (F1 = 2·TP / (predicted + actual positives), so it is a
ratio too), reduced by the engine like every other metric and clustered by user; macro-F1 is the mean of the
classes' F1 ratios, a smooth function whose delta-method variance needs the cross-products of all their sums.
``expand`` turns the registry's templates (``Metric.per_label``) into concrete metrics whose variables are
registered under names derived from the label, plus hidden pair metrics that make the engine return those
cross-products; ``macro_moments`` assembles them into ``Moments``.

>>> e = expand([get_metric("f1"), get_metric("macro_f1")], "spam", ["ham", "spam", "promo"])
>>> [m.name for m in e.specs], list(e.derived)
(['recall:ham', 'recall:promo', 'recall:spam'], ['f1'])
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from abkit.metrics.registry import (
    VARIABLES,
    Metric,
    MetricError,
    Variable,
    get_metric,
    register_variable,
)
from abkit.sql import sql_string
from abkit.stats.aggregates import ArmStats, Moments
from abkit.stats.smooth import VectorStats

HIDDEN = "__pair_"  # prefix of the helper metrics that carry cross-products (every user counts as a unit)
UNITS = "_units_"  # prefix of a helper whose units are its carrying users (those of a derived metric)


class Expansion(NamedTuple):
    """Concrete metrics for the engine: ``specs`` (reported), ``hidden`` (cross-products only), per macro
    metric its (numerator, denominator) variable pairs, one per class, and per F1 metric its (TP, predicted,
    actual) variables, from whose sums its own are derived (``derive``)."""

    specs: list[Metric]
    hidden: list[Metric]
    macros: dict[str, list[tuple[str, str]]]
    derived: dict[str, tuple[str, str, str]]


def label_variable(template: str, label: str) -> str:
    """Register the variable ``template`` filled in with ``label``; return its (deterministic) name."""
    tpl = VARIABLES[template]
    name = f"{template}_{hashlib.sha1(label.encode('utf-8')).hexdigest()[:12]}"
    if name not in VARIABLES:
        register_variable(
            Variable(name, tpl.per_user.replace("{label}", sql_string(label)), tpl.side, tpl.scale, tpl.fixed)
        )
    return name


def concrete(metric: Metric, positive_label: str | None) -> Metric:
    """``metric`` with its variables for ``positive_label`` (unchanged when it is not a class metric)."""
    if not metric.per_label:
        return metric
    if not positive_label:
        raise MetricError(f"metric {metric.name!r} needs positive_label: the class it is computed for")
    return _concrete(metric, positive_label)


def _concrete(metric: Metric, label: str, name: str | None = None) -> Metric:
    return dataclasses.replace(
        metric,
        name=name or metric.name,
        numerator=label_variable(metric.numerator, label),
        denominator=label_variable(metric.denominator, label),
        per_label=False,
        reduce="ratio",
    )


def expand(
    specs: Sequence[Metric], positive_label: str | None, classes: Sequence[str] = (), *, required: Sequence[str] = ()
) -> Expansion:
    """Concrete metrics for ``specs``: class metrics of ``positive_label`` (skipped without one, an error for a
    metric in ``required``); macro metrics, with recall per class, over ``classes`` when there are more than two."""
    out: list[Metric] = []
    hidden: list[Metric] = []
    macros: dict[str, list[tuple[str, str]]] = {}
    derived: dict[str, tuple[str, str, str]] = {}
    labels = sorted(set(classes))
    for m in specs:
        if not m.per_label:
            out.append(m)
        elif m.reduce == "ratio" and m.name == "f1" and positive_label:
            # F1 = 2·TP / (predicted + actual): its sums follow from those of TP, predicted and actual positives
            tp, pp, ap = (label_variable(v, positive_label) for v in ("tp", "pred_pos", "actual_pos"))
            derived["f1"] = (tp, pp, ap)
            hidden.extend([_pair(m, tp, pp), _pair(m, tp, ap), _pair(m, pp, ap, UNITS)])
        elif m.reduce == "ratio":
            if positive_label:
                out.append(_concrete(m, positive_label))
            elif m.name in required:
                raise MetricError(
                    f"metric {m.name!r} needs positive_label: the class it is computed for, e.g. positive_label='spam'"
                )
        elif len(labels) > 2:
            pairs = [(label_variable(m.numerator, c), label_variable(m.denominator, c)) for c in labels]
            macros[m.name] = pairs
            recall = get_metric("recall")
            out.extend(_concrete(recall, c, f"recall:{c}") for c in labels)
            flat = [v for pair in pairs for v in pair]
            hidden.extend(_pair(m, a, b) for i, a in enumerate(flat) for b in flat[i + 1 :])
        elif m.name in required:
            raise MetricError(
                f"metric {m.name!r} needs more than two classes among the labelled requests "
                f"(found {labels}); use f1 with positive_label for two classes"
            )
    seen: set[str] = set()
    unique = [m for m in out if not (m.name in seen or seen.add(m.name))]  # type: ignore[func-returns-value]
    return Expansion(unique, hidden, macros, derived)


def _pair(metric: Metric, a: str, b: str, prefix: str = HIDDEN) -> Metric:
    """A helper ratio metric a/b: the engine returns Σa, Σb, Σa², Σb² and Σa·b for it."""
    return dataclasses.replace(
        metric, name=f"{prefix}{a}__{b}", numerator=a, denominator=b, per_label=False, reduce="ratio"
    )


def derive_f1(stats: Mapping[str, ArmStats], tp: str, pp: str, ap: str) -> ArmStats:
    """``ArmStats`` of F1 = Σ 2·TP / Σ (predicted + actual) from the helper pairs' sums (exact); its units are
    the users carrying it (with a predicted or an actual positive among their labelled requests)."""
    a, b = (stats[f"{HIDDEN}{x}__{y}"] for x, y in ((tp, pp), (tp, ap)))
    c = stats[f"{UNITS}{pp}__{ap}"]
    return ArmStats(
        c.n,
        2.0 * a.m_sum,
        4.0 * a.m_ss,
        a.d_sum + b.d_sum,
        a.d_ss + 2.0 * c.md_sum + b.d_ss,
        2.0 * (a.md_sum + b.md_sum),
    )


def macro_moments(stats: Mapping[str, ArmStats], pairs: Sequence[tuple[str, str]]) -> Moments:
    """``Moments`` (over arms) of the mean of the ratios ``pairs`` from the hidden pair metrics' ``ArmStats``."""
    flat = [v for pair in pairs for v in pair]
    k = len(flat)
    first = stats[f"{HIDDEN}{flat[0]}__{flat[1]}"]
    n = first.n
    s = np.zeros(n.shape + (k,))
    ss = np.zeros(n.shape + (k, k))
    for i, a in enumerate(flat):
        for j in range(i + 1, k):
            st = stats[f"{HIDDEN}{a}__{flat[j]}"]
            s[..., i], s[..., j] = st.m_sum, st.d_sum
            ss[..., i, i], ss[..., j, j] = st.m_ss, st.d_ss
            ss[..., i, j] = ss[..., j, i] = st.md_sum
    return VectorStats(n, s, ss).mean_of_ratios([(2 * c, 2 * c + 1) for c in range(len(pairs))])
