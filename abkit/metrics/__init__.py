"""Metrics: the one registry of metric definitions (``registry``) and their per-arm sufficient statistics
computed inside an engine (``compute``).

The registry is imported eagerly (experiment definitions read it); ``collect`` and the statistics types are
loaded on first use, so that reading the registry does not import the engines.
"""

from __future__ import annotations

from typing import Any

from abkit.metrics.registry import (
    METRICS,
    Metric,
    MetricError,
    Variable,
    check_metric,
    get_metric,
    names,
    register,
    register_variable,
)

__all__ = [
    "METRICS",
    "QUANTILES",
    "LogStats",
    "Metric",
    "MetricError",
    "QuantileStats",
    "Variable",
    "check_metric",
    "collect",
    "get_metric",
    "names",
    "register",
    "register_variable",
    "spark_session",
]

_LAZY = {"QUANTILES", "LogStats", "QuantileStats", "collect", "spark_session"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from abkit.metrics import compute

        return getattr(compute, name)
    raise AttributeError(f"module 'abkit.metrics' has no attribute {name!r}")
