"""Your own metrics: a name, a numerator and a denominator as SQL expressions over a request's columns, a
direction and a unit; summed per user and reduced like every ratio metric (clustered by user, DuckDB and
Spark alike). Validated before anything runs: an unknown column, SQL that does not parse, an aggregate, or a
missing direction is an ``MetricError`` that names the field, the value and the fix.

Columns: ``predicted_label``, ``label``, ``confidence``, ``latency_ms``. An expression that reads ``label`` is
evaluated on labelled requests only (elsewhere it counts 0), so the denominator of a label metric is usually
``label IS NOT NULL``; one expression may not mix ``label`` with ``confidence`` or ``latency_ms``. Latency is
read in whole microseconds (the engine's fixed point), per-request values are summed to 1e-6.

The expressions run in the engine that holds the log, DuckDB or Spark, with identical results: write them in
the SQL both accept (comparisons, arithmetic, ``CASE WHEN``, ``IS NULL``, ``COALESCE``...). They are checked
with DuckDB when declared and, on Spark, compiled once more before the analysis reads a row
(``check_on_engine``). A division by zero (``inf`` in DuckDB, an error in Spark) is the same ``MetricError`` on
both engines (``declared_errors``): guard a divisor with ``NULLIF(x, 0)`` (a NULL request value adds nothing).

>>> declare_metric("low_confidence", "confidence < 0.6", "1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
abkit.metrics.registry.MetricError: metric 'low_confidence': direction=None must be one of ('higher', 'lower')...
>>> declare_metric("bad", "confidance < 0.6", "1", direction="lower")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
abkit.metrics.registry.MetricError: metric 'bad': numerator 'confidance < 0.6' is not valid SQL...
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from abkit.metrics import registry as _registry
from abkit.metrics.registry import (
    Metric,
    MetricError,
    Variable,
    register,
    register_variable,
)

if TYPE_CHECKING:
    from abkit.engine import Engine

COLUMNS = {"predicted_label": "VARCHAR", "label": "VARCHAR", "confidence": "DOUBLE", "latency_ms": "DOUBLE"}
DIRECTIONS = ("higher", "lower")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
_SCALE = 1e6  # fixed point: per-request values to 1e-6, so sums are exact integers in every engine


def _columns_in(expr: str) -> set[str]:
    return {c for c in COLUMNS if re.search(rf"\b{c}\b", expr)}


def _check_sql(name: str, role: str, expr: Any) -> str:
    if not isinstance(expr, str) or not expr.strip():
        raise MetricError(
            f"metric {name!r}: {role} {expr!r} must be a SQL expression over {list(COLUMNS)}, "
            "e.g. 'confidence < 0.6' or '1'"
        )
    if ";" in expr or "--" in expr or "/*" in expr:
        raise MetricError(f"metric {name!r}: {role} {expr!r} holds ';' or a comment; give one expression")
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE r (" + ", ".join(f"{c} {t}" for c, t in COLUMNS.items()) + ")")
        con.execute(f"SELECT SUM(CAST(({expr}) AS DOUBLE)) FROM r").fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise MetricError(
            f"metric {name!r}: {role} {expr!r} is not valid SQL over the request columns {list(COLUMNS)}: {first}"
        ) from exc
    finally:
        con.close()
    cols = _columns_in(expr)
    if "label" in cols and cols & {"confidence", "latency_ms"}:
        raise MetricError(
            f"metric {name!r}: {role} {expr!r} mixes label with "
            f"{sorted(cols - {'label', 'predicted_label'})}; a label metric may read label and "
            "predicted_label only"
        )
    return expr


def _variable(name: str, expr: str, side: str) -> Variable:
    """The per-user sum of ``expr`` in fixed point. Written so that DuckDB and Spark compute the same doubles:
    latency as a double divided by 1000 (an integer over a decimal is a decimal in Spark), and the value cast to
    a double before a CASE mixes it with 0 (Spark does not mix booleans and numbers in a CASE)."""
    sql = re.sub(r"\blatency_ms\b", "(CAST(latency_us AS DOUBLE) / 1000.0)", expr)  # the engine keeps whole µs
    value = f"CAST(({sql}) AS DOUBLE)"
    if side == "labels":
        value = f"CASE WHEN label IS NOT NULL THEN {value} ELSE 0 END"
    fixed = f"{value} * {_SCALE:.0f}"
    return Variable(name, "SUM({whole})", side, _SCALE, fixed, declared=expr)  # type: ignore[arg-type]


# one request row with the engines' column types and no rows: what a declared variable is compiled against
_NO_REQUESTS = (
    "SELECT CAST(NULL AS STRING) AS unit, CAST(NULL AS BIGINT) AS latency_us, CAST(NULL AS DOUBLE) AS confidence, "
    "CAST(NULL AS STRING) AS predicted_label, CAST(NULL AS STRING) AS label WHERE false"
)


def check_on_engine(eng: Engine, metrics: Sequence[Metric]) -> None:
    """Compile the declared variables of ``metrics`` on ``eng`` over no rows, before any pass runs: an
    expression that DuckDB accepted at declaration but this engine's SQL does not (a DuckDB-only function or
    operator on Spark) is a ``MetricError`` naming the metric, the expression and the fix, not an engine trace."""
    for m in metrics:
        for role, name in (("numerator", m.numerator), ("denominator", m.denominator)):
            var = _registry.VARIABLES.get(name)
            if var is None or not var.declared or var.fixed is None:
                continue
            agg = var.per_user.format(whole=eng.dialect.whole.format(x=var.fixed))
            try:
                eng.sql(f"SELECT {agg} AS v FROM ({_NO_REQUESTS}) r GROUP BY unit")
            except Exception as exc:  # each engine has its own error classes (duckdb.Error, PySparkException)
                first = next((ln for ln in str(exc).strip().splitlines() if ln.strip()), type(exc).__name__)
                raise MetricError(
                    f"metric {m.name!r}: {role} {var.declared!r} is not valid SQL on {eng.dialect.name} over the "
                    f"request columns {list(COLUMNS)}: {first[:300]}; write it in SQL that DuckDB and Spark both "
                    "accept (comparisons, arithmetic, CASE WHEN, IS NULL, COALESCE...)"
                ) from exc


def _declared(metric: Metric) -> bool:
    return any(getattr(_registry.VARIABLES.get(v), "declared", "") for v in (metric.numerator, metric.denominator))


@contextlib.contextmanager
def declared_errors(engine: str, metrics: Sequence[Metric]) -> Iterator[None]:
    """Around the engine's passes: when ``metrics`` hold declared ones, an engine error while computing them (a
    division by zero: ``inf`` that cannot be summed in DuckDB, an error in Spark) is a ``MetricError`` that names
    them and the fix, the same on both engines, with the engine's error as its cause."""
    names = [m.name for m in metrics if _declared(m)]
    if not names:
        yield
        return
    try:
        yield
    except MetricError:
        raise
    except Exception as exc:  # each engine has its own error classes
        first = next((ln for ln in str(exc).strip().splitlines() if ln.strip()), type(exc).__name__)
        raise MetricError(
            f"the metrics could not be computed on {engine}: {first[:300]}. The declared metrics {names} are "
            "evaluated on every request and must give a finite number (or NULL, which adds nothing): guard a "
            "divisor with NULLIF(x, 0)"
        ) from exc


def declare_metric(
    name: str,
    numerator: str,
    denominator: str = "1",
    *,
    direction: str | None = None,
    unit: str = "",
    description: str = "",
) -> Metric:
    """Register a metric Σ numerator / Σ denominator (per-request SQL, summed per user); ``direction`` is
    "higher" or "lower" (which way is better). Declaring the same definition again is a no-op."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MetricError(
            f"metric name {name!r} must be lower-case letters, digits and _ (a letter first), e.g. 'low_confidence'"
        )
    if direction not in DIRECTIONS:
        raise MetricError(
            f"metric {name!r}: direction={direction!r} must be one of {DIRECTIONS} (which way is "
            "better); there is no default"
        )
    num, den = _check_sql(name, "numerator", numerator), _check_sql(name, "denominator", denominator)
    side = "labels" if "label" in _columns_in(num) | _columns_in(den) else "predictions"
    if side == "labels" and (_columns_in(num) | _columns_in(den)) & {"confidence", "latency_ms"}:
        raise MetricError(
            f"metric {name!r}: numerator and denominator mix label with confidence or latency_ms; "
            "a label metric may read label and predicted_label only"
        )
    metric = Metric(
        name,
        f"u_{name}_num",
        f"u_{name}_den",
        direction == "higher",
        description or f"Σ ({numerator}) / Σ ({denominator}) per request (declared)",
        unit,
    )
    old = _registry.METRICS.get(name)
    if old is not None:
        if old == metric:
            return old
        raise MetricError(f"metric {name!r} is already registered with another definition; choose another name")
    register_variable(_variable(metric.numerator, num, side), replace=True)
    register_variable(_variable(metric.denominator, den, side), replace=True)
    return register(metric)


def declare_from_params(spec: str | Sequence[Mapping[str, Any]] | None) -> list[Metric]:
    """Declare the metrics of a notebook parameter: a JSON list of objects with name, numerator, denominator,
    direction and (optional) unit and description; "" declares none."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return []
    try:
        items = json.loads(spec) if isinstance(spec, str) else list(spec)
    except json.JSONDecodeError as exc:
        raise MetricError(
            f'custom_metrics={spec!r} is not JSON; write e.g. \'[{{"name": "low_confidence", '
            '"numerator": "confidence < 0.6", "denominator": "1", "direction": "lower"}]\''
        ) from exc
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise MetricError(
            f"custom_metrics={spec!r} must be a list of objects (name, numerator, denominator, direction)"
        )
    out = []
    for item in items:
        unknown = sorted(set(item) - {"name", "numerator", "denominator", "direction", "unit", "description"})
        if unknown:
            raise MetricError(f"custom_metrics: {item.get('name')!r} has unknown fields {unknown}")
        if "numerator" not in item:
            raise MetricError(f"custom_metrics: {item.get('name')!r} needs a numerator (a SQL expression)")
        out.append(
            declare_metric(
                item.get("name"),
                item["numerator"],
                item.get("denominator", "1"),
                direction=item.get("direction"),
                unit=item.get("unit", ""),
                description=item.get("description", ""),
            )
        )
    return out
