"""CUPED with each user's pre-period metric: join by user, narrower intervals, A/A false positives at α."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from abkit.analysis import analyze
from abkit.cuped import (
    UserDaySums,
    UserSums,
    collect_cuped,
    collect_cuped_daily,
    cuped_compare,
    cuped_daily_stats,
    cuped_effects,
    cuped_stats,
    pre_period_key,
)
from abkit.experiment import Experiment
from abkit.log import PredictionLog
from abkit.metrics.registry import get_metric
from abkit.stats.aggregates import CupedStats
from abkit.stats.frequentist import cuped_lift, cuped_ttest


def _users(rng: np.random.Generator, n: int, effect: float = 0.0) -> tuple[list[UserSums], UserSums]:
    """Persistent users: own activity and own accuracy; 14 pre-period days, 14 test days, half the requests
    labelled; arm 1 adds ``effect`` to every user's accuracy. Accuracy = Σ correct / Σ labelled."""
    activity = rng.lognormal(np.log(0.5) - 0.5, 1.0, n)
    skill = rng.beta(2.0, 0.8, n)
    arm = rng.random(n) < 0.5
    pre_lab = rng.binomial(rng.poisson(activity * 14), 0.5)
    test_lab = rng.binomial(rng.poisson(activity * 14), 0.5)
    pre_ok = rng.binomial(pre_lab, skill)
    test_ok = rng.binomial(test_lab, np.clip(skill + effect * arm, 0, 1))
    units = np.arange(n)
    keep = pre_lab > 0  # users without labelled pre-period requests are absent from the pre-period sums
    pre = UserSums(units[keep], pre_ok[keep], pre_lab[keep])
    test = [UserSums(units[a], test_ok[a], test_lab[a]) for a in (~arm, arm)]
    return test, pre


def test_join_by_user_matches_direct_sums() -> None:
    test = [
        UserSums(np.array([3, 1]), np.array([1.0, 2.0]), np.array([2.0, 2.0])),
        UserSums(np.array([2, 9]), np.array([0.0, 1.0]), np.array([1.0, 1.0])),
    ]
    pre = UserSums(np.array([1, 2, 3, 7]), np.array([5.0, 4.0, 3.0, 1.0]), np.array([6.0, 4.0, 3.0, 1.0]))
    s = cuped_stats(test, pre)
    assert s.y.n.tolist() == [2.0, 2.0]
    assert s.x.m_sum.tolist() == [3.0 + 5.0, 4.0]  # user 9 has no pre-period: covariate 0
    assert s.m_mx.tolist() == [1 * 3 + 2 * 5, 0 * 4 + 1 * 0]
    assert s.d_dx.tolist() == [2 * 3 + 2 * 6, 1 * 4 + 0]


def test_cuped_narrows_the_interval_on_persistent_users() -> None:
    test, pre = _users(np.random.default_rng(3), 20000, effect=0.01)
    rows = cuped_effects(cuped_stats(test, pre), "accuracy", ["control", "challenger"], alpha=0.05)
    r = rows[0]
    assert r["width_ratio"] <= 0.8  # at least 20 % narrower
    assert r["variance_reduction"] == pytest.approx(1 - r["width_ratio"] ** 2, rel=1e-6)
    assert r["plain_ci_low"] < r["estimate"] < r["plain_ci_high"] and r["covariate"]


def test_cuped_aa_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(8)
    sims, alpha = 1500, 0.05
    rejected = 0
    ratios = []
    for _ in range(sims):
        test, pre = _users(rng, 600)
        s = cuped_stats(test, pre)
        c = CupedStats(s.y[0], s.x[0], s.m_mx[0], s.m_dx[0], s.d_mx[0], s.d_dx[0])
        t = CupedStats(s.y[1], s.x[1], s.m_mx[1], s.m_dx[1], s.d_mx[1], s.d_dx[1])
        rejected += float(cuped_ttest(c, t, alpha=alpha).p_value) < alpha
        ratios.append(cuped_effects(s, "accuracy", ["a", "b"], alpha=alpha)[0]["width_ratio"])
    assert rejected / sims == pytest.approx(alpha, abs=3 * np.sqrt(alpha * (1 - alpha) / sims))
    assert np.median(ratios) < 0.85


def test_analysis_uses_the_pre_period_through_the_log(tmp_path) -> None:
    """A subtle-effect test with a 28-day pre-period and persistent users, simulated, logged and analysed: the
    primary metric's interval is at least 20 % narrower with CUPED on the same data, and the decision uses it."""
    from abkit.models import train_model
    from abkit.simulate import SimulationConfig, simulate
    from abkit.synthetic import make_corpus

    corpus = make_corpus(1500, rng=21, new_vocab_rate=0.1)
    train = make_corpus(900, rng=22)
    models = {
        "champion": train_model("tfidf_logreg", train["text"][:500], train["label"][:500], rng=0),
        "challenger": train_model("tfidf_logreg", train["text"], train["label"], rng=0),
    }
    exp = Experiment.from_params(
        key="cuped-e2e", variant_names="champion,challenger", start="2024-06-03", duration_days=14
    )
    cfg = SimulationConfig(
        n_users=1500,
        label_rate=0.5,
        label_delay_days=0.0,
        pre_period_days=28,
        requests_per_day=1.0,
        user_affinity=0.95,
        user_pool_size=2,
        progress=False,
    )
    simulate(exp, models, corpus, tmp_path / "log", config=cfg, rng=11)
    with_cuped = analyze(tmp_path / "log", exp, daily=False)
    plain = analyze(tmp_path / "log", exp, daily=False, cuped=False)
    (row,) = with_cuped.cuped.to_dicts()
    assert row["metric"] == "accuracy" and row["covariate"]
    assert row["width_ratio"] <= 0.8 and row["variance_reduction"] >= 0.36
    eff = {e["metric"]: e for e in with_cuped.effects.to_dicts() if e["statistic"] == "mean"}["accuracy"]
    ref = {e["metric"]: e for e in plain.effects.to_dicts() if e["statistic"] == "mean"}["accuracy"]
    assert (eff["ci_high"] - eff["ci_low"]) == pytest.approx(row["width_ratio"] * (ref["ci_high"] - ref["ci_low"]))
    assert ref["ci_low"] == pytest.approx(row["plain_ci_low"]) and "CUPED" in eff["method"]
    assert plain.cuped.to_dicts() == [] and with_cuped.to_json()["cuped"][0]["width_ratio"] <= 0.8


def test_adjusted_difference_matches_ols_with_the_covariate() -> None:
    """A per-user mean metric (one value per user in each period): the CUPED difference is the treatment
    coefficient of y ~ 1 + T + x (statsmodels OLS), up to θ being pooled over all users rather than within arms
    (a difference far below the standard error), and its standard error is OLS's heteroskedasticity-robust
    (HC2) one."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(5)
    n = 4000
    x = rng.normal(10.0, 3.0, n)
    arm = rng.random(n) < 0.5
    y = 2.0 + 0.8 * x + 0.3 * arm + rng.normal(0.0, 1.5, n) * (1.0 + 0.5 * arm)  # unequal variances
    units = np.arange(n)
    stats = cuped_stats(
        [UserSums(units[a], y[a], np.ones(a.sum())) for a in (~arm, arm)], UserSums(units, x, 1 + 0 * x)
    )
    ours = cuped_compare(stats, alpha=0.05).adjusted
    fit = sm.OLS(y, sm.add_constant(np.column_stack([arm.astype(float), x]))).fit(cov_type="HC2")
    assert float(ours.estimate[0]) == pytest.approx(fit.params[1], abs=0.01 * fit.bse[1])
    assert float(ours.se[0]) == pytest.approx(fit.bse[1], rel=0.01)
    assert float(cuped_compare(stats, alpha=0.05).plain.se[0]) > 1.5 * fit.bse[1]  # the covariate does the work


def test_relative_lift_of_the_adjusted_means_covers() -> None:
    """The lift of the CUPED-adjusted means with its delta-method interval (``cuped_lift``) covers the true
    population lift at 95 % ± Monte-Carlo error, with a clear effect (where the pooled covariate mean, shared by
    both adjusted means, matters), and its standard error is the spread of the estimates over the simulations."""
    effect, sims, n = 0.1, 1000, 2000
    beta = sps.beta(2.0, 0.8)  # the users' accuracy in ``_users``; accuracy ratio → E[skill] (labels ⟂ skill)
    truth = beta.expect(lambda s: min(s + effect, 1.0)) / beta.mean() - 1.0
    rng = np.random.default_rng(12)
    covered, estimates, ses = 0, [], []
    for _ in range(sims):
        rel = cuped_compare(cuped_stats(*_users(rng, n, effect=effect)), alpha=0.05).relative
        covered += bool(rel.ci_low[0] <= truth <= rel.ci_high[0])
        estimates.append(float(rel.estimate[0]))
        ses.append(float(rel.se[0]))
    mc = np.sqrt(0.95 * 0.05 / sims)
    assert covered / sims == pytest.approx(0.95, abs=3 * mc)
    assert np.std(estimates) / np.mean(ses) == pytest.approx(1.0, abs=0.1)
    assert np.mean(estimates) == pytest.approx(truth, abs=3 * np.std(estimates) / np.sqrt(sims))


def test_lift_standard_error_counts_the_pooled_covariate_mean_in_both_arms() -> None:
    """A large, heterogeneous effect (the challenger doubles each user's value) on a 70/30 split: the lift's
    delta-method standard error matches the spread of the estimates over simulations, while treating the two
    adjusted means as independent arms (``relative_variance`` of the adjusted moments) would overstate it by
    about 30 % here; the interval covers the true lift of 1 at 95 % ± Monte-Carlo error."""
    from abkit.stats.frequentist import relative_variance

    rng = np.random.default_rng(1)
    sims, n = 1000, 1000
    estimates, ses, independent, covered = [], [], [], 0
    for _ in range(sims):
        x = rng.gamma(2.0, 0.5, n)  # pre-period value, mean 1
        arm = rng.random(n) < 0.3
        y = x * (1.0 + arm) + rng.normal(0.0, 0.3, n)  # true lift: 1
        units = np.arange(n)
        stats = cuped_stats(
            [UserSums(units[a], y[a], np.ones(a.sum())) for a in (~arm, arm)], UserSums(units, x, 1 + 0 * x)
        )
        cmp = cuped_compare(stats, alpha=0.05)
        estimates.append(float(cmp.relative.estimate[0]))
        ses.append(float(cmp.relative.se[0]))
        independent.append(float(np.sqrt(relative_variance(cmp.control, cmp.treatment))[0]))
        covered += bool(cmp.relative.ci_low[0] <= 1.0 <= cmp.relative.ci_high[0])
    assert np.std(estimates) / np.mean(ses) == pytest.approx(1.0, abs=0.08)
    assert np.mean(independent) / np.mean(ses) > 1.2  # the case tells the two formulas apart
    assert covered / sims == pytest.approx(0.95, abs=3 * np.sqrt(0.95 * 0.05 / sims))


def test_lift_with_no_effect_has_the_variance_of_the_difference() -> None:
    """At μ̃T = μ̃C the delta method of the lift reduces to var(adjusted difference) / μ̃C² (the pooled mean's
    terms cancel), and a sign flip of the control mean keeps the standard error (the lift is over |μ̃C|)."""
    test, pre = _users(np.random.default_rng(4), 3000)
    s = cuped_stats(test, pre)
    c = CupedStats(s.y[0], s.x[0], s.m_mx[0], s.m_dx[0], s.d_mx[0], s.d_dx[0])
    same = CupedStats(s.y[0], s.x[0], s.m_mx[0], s.m_dx[0], s.d_mx[0], s.d_dx[0])
    lift, se = cuped_lift(c, same)
    diff = cuped_ttest(c, same)
    assert float(lift) == 0.0
    assert float(se) == pytest.approx(float(diff.se) / abs(float(diff.control)), rel=1e-12)


def _write_with_pre(root: Path, exp: Experiment, *, n_users: int, effect: float, seed: int) -> None:
    """Persistent users (own accuracy, own activity) served by the champion for 14 days before the test and by
    their arm during it; 70 % of the requests labelled an hour later. The challenger adds ``effect`` to every
    user's accuracy. Written straight to the log (no models), so the analysis runs on it in seconds."""
    rng = np.random.default_rng(seed)
    names = list(exp.variant_names)
    ids = np.array([f"user-{i:05d}" for i in range(n_users)])
    skill = rng.beta(2.0, 0.8, n_users)
    activity = rng.lognormal(0.0, 0.8, n_users)
    start = dt.datetime.fromisoformat(exp.start).replace(tzinfo=dt.UTC)
    log = PredictionLog(root)
    periods = (
        (pre_period_key(exp.key), names[:1], np.zeros(n_users, dtype=np.int64), 14, start - dt.timedelta(days=14)),
        (exp.key, names, np.asarray(exp.assign(ids)), exp.duration_days, start),
    )
    for key, variants, served, days, first in periods:
        user = np.repeat(np.arange(n_users), rng.poisson(activity * days / 2))
        user = user[served[user] >= 0]
        ok = rng.random(user.size) < np.clip(skill[user] + effect * (served[user] == 1), 0.0, 1.0)
        predicted = np.where(rng.random(user.size) < 0.3, "spam", "ham")
        ts = first + pd.to_timedelta(np.sort(rng.random(user.size)) * days, unit="D")
        request = np.array([f"{key}-{i}" for i in range(user.size)])
        frame = pd.DataFrame(
            {
                "experiment": key,
                "variant": np.array(names)[served[user]],
                "unit_id": ids[user],
                "request_id": request,
                "ts": ts,
                "text": "t",
                "predicted_label": predicted,
                "confidence": np.clip(0.5 + 0.45 * skill[user] + rng.normal(0.0, 0.05, user.size), 0.0, 1.0),
                "latency_ms": 30.0 * rng.lognormal(0.0, 0.3, user.size),
                "model_name": "m",
                "model_version": "1",
            }
        )
        with log.writer(key, variants, batch_size=max(user.size, 1)) as w:
            w.append(frame)
        lab = rng.random(user.size) < 0.7
        truth = np.where(ok, predicted, np.where(predicted == "spam", "ham", "spam"))
        log.append_labels(
            pd.DataFrame(
                {
                    "experiment": key,
                    "request_id": request[lab],
                    "label": truth[lab],
                    "labelled_at": ts[lab] + pd.Timedelta(hours=1),
                }
            )
        )


PRE_EXP = Experiment.from_params(
    key="cuped-fast", variant_names="champion,challenger", start="2024-06-03", duration_days=14
)


@pytest.fixture(scope="module")
def pre_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cuped-fast") / "log"
    _write_with_pre(root, PRE_EXP, n_users=3000, effect=0.02, seed=7)
    return root


def test_every_figure_of_the_primary_metric_is_adjusted(pre_log: Path) -> None:
    """With a pre-period the primary metric's difference, relative change (the lift of the adjusted means) with its
    interval, the chance to win and the planning variance all come from the adjusted estimate; the arms' own
    values stay as observed; the other metrics are untouched."""
    adjusted = analyze(pre_log, PRE_EXP, daily=False)
    plain = analyze(pre_log, PRE_EXP, daily=False, cuped=False)
    (row,) = adjusted.cuped.to_dicts()
    eff = {(e["metric"], e["statistic"]): e for e in adjusted.effects.to_dicts()}
    ref = {(e["metric"], e["statistic"]): e for e in plain.effects.to_dicts()}
    e, r = eff[("accuracy", "mean")], ref[("accuracy", "mean")]
    assert row["width_ratio"] < 0.9  # the pre-period helps here
    # independently: the engine's per-user sums, then the lift of the adjusted means and its delta-method se
    cs = collect_cuped(pre_log, PRE_EXP.key, PRE_EXP.variant_names, get_metric("accuracy"))
    assert cs is not None
    lift, se = cuped_lift(
        CupedStats(cs.y[0], cs.x[0], cs.m_mx[0], cs.m_dx[0], cs.d_mx[0], cs.d_dx[0]),
        CupedStats(cs.y[1:], cs.x[1:], cs.m_mx[1:], cs.m_dx[1:], cs.d_mx[1:], cs.d_dx[1:]),
    )
    assert e["relative"] == pytest.approx(float(lift[0]), rel=1e-12) == row["relative"]
    t = sps.t.ppf(0.975, cuped_compare(cs, alpha=0.05).relative.df[0])
    assert (e["relative_ci_low"], e["relative_ci_high"]) == pytest.approx((lift[0] - t * se[0], lift[0] + t * se[0]))
    assert e["chance_to_win"] == pytest.approx(sps.norm.cdf(lift[0] / se[0]), rel=1e-9)  # flat prior
    assert e["risk_treatment"] != r["risk_treatment"] and e["chance_to_win"] != r["chance_to_win"]
    # narrower than without CUPED, by about the same factor as the difference's interval
    rel_ratio = (e["relative_ci_high"] - e["relative_ci_low"]) / (r["relative_ci_high"] - r["relative_ci_low"])
    assert rel_ratio == pytest.approx(row["width_ratio"], rel=0.05)
    assert r["relative"] == pytest.approx(row["plain_relative"], rel=1e-12) != e["relative"]
    assert (e["control"], e["treatment"]) == (r["control"], r["treatment"])  # the arms as observed
    assert e["estimate"] == row["estimate"] and "chance to win are adjusted" in e["method"]
    (cmp,) = [c for c in adjusted.comparisons if c.metric == "accuracy" and c.statistic == "mean"]
    (old,) = [c for c in plain.comparisons if c.metric == "accuracy" and c.statistic == "mean"]
    assert cmp.control_var < 0.9 * old.control_var and cmp.se == pytest.approx(
        (e["ci_high"] - e["ci_low"]) / 2 / sps.t.ppf(0.975, cuped_compare(cs, alpha=0.05).adjusted.df[0])
    )
    for key in eff:
        if key != ("accuracy", "mean"):
            assert eff[key] == ref[key], key


def test_daily_cuped_stats_are_those_of_the_log_cut_at_each_day() -> None:
    """At every cut-off day the accumulated statistics equal ``cuped_stats`` of the per-user sums of the requests up
    to that day (computed directly), users entering on the first day they carry the metric, some with no
    pre-period and some whose first days carry nothing (no labelled request yet)."""
    rng = np.random.default_rng(9)
    days = [19800 + i for i in range(6)]
    arms = []
    for _ in range(2):
        unit = np.repeat(np.array([f"u{i}" for i in range(60)]), 4)
        day = rng.choice(days, unit.size)
        d = rng.integers(0, 3, unit.size).astype(float)  # 0: nothing labelled that day
        arms.append(UserDaySums(unit, day, rng.binomial(d.astype(int), 0.7).astype(float), d))
    pre = UserSums(np.array([f"u{i}" for i in range(0, 60, 2)]), rng.integers(0, 9, 30) * 1.0, np.full(30, 9.0))
    daily = cuped_daily_stats(arms, pre, days)
    for i, cut in enumerate(days):
        test = []
        for arm in arms:
            keep = arm.day <= cut
            frame = pd.DataFrame({"u": arm.unit[keep], "m": arm.m[keep], "d": arm.d[keep]}).groupby("u").sum()
            test.append(UserSums(frame.index.to_numpy(), frame["m"].to_numpy(), frame["d"].to_numpy()))
        direct = cuped_stats(test, pre)
        for part in ("y", "x"):
            for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
                got, want = getattr(getattr(daily, part), f)[i], getattr(getattr(direct, part), f)
                np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{part}.{f} day {i}")
        for f in ("m_mx", "m_dx", "d_mx", "d_dx"):
            np.testing.assert_allclose(getattr(daily, f)[i], getattr(direct, f), rtol=1e-12, err_msg=f)
    assert daily.y.n[0].sum() < daily.y.n[-1].sum()  # users keep arriving


def test_the_day_by_day_view_is_adjusted_too(pre_log: Path) -> None:
    """With the daily view the primary metric's sequential rows are CUPED at every cut-off day: the last day is the
    effects row's always-valid interval, the users are those of the plain daily view, and the other metrics'
    rows are unchanged."""
    adjusted = analyze(pre_log, PRE_EXP)
    plain = analyze(pre_log, PRE_EXP, cuped=False)
    seq = adjusted.sequential.to_dicts()
    ref = plain.sequential.to_dicts()
    assert len(seq) == len(ref) > 10 and [(r["day"], r["metric"]) for r in seq] == [
        (r["day"], r["metric"]) for r in ref
    ]
    (e,) = [x for x in adjusted.effects.to_dicts() if x["metric"] == "accuracy" and x["statistic"] == "mean"]
    last = [r for r in seq if r["metric"] == "accuracy"][-1]
    assert (last["estimate"], last["ci_low"], last["ci_high"]) == pytest.approx(
        (e["estimate"], e["seq_ci_low"], e["seq_ci_high"]), rel=1e-9
    )
    (once,) = analyze(pre_log, PRE_EXP, daily=False).cuped.to_dicts()  # per-user sums, not the last cut-off day
    (row,) = adjusted.cuped.to_dicts()
    for key, value in once.items():
        assert row[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key
    narrower = 0
    for a, r in zip(seq, ref):
        if a["metric"] != "accuracy":
            assert a == r
        elif r["ci_low"] is not None:
            assert (a["control"], a["treatment"], a["users"]) == (r["control"], r["treatment"], r["users"])
            narrower += (a["ci_high"] - a["ci_low"]) < (r["ci_high"] - r["ci_low"])
    assert narrower >= 10  # the pre-period narrows the interval day after day
    days = [(dt.date.fromisoformat(d) - dt.date(1970, 1, 1)).days for d in adjusted.stats.days]
    daily = collect_cuped_daily(pre_log, PRE_EXP.key, PRE_EXP.variant_names, get_metric("accuracy"), days)
    assert daily is not None
    np.testing.assert_array_equal(daily.y.n, adjusted.stats.daily["accuracy"].n)  # the same users each day
    np.testing.assert_allclose(daily.y.m_ss, adjusted.stats.daily["accuracy"].m_ss, rtol=1e-12)


@pytest.mark.spark
@pytest.mark.slow
def test_cuped_analysis_is_identical_on_duckdb_and_spark(pre_log: Path, spark: object) -> None:
    """The analysis with a pre-period on Spark gives the same CUPED table, effects and decision as on DuckDB (the
    per-user sums are exact integers in both, and the users are summed in one order)."""
    by_duckdb = analyze(pre_log, PRE_EXP)
    by_spark = analyze(pre_log, PRE_EXP, engine="spark", spark=spark)
    assert by_duckdb.cuped.to_dicts() and by_spark.cuped.to_dicts() == by_duckdb.cuped.to_dicts()
    assert by_spark.effects.to_dicts() == by_duckdb.effects.to_dicts()
    assert by_spark.sequential.to_dicts() == by_duckdb.sequential.to_dicts()  # the day-by-day CUPED view too
    assert by_spark.recommendation == by_duckdb.recommendation


def test_compacted_logs_match_users_by_their_keys_with_the_same_statistics(pre_log: Path, tmp_path: Path) -> None:
    """Once both periods are compacted, users are matched by their 64-bit keys and the labels' sums come from
    their copy of the prediction (no string join): the CUPED statistics, overall and day by day, equal those
    of the appended log matched by the string ids (up to the order of float sums)."""
    import shutil

    from abkit.cuped import _sources, collect_cuped_daily

    root = tmp_path / "log"
    shutil.copytree(pre_log, root)
    PredictionLog(root).compact()
    assert not _sources(pre_log, PRE_EXP.key)[2] and _sources(root, PRE_EXP.key)[2]
    names = PRE_EXP.variant_names
    for metric in ("accuracy", "latency_ms", "confidence"):
        spec = get_metric(metric)
        a, b = collect_cuped(pre_log, PRE_EXP.key, names, spec), collect_cuped(root, PRE_EXP.key, names, spec)
        assert a is not None and b is not None
        _assert_same_cuped(a, b, metric)
        days = list(range(19877, 19877 + PRE_EXP.duration_days))  # 2024-06-03 onwards
        da = collect_cuped_daily(pre_log, PRE_EXP.key, names, spec, days)
        db = collect_cuped_daily(root, PRE_EXP.key, names, spec, days)
        assert da is not None and db is not None
        _assert_same_cuped(da, db, f"{metric} daily")


def _assert_same_cuped(a: CupedStats, b: CupedStats, what: str) -> None:
    for name in ("y", "x"):
        for f in ("n", "m_sum", "m_ss", "d_sum", "d_ss", "md_sum"):
            got, want = getattr(getattr(b, name), f), getattr(getattr(a, name), f)
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{what} {name}.{f}")
    for f in ("m_mx", "m_dx", "d_mx", "d_dx"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=1e-12, err_msg=f"{what} {f}")
