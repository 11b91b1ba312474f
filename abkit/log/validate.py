"""Validation of records before they enter the log: input of any supported shape (dict, list of dicts,
pandas DataFrame, Arrow table) becomes typed columns, and vectorized checks mark the bad rows.

**Policy.** Records are checked column-wise: types, null/empty strings, text that is not valid Unicode (a
lone surrogate), unknown variant, a different experiment, NaN/inf/out-of-range confidence, NaN/inf/negative
latency or one above ``MAX_LATENCY_MS`` (the analysis sums whole microseconds in 64-bit integers), numbers
too large for a float, and timestamps that are not datetimes (an integer is refused, not read as seconds or
microseconds since 1970; ``NaT`` is refused, not replaced by now). Columns outside the schema are ignored
with a warning that names them. A writer with ``on_invalid="raise"``
raises ``InvalidRecordsError`` (first bad record index, field and value, plus the counts of the others) and
buffers nothing from the call; with ``on_invalid="quarantine"`` the bad rows go to the quarantine folder. A
missing required column is a structural error (``LogError``) under both policies. ``experiment`` and ``ts``
(labels: ``labelled_at``) may be omitted or null and then take their defaults.

The writer only calls ``validate_predictions`` and ``validate_labels``; the rules live here alone, and
``VALID_PREDICTION_SQL``/``VALID_LABEL_SQL`` state them for the engines, which skip (and count) bad rows that
another tool wrote into files abkit's writers do not vouch for.
"""

from __future__ import annotations

import datetime as dt
import difflib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from abkit.log.schema import LABEL_SCHEMA, PREDICTION_SCHEMA, UTC_US, LogError
from abkit.names import NAME_PATTERN

__all__ = [
    "MAX_LATENCY_MS",
    "VALID_LABEL_SQL",
    "VALID_PREDICTION_SQL",
    "Columns",
    "InvalidRecordsError",
    "Verdict",
    "as_table",
    "validate_labels",
    "validate_predictions",
]

#: The largest latency a record may carry: one day. The analysis sums latencies per user in whole
#: microseconds as 64-bit integers; a day per request keeps a million requests of one user exact.
MAX_LATENCY_MS = 86_400_000.0


class InvalidRecordsError(LogError):
    """Some records of an ``append`` call failed validation; nothing from the call was buffered.

    ``index``/``field``/``value`` describe the first bad record; ``counts`` maps field -> bad records.
    """

    def __init__(self, message: str, *, index: int, field: str, value: Any, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.index, self.field, self.value, self.counts = index, field, value, counts


# ---------------------------------------------------------------------------------------------------
# turning input into typed columns


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_timestamp(v: Any) -> bool:
    """A datetime that is a time: ``NaT`` (pandas' or numpy's) is not, nor is a number of seconds."""
    if isinstance(v, np.datetime64):
        return not np.isnat(v)
    return isinstance(v, dt.datetime) and v == v  # pandas.NaT is a datetime unequal to itself


def _is_text(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be stored, nor read back
        return False
    return True


def _as_float(v: Any) -> float | None:
    """A number as a float; too large for one means NaN (the range checks then name it), else None if bad."""
    if not _is_number(v):
        return None
    try:
        return float(v)
    except OverflowError:
        return float("nan")


_PY_CHECK = {pa.string(): _is_text, pa.float64(): _is_number, UTC_US: _is_timestamp}
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError, UnicodeError)


def _typed_from_python(values: list[Any], target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Build a typed array from Python values; returns it and a mask of values of the wrong type."""
    ok = _PY_CHECK[target]
    bad = np.fromiter((v is not None and not ok(v) for v in values), dtype=bool, count=len(values))
    if not bad.any():
        try:
            return pa.array(values, type=target, from_pandas=True), bad
        except _CONVERSION_ERRORS:
            pass
    cleaned = [None if b else v for v, b in zip(values, bad, strict=True)]
    if target == pa.float64():  # ints beyond 64 bits, or beyond a float
        cleaned = [None if v is None else _as_float(v) for v in cleaned]
    return pa.array(cleaned, type=target, from_pandas=True), bad


def _typed_from_arrow(arr: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """Cast an Arrow column to ``target`` when its type is acceptable, else None (wrong type)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if target == pa.string():
        acceptable = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    elif target == pa.float64():
        acceptable = pa.types.is_integer(t) or pa.types.is_floating(t)
    else:
        acceptable = pa.types.is_timestamp(t)  # naive timestamps are taken to be UTC
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(arr), target)])
    if not acceptable:
        return None
    out = pc.cast(arr, target, safe=False)
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


@dataclass
class Columns:
    """Typed columns of one call plus, per column, a mask of rows whose value had the wrong type."""

    n: int
    columns: dict[str, pa.ChunkedArray]
    wrong_type: dict[str, np.ndarray]
    originals: dict[str, Any]  # column -> indexable original values, to quote in errors


def to_columns(records: Any, schema: pa.Schema, defaults: Mapping[str, Any]) -> Columns:
    """Normalise dict / list of dicts / DataFrame / Arrow input to the schema's columns."""
    if isinstance(records, Mapping):
        records = [records]
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    raw: dict[str, Any] = {}
    if isinstance(records, pa.Table):
        n = records.num_rows
        raw = {name: records[name] for name in records.column_names}
    elif hasattr(records, "columns") and hasattr(records, "dtypes"):  # pandas DataFrame
        n = len(records)
        for name in records.columns:
            column = records[name]
            try:
                if column.dtype.kind == "M" and column.isna().any():
                    raise ValueError("NaT")  # not "missing, use the default": the Python path refuses it
                raw[str(name)] = pa.chunked_array([pa.array(column, from_pandas=True)])
            except _CONVERSION_ERRORS:
                raw[str(name)] = column.tolist()
    elif isinstance(records, Iterable) and not isinstance(records, (str, bytes)):
        records = list(records)
        n = len(records)
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise LogError(
                    f"record {i} is {type(r).__name__}, not a mapping; give dicts, a DataFrame or a pa.Table."
                )
        names = dict.fromkeys(k for r in records[:1] for k in r)
        for r in records:
            if r.keys() != names.keys():
                names.update(dict.fromkeys(r))
        raw = {name: [r.get(name) for r in records] for name in names}
    else:
        raise LogError(
            f"records of type {type(records).__name__} are not supported; give a dict, a list of dicts, "
            "a pandas DataFrame or a pyarrow Table."
        )
    unknown = [name for name in raw if name not in schema.names]
    if unknown:
        hints = {name: difflib.get_close_matches(name, schema.names, n=1) for name in unknown}
        said = ", ".join(
            f"{name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") for name, hint in hints.items()
        )
        warnings.warn(f"the log ignores column(s) {said}: it stores {schema.names}.", UserWarning, stacklevel=4)
    if n == 0:
        return Columns(
            0,
            {f.name: pa.chunked_array([], f.type) for f in schema},
            {f.name: np.zeros(0, dtype=bool) for f in schema},
            {f.name: [] for f in schema},
        )
    missing = [f.name for f in schema if f.name not in raw and f.name not in defaults]
    if missing:
        raise LogError(
            f"records lack required column(s) {missing}; every record needs {schema.names} "
            f"(optional: {sorted(defaults)})."
        )
    columns, wrong, originals = {}, {}, {}
    for f in schema:
        if f.name not in raw:
            columns[f.name] = pa.chunked_array([pa.array([defaults[f.name]] * n, type=f.type)])
            wrong[f.name] = np.zeros(n, dtype=bool)
            originals[f.name] = columns[f.name]
            continue
        value = raw[f.name]
        originals[f.name] = value
        if isinstance(value, list):
            arr, bad = _typed_from_python(value, f.type)
            columns[f.name], wrong[f.name] = pa.chunked_array([arr]), bad
        else:
            cast = _typed_from_arrow(value, f.type)
            if cast is None:
                columns[f.name] = pa.chunked_array([pa.nulls(n, f.type)])
                wrong[f.name] = np.ones(n, dtype=bool)
            else:
                columns[f.name], wrong[f.name] = cast, np.zeros(n, dtype=bool)
        if f.name in defaults and columns[f.name].null_count:  # optional column: null means "default"
            columns[f.name] = pc.fill_null(columns[f.name], pa.scalar(defaults[f.name], f.type))
    return Columns(n, columns, wrong, originals)


def _quote(originals: Any, i: int) -> Any:
    v = originals[i]
    return v.as_py() if hasattr(v, "as_py") else v


# ---------------------------------------------------------------------------------------------------
# vectorized checks


def _mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Boolean Arrow result -> numpy, nulls counted as True (= bad)."""
    return pc.fill_null(arr, True).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _bad_string(col: pa.ChunkedArray) -> np.ndarray:
    return _mask(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))


def _bad_number(col: pa.ChunkedArray, lo: float, hi: float) -> np.ndarray:
    values = col.to_numpy(zero_copy_only=False)  # nulls -> NaN
    with np.errstate(invalid="ignore"):
        return ~((values >= lo) & (values <= hi))


_STRING_FIX = "give a non-empty string."

#: The same rules as SQL (the common subset of DuckDB and Spark) for rows already on disk, written by another
#: tool: true for a stored prediction or label the analysis can use, false (never null) otherwise. NaN
#: compares greater than every number in both engines, so it fails the upper bounds.
VALID_PREDICTION_SQL = (
    "COALESCE(variant IS NOT NULL AND unit_id IS NOT NULL AND request_id IS NOT NULL AND ts IS NOT NULL "
    "AND predicted_label IS NOT NULL AND confidence >= 0 AND confidence <= 1 "
    f"AND latency_ms >= 0 AND latency_ms <= {MAX_LATENCY_MS:.1f}, FALSE)"
)
VALID_LABEL_SQL = "COALESCE(request_id IS NOT NULL AND label IS NOT NULL AND labelled_at IS NOT NULL, FALSE)"


def prediction_checks(cols: Columns, experiment: str, variants: Sequence[str]) -> list[tuple[str, np.ndarray, str]]:
    c = cols.columns
    return [
        (
            "experiment",
            _mask(pc.not_equal(c["experiment"], experiment)),
            f"this writer logs experiment {experiment!r}; open another writer for other experiments.",
        ),
        (
            "variant",
            _mask(pc.invert(pc.is_in(c["variant"], value_set=pa.array(list(variants))))),
            f"variant must be one of {list(variants)}.",
        ),
        ("unit_id", _bad_string(c["unit_id"]), _STRING_FIX),
        ("request_id", _bad_string(c["request_id"]), _STRING_FIX),
        ("ts", _mask(pc.is_null(c["ts"])), "give a datetime (timezone-aware, or naive UTC)."),
        ("text", _bad_string(c["text"]), "the input text must be a non-empty string."),
        ("predicted_label", _bad_string(c["predicted_label"]), _STRING_FIX),
        ("confidence", _bad_number(c["confidence"], 0.0, 1.0), "confidence must be a finite number in [0, 1]."),
        (
            "latency_ms",
            _bad_number(c["latency_ms"], 0.0, MAX_LATENCY_MS),
            f"latency_ms must be a finite number in [0, {MAX_LATENCY_MS:.0f}] (at most a day, in milliseconds).",
        ),
        ("model_name", _bad_string(c["model_name"]), _STRING_FIX),
        ("model_version", _bad_string(c["model_version"]), "give the model version as a non-empty string."),
    ]


def label_checks(cols: Columns) -> list[tuple[str, np.ndarray, str]]:
    c = cols.columns
    key_ok = pc.and_(
        pc.match_substring_regex(c["experiment"], f"^{NAME_PATTERN}$"),  # RE2: $ ends the text
        pc.invert(pc.match_substring(c["experiment"], "..")),
    )
    return [
        ("experiment", _mask(pc.invert(key_ok)), "give the experiment key the predictions were logged under."),
        ("request_id", _bad_string(c["request_id"]), _STRING_FIX),
        ("label", _bad_string(c["label"]), "the true label must be a non-empty string."),
        ("labelled_at", _mask(pc.is_null(c["labelled_at"])), "give a datetime (timezone-aware, or naive UTC)."),
    ]


_WRONG = {
    pa.string(): "not text (wrong type, or a lone surrogate that is not valid Unicode); ",
    UTC_US: "not a time (give a datetime: integers and NaT are refused); ",
}


@dataclass
class Verdict:
    bad: np.ndarray  # row is invalid
    reason: np.ndarray  # object array of "field: fix" for bad rows, None for good ones
    counts: dict[str, int]
    first: tuple[int, str, Any, str] | None  # index, field, value, fix


def judge(cols: Columns, checks: list[tuple[str, np.ndarray, str]]) -> Verdict:
    bad = np.zeros(cols.n, dtype=bool)
    reason = np.full(cols.n, None, dtype=object)
    counts: dict[str, int] = {}
    first: tuple[int, str, Any, str] | None = None
    for name, failed, fix in checks:
        wrong = cols.wrong_type[name]
        failed = failed | wrong
        new = failed & ~bad
        if new.any():
            counts[name] = int(new.sum())
            what = _WRONG.get(cols.columns[name].type, "wrong type; ")
            reason[new] = [f"{name}: {what}{fix}" if w else f"{name}: {fix}" for w in wrong[new]]
            i = int(np.argmax(new))
            if first is None or i < first[0]:
                first = (i, name, _quote(cols.originals[name], i), (what if wrong[i] else "") + fix)
            bad |= new
    return Verdict(bad, reason, counts, first)


def error_message(verdict: Verdict, what: str) -> str:
    i, name, value, fix = verdict.first  # type: ignore[misc]
    total = int(verdict.bad.sum())
    by_field = ", ".join(f"{k}: {v}" for k, v in verdict.counts.items())
    return (
        f"{what} record {i}: field {name!r} is {value!r}; {fix} "
        f"({total} invalid record(s) in this call — {by_field}; nothing from this call was written; "
        "fix them or open the writer with on_invalid='quarantine')."
    )


def as_table(cols: Columns, schema: pa.Schema, keep: np.ndarray | None = None) -> pa.Table:
    table = pa.Table.from_arrays([cols.columns[f.name] for f in schema], schema=schema)
    return table if keep is None or keep.all() else table.filter(pa.array(keep))


def validate_predictions(
    records: Any, experiment: str, variants: Sequence[str], now: dt.datetime
) -> tuple[Columns, Verdict]:
    """Typed prediction columns of ``records`` (``experiment`` and ``now`` fill omitted or null
    ``experiment``/``ts``) and the verdict on each row for a writer of ``experiment`` with ``variants``."""
    cols = to_columns(records, PREDICTION_SCHEMA, {"experiment": experiment, "ts": now})
    return cols, judge(cols, prediction_checks(cols, experiment, variants))


def validate_labels(records: Any, now: dt.datetime) -> tuple[Columns, Verdict]:
    """Typed label columns of ``records`` (``now`` fills an omitted or null ``labelled_at``) and the verdict."""
    cols = to_columns(records, LABEL_SCHEMA, {"labelled_at": now})
    return cols, judge(cols, label_checks(cols))


def invalid_error(verdict: Verdict, what: str) -> InvalidRecordsError:
    """The error for a call with bad records (``what``: "prediction" or "label")."""
    assert verdict.first is not None
    return InvalidRecordsError(
        error_message(verdict, what),
        index=verdict.first[0],
        field=verdict.first[1],
        value=verdict.first[2],
        counts=verdict.counts,
    )
