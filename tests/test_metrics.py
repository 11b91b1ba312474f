"""abkit.metrics: SQL sufficient statistics against a pandas reference; DuckDB and Spark agree."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abkit.calibrate import write_log
from abkit.experiment import Experiment
from abkit.log import PREDICTION_SCHEMA, PredictionLog
from abkit.log.compact import compact
from abkit.log.layout import log_source as _source
from abkit.metrics import METRICS, LogStats, MetricError, collect

BASIC = [n for n, m in METRICS.items() if not m.per_label]  # computed without a positive label

EXP = Experiment.from_params(key="mtest", start="2024-03-01", duration_days=4)
UTC = dt.UTC


def _reference(root: Path, variants: list[str], until: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per-arm sums the slow, obvious way (pandas)."""
    log = PredictionLog(root)
    p = log.read_predictions("mtest", dedupe=False).to_pandas()
    p = p.sort_values("ts", kind="stable").drop_duplicates("request_id")
    lab = log.read_labels("mtest").to_pandas().sort_values("labelled_at", kind="stable").drop_duplicates("request_id")
    p = p.merge(lab[["request_id", "label"]], on="request_id", how="left")
    if until is not None:
        p = p[p["ts"].dt.strftime("%Y-%m-%d") <= until]
    p["n"] = 1.0
    # abkit sums in exact fixed point: confidence to 1e-6, latency to 1 µs
    p["confidence"] = np.round(p["confidence"] * 1e6) / 1e6
    p["latency_ms"] = np.round(p["latency_ms"] * 1e3) / 1e3
    p["labelled"] = p["label"].notna().astype(float)
    p["correct"] = (p["label"] == p["predicted_label"]).astype(float)
    u = p.groupby(["variant", "unit_id"])[["n", "labelled", "correct", "confidence", "latency_ms"]].sum().reset_index()
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, m in ((n, METRICS[n]) for n in BASIC):
        fields = {k: [] for k in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum")}
        for v in variants:
            g = u[u["variant"] == v]
            mm, dd = g[m.numerator].to_numpy(), g[m.denominator].to_numpy()
            carrying = int(((mm != 0) | (dd != 0)).sum())  # users with the metric's data (labelled ones for accuracy)
            for k, val in zip(
                fields, (carrying, mm.sum(), (mm * mm).sum(), dd.sum(), (dd * dd).sum(), (mm * dd).sum())
            ):
                fields[k].append(val)
        out[name] = {k: np.array(v, dtype=float) for k, v in fields.items()}
    return out


def _assert_stats(stats: object, ref: dict[str, np.ndarray]) -> None:
    for k, v in ref.items():
        np.testing.assert_allclose(getattr(stats, k), v, rtol=1e-9, atol=1e-9, err_msg=k)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hand-made log: a retried request (later copy with other values), a relabelled request, an unlabelled one."""
    root = tmp_path_factory.mktemp("small") / "log"
    t0 = dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
    rows = [  # variant, user, request, day offset, predicted, confidence, latency
        ("control", "a", "r1", 0, "pos", 0.9, 10.0),
        ("control", "a", "r2", 1, "neg", 0.6, 20.0),
        ("control", "b", "r3", 0, "pos", 0.8, 30.0),
        ("challenger", "c", "r4", 0, "pos", 0.7, 15.0),
        ("challenger", "c", "r5", 1, "pos", 0.5, 25.0),
        ("challenger", "d", "r6", 1, "neg", 0.4, 35.0),
    ]
    recs = [
        dict(
            variant=v,
            unit_id=u,
            request_id=r,
            ts=t0 + dt.timedelta(days=d),
            text="t",
            predicted_label=pl,
            confidence=c,
            latency_ms=lat,
            model_name="m",
            model_version="1",
        )
        for v, u, r, d, pl, c, lat in rows
    ]
    log = PredictionLog(root)
    with log.writer("mtest", ["control", "challenger"]) as w:
        w.append(recs)
    # a retried batch written later: same request id r1, later ts, different values — must be ignored
    dup = pa.Table.from_pylist(
        [dict(recs[0], experiment="mtest", ts=t0 + dt.timedelta(hours=1), confidence=0.1, latency_ms=999.0)],
        schema=PREDICTION_SCHEMA,
    )
    d = root / "predictions" / "experiment=mtest" / "date=2024-03-01"
    pq.write_table(dup, d / "part-retry.parquet")
    log.append_labels(
        [
            dict(experiment="mtest", request_id=r, label=lab, labelled_at=t0 + dt.timedelta(days=2))
            for r, lab in [("r1", "pos"), ("r2", "pos"), ("r4", "pos"), ("r5", "neg"), ("r6", "neg")]
        ]
    )
    # a later relabel of r1: the first label (by labelled_at) wins
    log.append_labels([dict(experiment="mtest", request_id="r1", label="neg", labelled_at=t0 + dt.timedelta(days=3))])
    return root


def test_small_log_by_hand(small_log: Path) -> None:
    s = collect(small_log, "mtest", ["control", "challenger"])
    assert s.units.tolist() == [2, 2] and s.predictions.tolist() == [3, 3] and s.labelled.tolist() == [2, 3]
    assert s.duplicates == 1 and s.unknown_variants == () and s.days == ("2024-03-01", "2024-03-02")
    acc = s.stats["accuracy"]
    # control: a has r1 correct, r2 wrong (2 labelled); b has r3 unlabelled → 1/2; challenger: 2/3 (r4, r6)
    assert acc.ratio.tolist() == [0.5, pytest.approx(2 / 3)]
    assert acc.m_ss.tolist() == [1.0, 2.0] and acc.d_ss.tolist() == [4.0, 5.0] and acc.md_sum.tolist() == [2.0, 3.0]
    assert s.stats["latency_ms"].ratio.tolist() == [20.0, 25.0]
    # day 1 only: control users a (r1) and b (r3), challenger user c (r4)
    assert s.daily_units[0].tolist() == [2, 1]
    assert s.daily["latency_ms"].ratio[0].tolist() == [20.0, 15.0]


@pytest.fixture(scope="module")
def random_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rand") / "log"
    write_log(root, EXP, n_users=400, requests_per_user=4, accuracy={"challenger": 0.85}, seed=1)
    return root


def test_matches_pandas_reference_and_days_accumulate(random_log: Path) -> None:
    variants = list(EXP.variant_names)
    s = collect(random_log, "mtest", variants)
    ref = _reference(random_log, variants)
    for name in BASIC:
        _assert_stats(s.stats[name], ref[name])
    for d, day in enumerate(s.days):
        ref_d = _reference(random_log, variants, until=day)
        for name in BASIC:
            _assert_stats(s.daily[name][d], ref_d[name])
    # the last cumulative day is the whole test
    np.testing.assert_allclose(s.daily["accuracy"].m_ss[-1], s.stats["accuracy"].m_ss)


def _relog(random_log: Path, root: Path, ghosts: int) -> Path:
    """The random log's requests and labels appended again by lock-free writers (a retried batch included),
    then compacted: every file compacted. ``ghosts`` labels name requests that were never logged, so that not
    every label carries its prediction's copy."""
    src, log = PredictionLog(random_log), PredictionLog(root)
    preds, labels = src.read_predictions("mtest"), src.read_labels("mtest")
    with log.writer("mtest", list(EXP.variant_names), batch_size=500) as w:
        w.append(preds)
        w.append(preds.slice(0, 50))  # a retried batch: the writer forgot the flushed ids; compaction drops it
    log.append_labels(labels)
    if ghosts:
        log.append_labels(
            pa.table(
                {
                    "experiment": ["mtest"] * ghosts,
                    "request_id": [f"ghost-{i}" for i in range(ghosts)],
                    "label": ["pos"] * ghosts,
                }
            )
        )
    (report,) = compact(root)
    assert report.dropped_predictions == 50 and report.predictions == preds.num_rows
    assert _source(root, "mtest").unique
    return root


@pytest.fixture(scope="module")
def unique_log(random_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every label has its prediction: labels are counted without a join."""
    root = _relog(random_log, tmp_path_factory.mktemp("unique") / "log", ghosts=0)
    assert _source(root, "mtest").copied
    return root


@pytest.fixture(scope="module")
def unique_log_early_labels(random_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Some labels without a logged prediction: labels are joined on the integer request keys."""
    root = _relog(random_log, tmp_path_factory.mktemp("early") / "log", ghosts=20)
    src = _source(root, "mtest")
    assert src.unique and not src.copied
    return root


def _assert_same_stats(a: LogStats, b: LogStats, *, exact_quantiles: bool = True) -> None:
    assert (a.variants, a.days, a.first_day, a.last_day, a.n_days) == (
        b.variants,
        b.days,
        b.first_day,
        b.last_day,
        b.n_days,
    )
    for f in ("units", "predictions", "labelled", "daily_units"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for name in BASIC:
        for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
            # exact integer sums: identical, not merely close
            np.testing.assert_array_equal(getattr(a.stats[name], f), getattr(b.stats[name], f), err_msg=f"{name}.{f}")
            if a.daily:
                np.testing.assert_array_equal(
                    getattr(a.daily[name], f), getattr(b.daily[name], f), err_msg=f"{name}.{f}"
                )
    for p, q in a.quantiles.items():
        for f in ("estimate", "ci_low", "ci_high", "rank_se"):
            if exact_quantiles:
                np.testing.assert_array_equal(getattr(b.quantiles[p], f), getattr(q, f), err_msg=f"q{p}.{f}")
            else:
                np.testing.assert_allclose(getattr(b.quantiles[p], f), getattr(q, f), rtol=1e-12, err_msg=f"q{p}.{f}")


@pytest.mark.parametrize("daily", [True, False])
@pytest.mark.parametrize("layout", ["unique_log", "unique_log_early_labels"])
def test_a_log_of_unique_files_skips_deduplication_with_the_same_result(
    random_log: Path, layout: str, daily: bool, request: pytest.FixtureRequest
) -> None:
    variants = list(EXP.variant_names)
    general = collect(random_log, "mtest", variants, daily=daily)
    fast = collect(request.getfixturevalue(layout), "mtest", variants, daily=daily)
    assert fast.duplicates == 50 and general.duplicates == 0  # the retried batch, dropped by compaction
    _assert_same_stats(fast, general)


def test_arms_analysed_side_by_side_match_one_connection(unique_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    import abkit.metrics.compute as m

    calls: list[list[str]] = []
    spread = m._in_parallel
    monkeypatch.setattr(
        m, "_in_parallel", lambda job, src, exp, arms: calls.append(arms) or spread(job, src, exp, arms)
    )
    variants = list(EXP.variant_names)
    parallel = collect(unique_log, "mtest", variants)  # one connection per core, the arms spread over them
    with duckdb.connect() as con:  # a given connection: the arms one after another on it
        single = collect(unique_log, "mtest", variants, con=con)
    assert calls == [variants]  # only the first ran side by side
    _assert_same_stats(parallel, single)
    only = collect(unique_log, "mtest", ["control"])  # the challenger is then an unknown variant
    assert only.unknown_variants == ("challenger",)
    assert only.units.tolist() == parallel.units[:1].tolist()
    np.testing.assert_array_equal(only.stats["accuracy"].m_ss, parallel.stats["accuracy"].m_ss[:1])


def test_unknown_variants_of_files_written_before_clustering(
    random_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("abkit.log.compact._arm", lambda dialect, column: "0")  # both arms in one file
    root = _relog(random_log, tmp_path / "log", ghosts=0)
    assert _source(root, "mtest").unique
    s = collect(root, "mtest", ["control"])  # found by a query: the row groups do not tell
    assert s.unknown_variants == ("challenger",)
    _assert_same_stats(
        collect(root, "mtest", list(EXP.variant_names)), collect(random_log, "mtest", list(EXP.variant_names))
    )


def test_quantiles_match_numpy_and_intervals_bracket(random_log: Path) -> None:
    s = collect(random_log, "mtest", list(EXP.variant_names))
    p = PredictionLog(random_log).read_predictions("mtest").to_pandas()
    for q in s.quantiles.values():
        for i, v in enumerate(EXP.variant_names):
            micros = np.round(p.loc[p.variant == v, "latency_ms"].to_numpy() * 1e3)  # latency is kept in whole µs
            assert q.estimate[i] == pytest.approx(np.quantile(micros, q.p) / 1e3, rel=1e-12)
            assert q.ci_low[i] < q.estimate[i] < q.ci_high[i]
            assert 0 < q.rank_se[i] < 0.05


def test_bad_input(random_log: Path, tmp_path: Path) -> None:
    with pytest.raises(MetricError, match="engine"):
        collect(random_log, "mtest", ["control"], engine="polars")
    with pytest.raises(MetricError, match="metric 'recal' is unknown"):
        collect(random_log, "mtest", ["control"], metrics=["recal"])
    with pytest.raises(MetricError, match="needs positive_label"):  # a class metric needs its class
        collect(random_log, "mtest", ["control"], metrics=["recall"])
    with pytest.raises(MetricError, match="no prediction files"):
        collect(tmp_path, "mtest", ["control"])
    with pytest.raises(MetricError, match="quantile"):
        collect(random_log, "mtest", ["control"], quantiles=[95])
    s = collect(random_log, "mtest", ["control"])  # the challenger is then an unknown variant
    assert s.unknown_variants == ("challenger",)
    other = collect(random_log, "other-experiment", ["control", "challenger"])
    assert other.units.tolist() == [0, 0] and other.days == ()


@pytest.fixture(scope="module")
def ties_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Latencies and confidences exactly halfway between two fixed-point steps (µs, 1e-6)."""
    root = tmp_path_factory.mktemp("ties") / "log"
    t0 = dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
    rows = [
        ("control", "a", 0.0025, 2.5e-06),
        ("control", "a", 0.0035, 3.5e-06),
        ("control", "b", 1.0005, 0.5),
        ("challenger", "c", 2.0015, 0.25),
    ]  # latency_ms * 1000 and confidence * 1e6 are exact ties
    with PredictionLog(root).writer("mtest", ["control", "challenger"]) as w:
        w.append(
            [
                dict(
                    variant=v,
                    unit_id=u,
                    request_id=f"r{i}",
                    ts=t0,
                    text="t",
                    predicted_label="pos",
                    confidence=c,
                    latency_ms=lat,
                    model_name="m",
                    model_version="1",
                )
                for i, (v, u, lat, c) in enumerate(rows)
            ]
        )
    return root


def test_fixed_point_rounds_ties_to_even(ties_log: Path) -> None:
    s = collect(ties_log, "mtest", ["control", "challenger"], quantiles=[0.5])
    assert s.labelled.tolist() == [0, 0] and s.units.tolist() == [2, 1]  # no labels yet: analysed all the same
    # 2.5 → 2 µs, 3.5 → 4 µs, 1000.5 → 1000 µs, 2001.5 → 2002 µs; 2.5 → 2 and 3.5 → 4 millionths
    assert s.stats["latency_ms"].m_sum.tolist() == [pytest.approx(1.006, abs=1e-12), pytest.approx(2.002, abs=1e-12)]
    assert s.stats["confidence"].m_sum.tolist() == [pytest.approx(0.500006, abs=1e-12), 0.25]
    assert s.quantiles[0.5].estimate.tolist() == [0.004, 2.002]  # the median of 2, 4 and 1000 µs


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_agree(
    spark: object, random_log: Path, small_log: Path, unique_log: Path, unique_log_early_labels: Path, ties_log: Path
) -> None:
    roots = (
        (random_log, list(EXP.variant_names)),
        (small_log, ["control", "challenger"]),
        (unique_log, list(EXP.variant_names)),
        (unique_log_early_labels, list(EXP.variant_names)),
        (ties_log, ["control", "challenger"]),
    )
    for root, variants in roots:
        d = collect(root, "mtest", variants)
        s = collect(root, "mtest", variants, engine="spark", spark=spark)
        assert s.duplicates == d.duplicates
        _assert_same_stats(s, d, exact_quantiles=False)


def test_without_daily_view_the_totals_are_the_same(random_log: Path) -> None:
    full = collect(random_log, "mtest", list(EXP.variant_names))
    fast = collect(random_log, "mtest", list(EXP.variant_names), daily=False)
    assert fast.days == () and fast.n_days == full.n_days == len(full.days) and fast.last_day == full.days[-1]
    for name in BASIC:
        for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
            np.testing.assert_array_equal(getattr(fast.stats[name], f), getattr(full.stats[name], f))
    for p, q in full.quantiles.items():
        np.testing.assert_array_equal(fast.quantiles[p].ci_high, q.ci_high)


def test_keys_shared_by_two_users_never_merge_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def by_length(ids: object) -> np.ndarray:  # colliding keys: the id's length
        values = ids.to_pylist() if hasattr(ids, "to_pylist") else list(ids)  # type: ignore[union-attr]
        return np.array([len(x) for x in values], dtype=np.int64)

    monkeypatch.setattr("abkit.log.compact.fnv1a64_arrow", lambda ids: pa.array(by_length(ids)))  # the stored keys
    t0 = dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
    recs = [
        dict(
            variant="control",
            unit_id=u,
            request_id=r,
            ts=t0,
            text="t",
            predicted_label="pos",
            confidence=0.5,
            latency_ms=10.0,
            model_name="m",
            model_version="1",
        )
        for u, r in (("u1", "a"), ("u2", "bb"))
    ]
    log = PredictionLog(tmp_path)
    with log.writer("mtest", ["control", "challenger"]) as w:
        w.append(recs)
    (report,) = log.compact()
    assert report.collided and not _source(tmp_path, "mtest").unique
    s = collect(tmp_path, "mtest", ["control", "challenger"])
    assert s.units.tolist() == [2, 0]  # read by unit id: the shared key did not merge the users
