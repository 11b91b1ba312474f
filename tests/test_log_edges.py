"""Nothing bad gets into the log (issue 12): every value the analysis cannot handle is refused with a clear
error, the good rows of a call survive quarantine, counters add up, and a failed ``with`` block commits nothing."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from abkit.errors import AbkitError
from abkit.experiment import Experiment, ExperimentError, Variant
from abkit.log import InvalidRecordsError, LogError, PredictionLog
from abkit.log.validate import MAX_LATENCY_MS, validate_predictions

VARIANTS = ["control", "challenger"]
T0 = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def _record(i: int = 0, **change) -> dict:
    return {
        "variant": VARIANTS[i % 2],
        "unit_id": f"u{i}",
        "request_id": f"r{i}",
        "ts": T0,
        "text": f"text {i}",
        "predicted_label": "pos",
        "confidence": 0.5,
        "latency_ms": 3.0,
        "model_name": "m",
        "model_version": "1",
    } | change


@pytest.fixture
def log(tmp_path) -> PredictionLog:
    return PredictionLog(tmp_path / "log")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("latency_ms", math.inf, "latency_ms must be a finite number in [0, 86400000]"),
        ("latency_ms", 9.3e15, "latency_ms must be a finite number in [0, 86400000]"),
        ("latency_ms", 2**70, "latency_ms must be a finite number"),
        ("latency_ms", MAX_LATENCY_MS * 1.0001, "at most a day"),
        ("confidence", 10**400, "confidence must be a finite number in [0, 1]"),
        ("text", "bad \ud800 text", "lone surrogate"),
        ("request_id", "\udcff", "lone surrogate"),
        ("ts", 1717416000, "not a time (give a datetime: integers and NaT are refused)"),
        ("ts", pd.NaT, "integers and NaT are refused"),
        ("ts", np.datetime64("NaT"), "integers and NaT are refused"),
        ("model_version", "", "give the model version as a non-empty string"),
        ("model_version", "  ", "give the model version as a non-empty string"),
    ],
)
def test_values_the_analysis_cannot_handle_are_refused(log, field, value, says):
    with log.writer("exp", VARIANTS) as w:
        with pytest.raises(InvalidRecordsError, match=r"prediction record 1: field '" + field + "'") as caught:
            w.append([_record(0), _record(1, **{field: value})])
        assert says in str(caught.value) and caught.value.field == field and caught.value.index == 1
        assert w.buffered == 0
    assert log.read_predictions("exp").num_rows == 0


def test_a_nat_column_of_a_dataframe_is_refused_not_replaced_by_now(log):
    frame = pd.DataFrame([_record(0), _record(1)]).assign(ts=[pd.Timestamp(T0), pd.NaT])
    with log.writer("exp", VARIANTS) as w, pytest.raises(InvalidRecordsError, match="field 'ts'"):
        w.append(frame)


def test_a_missing_ts_still_means_now(log):
    with log.writer("exp", VARIANTS) as w:
        assert w.append([_record(0, ts=None)]) == 1
    assert log.read_predictions("exp")["ts"][0].as_py() > T0


def test_quarantine_keeps_the_good_rows_of_a_call_with_a_lone_surrogate(log):
    with log.writer("exp", VARIANTS, on_invalid="quarantine") as w:
        assert w.append([_record(0), _record(1, text="\ud800"), _record(2)]) == 2
        assert w.last.invalid == 1 and w.last.invalid_by_field == {"text": 1}
        assert w.last.quarantine_file is not None and w.last.quarantine_file.is_file()
    assert sorted(log.read_predictions("exp")["request_id"].to_pylist()) == ["r0", "r2"]


@pytest.mark.parametrize("empty", [[], pd.DataFrame(), pa.table({})])
def test_an_empty_append_returns_zero(log, empty):
    with log.writer("exp", VARIANTS) as w:
        assert w.append(empty) == 0
        assert w.received == 0 and w.buffered == 0


def test_unknown_columns_are_named_in_a_warning(log):
    said = r"ignores column\(s\) 'latncy_ms' \(did you mean 'latency_ms'\?\)"
    with log.writer("exp", VARIANTS) as w, pytest.warns(UserWarning, match=said):
        assert w.append([_record(0, latncy_ms=3.0)]) == 1


def test_a_block_that_raises_commits_nothing_it_buffered(log):
    with pytest.raises(RuntimeError, match="model crashed"):
        with log.writer("exp", VARIANTS) as w:
            w.append([_record(0), _record(1)])
            raise RuntimeError("model crashed")
    assert log.read_predictions("exp").num_rows == 0
    assert w.discarded == 2 and w.accepted == 0 and w.flushed == 0


def test_batches_flushed_inside_a_failing_block_stay(log):
    with pytest.raises(RuntimeError):
        with log.writer("exp", VARIANTS, batch_size=2) as w:
            w.append([_record(0), _record(1)])  # reaches batch_size: flushed, durable
            w.append([_record(2)])
            raise RuntimeError("later failure")
    assert sorted(log.read_predictions("exp")["request_id"].to_pylist()) == ["r0", "r1"]


def test_counters_add_up_when_another_writer_commits_the_same_ids_first(log):
    first = log.writer("exp", VARIANTS)
    second = log.writer("exp", VARIANTS)
    second.append([_record(0), _record(1), _record(2)])  # buffered, not yet committed
    first.append([_record(1), _record(2), _record(3)])
    first.close()
    second.close()  # writers take no lock and read no disk: r1 and r2 are stored twice
    for w in (first, second):
        assert w.accepted + w.duplicates + w.invalid + w.discarded == w.received
    assert second.accepted == 3 and second.duplicates == 0
    assert log.read_predictions("exp").num_rows == 4  # readers count each request once
    log.compact()
    assert log.read_predictions("exp", dedupe=False).num_rows == 4  # compaction removed the copies


@pytest.mark.parametrize("key", ["smoke\n", "a/b", "..", "x..y", " lead", ""])
def test_keys_variants_and_writers_share_one_whole_string_rule(log, key):
    with pytest.raises(LogError, match="experiment key"):
        log.writer(key, VARIANTS)
    with pytest.raises(ExperimentError, match="'key'"):
        Experiment(key=key, variants=(Variant("a", 0.5), Variant("b", 0.5)))
    if key:
        with pytest.raises(ExperimentError, match="variants"):
            Experiment(key="k", variants=(Variant("a", 0.5), Variant(key, 0.5)))


def test_labels_refuse_a_key_with_a_trailing_newline(log):
    with pytest.raises(InvalidRecordsError, match="field 'experiment'"):
        log.append_labels([{"experiment": "smoke\n", "request_id": "r0", "label": "pos", "labelled_at": T0}])


def test_save_variants_refuses_names_that_leave_its_folder(tmp_path):
    from abkit.models import save_variants

    with pytest.raises(AbkitError, match=r"variant name '../../x' is not allowed"):
        save_variants({"../../x": object()}, tmp_path / "models")  # type: ignore[dict-item]
    assert not any(tmp_path.rglob("*"))


# ---------------------------------------------------------------------------------------------- properties
_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)  # surrogates included
_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**80), 2**80),
    st.sampled_from([0.0, 0.5, 1.0, 3.0, MAX_LATENCY_MS]),
)
_field_values = {
    "variant": st.one_of(st.sampled_from(VARIANTS), _text, st.none()),
    "unit_id": st.one_of(_text, st.just("u1"), st.integers(), st.none()),
    "request_id": st.one_of(_text, st.just("r1"), st.none()),
    "ts": st.one_of(st.just(T0), st.none(), st.integers(), st.just(pd.NaT), st.datetimes(), _text),
    "text": st.one_of(_text, st.just("fine text"), st.none(), st.floats()),
    "predicted_label": st.one_of(st.just("pos"), _text, st.none(), st.booleans()),
    "confidence": st.one_of(_number, st.none(), st.booleans(), _text),
    "latency_ms": st.one_of(_number, st.none(), _text),
    "model_name": st.one_of(st.just("m"), _text, st.none()),
    "model_version": st.one_of(st.just("1"), _text, st.none(), st.integers()),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries({}, optional=_field_values), st.sampled_from(["dicts", "frame"]))
def test_a_record_is_accepted_exactly_or_refused_naming_the_field(change, shape):
    record = _record(0) | change
    try:
        records = [record] if shape == "dicts" else pd.DataFrame([record])
    except UnicodeEncodeError:  # pandas 3 itself cannot hold a lone surrogate in a string column
        assume(False)
    try:
        cols, verdict = validate_predictions(records, "exp", VARIANTS, T0)
    except AbkitError as exc:  # a structural error: it must name the column at fault
        assert any(name in str(exc) for name in _field_values), exc
        return
    if verdict.bad.any():
        field = verdict.first[1]
        assert field in record and field in verdict.reason[0]
        return
    stored = pa.Table.from_arrays([cols.columns[f] for f in cols.columns], names=list(cols.columns)).to_pylist()[0]
    for name in _field_values:
        given_value, kept = record[name], stored[name]
        if name == "ts":
            if given_value is None:
                assert kept == T0  # the default
            else:
                assert (
                    pd.Timestamp(kept) == pd.Timestamp(given_value).tz_localize("UTC").tz_convert("UTC")
                    if pd.Timestamp(given_value).tzinfo is None
                    else pd.Timestamp(kept) == pd.Timestamp(given_value)
                )
        elif name in ("confidence", "latency_ms"):
            assert isinstance(kept, float) and math.isfinite(kept) and kept == float(given_value)
        else:
            assert kept == given_value and isinstance(kept, str) and kept.strip()


# ------------------------------------------------------------------------- a bad row already on disk
def _clean_log(root) -> Experiment:
    exp = Experiment.from_params(key="e", split="50/50", variant_names="control,challenger", start="2024-03-01")
    rng = np.random.default_rng(3)
    rows = [
        _record(
            i,
            variant=exp.assign_one(f"u{i % 120}"),
            unit_id=f"u{i % 120}",
            ts=T0 + dt.timedelta(hours=i % 90),
            confidence=float(rng.uniform()),
            latency_ms=float(rng.uniform(1, 9)),
            predicted_label="pos" if i % 4 else "neg",
        )
        for i in range(1200)
    ]
    log = PredictionLog(root)
    with log.writer("e", exp.variant_names) as w:
        w.append(rows)
    log.append_labels(
        [{"experiment": "e", "request_id": f"r{i}", "label": "pos" if i % 3 else "neg"} for i in range(0, 1200, 2)]
    )
    return exp


def _other_tool_writes(root, rows: list[dict], kind: str = "predictions") -> None:
    import pyarrow.parquet as pq

    from abkit.log import LABEL_SCHEMA, PREDICTION_SCHEMA

    folder = root / kind / "experiment=e" / "date=2024-03-01"
    folder.mkdir(parents=True, exist_ok=True)
    schema = PREDICTION_SCHEMA if kind == "predictions" else LABEL_SCHEMA
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-other-tool.parquet")


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow])])
def test_the_analysis_skips_and_counts_bad_rows_another_tool_wrote(tmp_path, engine):
    from abkit.analysis import analyze

    exp = _clean_log(tmp_path / "clean")
    exp_bad = _clean_log(tmp_path / "bad")
    bad = [
        {"experiment": "e", **_record(9000 + j, **change)}
        for j, change in enumerate(
            [
                {"latency_ms": math.inf},
                {"latency_ms": 9.3e15},
                {"confidence": math.nan},
                {"confidence": 7.0},
                {"unit_id": None},
                {"ts": None},
                {"variant": None},
                {"latency_ms": -1.0},
            ]
        )
    ]
    _other_tool_writes(tmp_path / "bad", bad)
    _other_tool_writes(
        tmp_path / "bad", [{"experiment": "e", "request_id": "r1", "label": None, "labelled_at": T0}], kind="labels"
    )
    kwargs = {"engine": engine} if engine == "duckdb" else {"engine": engine, "daily": False}
    clean = analyze(tmp_path / "clean", exp, **kwargs).to_json()
    with pytest.warns(UserWarning, match=r"holds 8 prediction and 1 label row\(s\) that the analysis cannot use"):
        skipped = analyze(tmp_path / "bad", exp_bad, **kwargs).to_json()
    assert skipped["counts"]["invalid_predictions_skipped"] == 8 and skipped["counts"]["invalid_labels_skipped"] == 1
    assert clean["counts"]["invalid_predictions_skipped"] == 0
    for row_clean, row_skipped in zip(clean["metrics"], skipped["metrics"], strict=True):
        assert row_skipped["estimate"] == pytest.approx(row_clean["estimate"], rel=1e-12, nan_ok=True)
    assert skipped["recommendation"]["decision"] == clean["recommendation"]["decision"]
