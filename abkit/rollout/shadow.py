"""The shadow stage: the challenger predicts on mirrored requests without serving them, and a paired test
on the shared labelled requests gates entry into the canary.

The log keeps its schema: the champion's served predictions and the challenger's shadow predictions of the
same requests go to two experiment keys (``shadow_keys(key)``), each request under the same ``request_id``
in both, and labels are appended to both. ``paired_evidence`` joins the two by request id inside DuckDB
(through ``abkit.engine``) and reduces the pairs to per-user sums, so no row reaches the statistics:

- accuracy: the mean paired difference of correctness (challenger − champion) per labelled pair, clustered
  by user (``abkit.stats.paired.paired_difference``), its always-valid interval, and the exact McNemar
  p-value on the discordant pairs;
- latency: the paired mean difference, and the difference of p95s with clustered rank intervals (each
  p95's interval on its own, so the difference's interval ignores the pairing: conservative when the two
  models' latencies are positively correlated).

Pairing runs on DuckDB only (the Spark engine is not wired here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from abkit.decide import Comparison
from abkit.rollout.machine import Evidence
from abkit.rollout.policy import RolloutPolicy

__all__ = ["paired_evidence", "shadow_keys"]


def shadow_keys(key: str) -> tuple[str, str]:
    """Log keys of (the champion's served predictions, the challenger's shadow predictions)."""
    return f"{key}.shadow-champion", f"{key}.shadow-challenger"


_PAIRS = """
SELECT r.unit_id, r.label, CAST(r.predicted_label = r.label AS INTEGER) AS cr,
       CAST(t.predicted_label = r.label AS INTEGER) AS ct, r.latency_ms AS lr, t.latency_ms AS lt
FROM shadow_reference r JOIN abkit_pred_once t USING (request_id)"""

_USER_SUMS = """
WITH u AS (SELECT unit_id, COUNT(label) AS d, SUM(CASE WHEN label IS NOT NULL THEN ct - cr END) AS m,
                  SUM(CASE WHEN label IS NOT NULL THEN cr END) AS ref_correct,
                  COUNT(*) AS dl, SUM(lt - lr) AS ml
           FROM shadow_pairs GROUP BY unit_id)
SELECT COUNT_IF(d > 0), SUM(m), SUM(m * m), SUM(d), SUM(d * d), SUM(m * d), SUM(ref_correct),
       COUNT(*), SUM(ml), SUM(ml * ml), SUM(dl), SUM(dl * dl), SUM(ml * dl),
       (SELECT COUNT_IF(label IS NOT NULL AND cr = 1 AND ct = 0) FROM shadow_pairs),
       (SELECT COUNT_IF(label IS NOT NULL AND cr = 0 AND ct = 1) FROM shadow_pairs)
FROM u"""


def _comparison(
    metric: str,
    statistic: str,
    est: float,
    lo: float,
    hi: float,
    p: float,
    se: float,
    n: float,
    ref: float,
    alpha: float,
) -> Comparison:
    from abkit.stats.sequential import confidence_sequence

    seq = confidence_sequence(est, se, n, alpha=alpha)
    return Comparison(
        metric,
        statistic,
        "challenger",
        est,
        lo,
        hi,
        p,
        float(seq.ci_low),
        float(seq.ci_high),
        float(seq.p_value),
        se,
        float("nan"),
        ref,
        n,
        n_control=n,
        n_treatment=n,
    )


def _arm(sums: Any) -> Any:
    """``ArmStats`` from (n, Σm, Σm², Σd, Σd², Σmd)."""
    from abkit.stats.aggregates import ArmStats

    return ArmStats(*(np.asarray(float(x), dtype=np.float64) for x in sums))


def _p95(eng: Any, column: str, alpha: float) -> tuple[float, float, float]:
    """p95 of ``column`` over the pairs and its clustered rank interval (Deng, Knoblich & Lu 2018)."""
    from abkit.stats.quantiles import quantile_rank_interval

    (q,) = eng.sql(f"SELECT quantile_cont({column}, 0.95) FROM shadow_pairs")[0]
    if q is None:
        nan = float("nan")
        return nan, nan, nan
    row = eng.sql(f"""WITH u AS (SELECT COUNT_IF({column} <= {float(q)!r}) AS m, COUNT(*) AS d
                      FROM shadow_pairs GROUP BY unit_id)
                      SELECT COUNT(*), SUM(m), SUM(m * m), SUM(d), SUM(d * d), SUM(m * d) FROM u""")[0]
    lo_p, hi_p, _ = quantile_rank_interval(0.95, _arm(row), alpha=alpha)
    lo, hi = eng.sql(
        f"SELECT quantile_cont({column}, {float(lo_p)!r}), quantile_cont({column}, {float(hi_p)!r}) FROM shadow_pairs"
    )[0]
    return float(q), float(lo), float(hi)


def paired_evidence(
    log_root: str | Path, key: str, time: Any, policy: RolloutPolicy, *, alarms: tuple[str, ...] = ()
) -> Evidence:
    """Evidence of a shadow stage: paired comparisons of challenger and champion on the same requests."""
    import duckdb

    from abkit.engine import open_engine
    from abkit.log.layout import has_predictions, log_source
    from abkit.stats.paired import mcnemar_exact, paired_difference
    from abkit.stats.quantiles import quantile_difference

    ref_key, tested_key = shadow_keys(key)
    if not has_predictions(Path(log_root)):
        return Evidence(time, alarms=alarms)
    con = duckdb.connect()
    try:
        ref = open_engine(log_source(log_root, ref_key), con=con)
        ref.materialize(
            "shadow_reference",
            "SELECT p.request_id, p.unit_id, p.predicted_label, p.latency_ms, l.label "
            "FROM abkit_pred_once p LEFT JOIN abkit_lab_once l USING (request_id)",
        )
        eng = open_engine(log_source(log_root, tested_key), con=con)  # its views replace the reference's
        eng.materialize("shadow_pairs", _PAIRS)
        row = [0.0 if x is None else float(x) for x in eng.sql(_USER_SUMS)[0]]
        acc = _arm(row[0:6])
        lat = _arm([row[7], *row[8:13]])
        ref_correct, b, c = row[6], int(row[13]), int(row[14])
        units = row[0]
        comps = []
        a = policy.alpha
        if units >= 2:
            r = paired_difference(acc, alpha=a)
            ref_acc = ref_correct / float(acc.d_sum) if float(acc.d_sum) else float("nan")
            comps.append(
                _comparison(
                    "accuracy",
                    "mean",
                    float(r.estimate),
                    float(r.ci_low),
                    float(r.ci_high),
                    mcnemar_exact(b, c, int(acc.d_sum)).p_value,
                    float(r.se),
                    units,
                    ref_acc,
                    a,
                )
            )
        if row[7] >= 2:
            r = paired_difference(lat, alpha=a)
            comps.append(
                _comparison(
                    "latency_ms",
                    "mean",
                    float(r.estimate),
                    float(r.ci_low),
                    float(r.ci_high),
                    float(r.p_value),
                    float(r.se),
                    row[7],
                    float("nan"),
                    a,
                )
            )
            qr, qt = _p95(eng, "lr", a), _p95(eng, "lt", a)
            d = quantile_difference(*qr, *qt, alpha=a)
            comps.append(
                _comparison(
                    "latency_ms",
                    "p95",
                    float(d.estimate),
                    float(d.ci_low),
                    float(d.ci_high),
                    float(d.p_value),
                    float(d.se),
                    row[7],
                    qr[0],
                    a,
                )
            )
    finally:
        con.close()
    return Evidence(time, {"reference": units, "tested": units}, tuple(comps), None, alarms)
