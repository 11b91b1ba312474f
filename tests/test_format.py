"""Numbers for people (abkit.format) and the scorecard built from an analysis results dict."""

from __future__ import annotations

import math
import re

import pytest

from abkit import format as F
from abkit.display import format_value
from abkit.scorecard import Scorecard, plain_text, score_rows, top_reason

E_NUMBER = re.compile(r"\d[eE][+-]?\d")


@pytest.mark.parametrize("x, text", [(0.52, "52.0 %"), (0.0, "0.0 %"), (1.0, "100.0 %"), (-0.0421, "−4.2 %")])
def test_percent(x, text):
    assert F.percent(x) == text


@pytest.mark.parametrize(
    "p, text",
    [
        (7.336e-144, "< 0.001"),
        (0.0, "< 0.001"),
        (0.001, "0.001"),
        (0.01117, "0.011"),
        (0.8675, "0.87"),
        (0.05, "0.050"),
        (1.0, "> 0.999"),
    ],
)
def test_p_value(p, text):
    assert F.p_value(p) == text


def test_counts_and_numbers_never_use_scientific_notation():
    assert F.count(10912.0) == "10,912"
    assert F.count(1.09e4) == "10,900"
    assert F.number(1234567.8) == "1,234,568"
    assert F.number(3.3e-9) == "0.000000"
    for x in (1e-300, 1e300, 7.3e-144, 12345.678, -0.000123):
        assert not E_NUMBER.search(F.number(x)), x
        assert not E_NUMBER.search(format_value(x)), x
    assert format_value(7.336e-144, column="p_value") == "< 0.001"
    assert format_value(10912) == "10,912"


def test_interval_rounded_to_its_meaningful_digits():
    assert F.interval(0.006755, 0.05524, "rate") == "0.7 % to 5.5 %"
    assert F.interval(2.0118, 3.0988, "ms") == "2.0 ms to 3.1 ms"
    assert F.interval(0.4316684, 0.6083316, "rate") == "43 % to 61 %"
    assert F.estimate_with_interval(0.52, 0.4316684, 0.6083316, "rate") == "52 % (43 % to 61 %)"
    assert F.estimate_with_interval(0.169, -0.083, 0.42, "rate", signed=True) == "+17 % (−8 % to +42 %)"


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_missing_values_are_pending_with_a_reason(missing):
    assert F.percent(missing, reason="no labels yet") == "pending (no labels yet)"
    assert F.p_value(missing) == "pending"
    assert F.interval(missing, 1.0) == "pending"


def test_chance_never_claims_certainty():
    assert (F.chance(1.0), F.chance(0.0), F.chance(0.9066)) == ("> 99 %", "< 1 %", "91 %")


def test_plain_text_writes_out_exponents():
    assert (
        plain_text("accuracy = +0.08 (CI -1.2e-05 to 0.3, adjusted p = 7.3e-144): better")
        == "accuracy = +0.08 (CI −0.000012 to 0.3, adjusted p < 0.001): better"
    )


def _results(users=(1500.0, 1520.0), labelled=(600.0, 610.0), decision="continue"):
    effect = {
        "metric": "accuracy",
        "statistic": "mean",
        "variant": "challenger",
        "control": 0.80,
        "treatment": 0.83,
        "estimate": 0.03,
        "ci_low": 0.01,
        "ci_high": 0.05,
        "seq_ci_low": -0.01,
        "seq_ci_high": 0.07,
        "relative": 0.0375,
        "relative_ci_low": 0.0125,
        "relative_ci_high": 0.0625,
        "chance_to_win": 0.991,
    }
    latency = {
        "metric": "latency_ms",
        "statistic": "p95",
        "variant": "challenger",
        "control": 10.0,
        "treatment": 8.0,
        "estimate": -2.0,
        "ci_low": -2.5,
        "ci_high": -1.5,
        "seq_ci_low": -3.0,
        "seq_ci_high": -1.0,
    }
    conf = {
        "metric": "confidence",
        "statistic": "mean",
        "variant": "challenger",
        "control": 0.7,
        "treatment": 0.9,
        "estimate": 0.2,
        "ci_low": 0.19,
        "ci_high": 0.21,
        "seq_ci_low": 0.18,
        "seq_ci_high": 0.22,
        "relative": 0.2857,
        "relative_ci_low": 0.27,
        "relative_ci_high": 0.30,
        "chance_to_win": 1.0,
    }
    return {
        "variants": ["champion", "challenger"],
        "control": "champion",
        "alpha": 0.05,
        "primary_metric": "accuracy",
        "effects": [effect, latency, conf],
        "metrics": [
            {"name": "accuracy", "variant": v, "estimate": e, "ci_low": e - 0.02, "ci_high": e + 0.02}
            for v, e in (("champion", 0.80), ("challenger", 0.83))
        ],
        "srm": {"status": "ok", "p_value": 0.61},
        "counts": {
            "users": list(users),
            "predictions": [3000.0, 3050.0],
            "labelled": list(labelled),
            "n_days": 6,
            "first_day": "2024-06-03",
            "last_day": "2024-06-08",
        },
        "recommendation": {
            "decision": decision,
            "variant": None,
            "method": "always-valid",
            "reasons": [
                "accuracy challenger − control = +0.03 (CI -0.01 to 0.07, p = 0.2)",
                "continue: about 900 more users",
            ],
        },
    }


def test_score_rows_colour_by_direction_and_use_the_decision_interval():
    rows = {(r.metric, r.statistic): r for r in score_rows(_results(), min_units=100)}
    acc = rows["accuracy", "mean"]
    # always-valid relative interval = fixed relative interval widened by (0.08 / 0.04)
    assert (acc.relative, acc.low, acc.high) == pytest.approx((0.0375, -0.0125, 0.0875))
    assert acc.status == "inconclusive" and acc.chance_to_win == pytest.approx(0.991)
    lat = rows["latency_ms", "p95"]
    assert (lat.relative, lat.low, lat.high) == pytest.approx((-0.2, -0.3, -0.1))
    assert lat.status == "good"  # lower latency is better
    conf = rows["confidence", "mean"]
    assert conf.status == "info" and conf.chance_to_win is None  # no green "100 % chance to win" for confidence
    fixed = {(r.metric, r.statistic): r for r in score_rows(_results(), inference="fixed")}
    assert fixed["accuracy", "mean"].status == "good"


def test_chance_to_win_waits_for_enough_labelled_users():
    res = _results()
    res["effects"][0] |= {"n_control": 12.0, "n_treatment": 40.0}  # plenty of users, few of them labelled
    acc = next(r for r in score_rows(res, min_labelled_units=30) if r.metric == "accuracy")
    assert acc.chance_to_win is None and "fewer than 30 labelled users in an arm (12)" in acc.note
    res["effects"][0] |= {"n_control": 31.0}
    acc = next(r for r in score_rows(res, min_labelled_units=30) if r.metric == "accuracy")
    assert acc.chance_to_win == pytest.approx(0.991)


def test_chance_to_win_waits_for_the_minimum_evidence():
    rows = score_rows(_results(users=(40.0, 1520.0)), min_units=100)
    acc = next(r for r in rows if r.metric == "accuracy")
    assert acc.chance_to_win is None
    assert "fewer than 100 users" in acc.note and "champion: 40" in acc.note


def test_scorecard_html_is_for_people():
    html = Scorecard(_results(), min_units=100, duration_days=14).to_html()
    assert "Continue the test" in html and "14 planned" in html and "traffic split as planned" in html
    assert "Why not ship at a high chance to win?" in html  # 99 % next to "continue" gets its word why
    assert "> 99 %" not in html.replace("&gt; 99 %", "> 99 %").split("Mean confidence")[1].split("</tr>")[0]
    assert not E_NUMBER.search(html)
    for bad in ("nan", "NaN", "None", "{'", "[]"):
        assert bad not in html
    assert top_reason(_results()["recommendation"]) == "continue: about 900 more users"


def test_pending_when_labels_are_missing():
    res = _results(labelled=(0.0, 0.0))
    for e in res["effects"]:
        if e["metric"] == "accuracy":
            e.update(
                relative=None,
                relative_ci_low=None,
                relative_ci_high=None,
                seq_ci_low=None,
                seq_ci_high=None,
                estimate=None,
                control=None,
                treatment=None,
            )
    row = next(r for r in score_rows(res) if r.metric == "accuracy")
    assert row.status == "pending" and row.note == "no labels yet in an arm"
    html = Scorecard(res).to_html()
    assert "pending" in html and "NaN" not in html


def test_top_reason_for_continue_says_what_is_missing():
    rec = {
        "decision": "continue",
        "reasons": [
            "too little evidence: users per arm a: 66, b: 54; needs 100",
            "continue: at least 80 more users",
            "about 9.3 days at this rate",
        ],
    }
    assert top_reason(rec) == "too little evidence: users per arm a: 66, b: 54; needs 100 (about 9.3 days at this rate)"


def test_run_index_lists_scenario_decision_reason_and_lift(tmp_path):
    import json

    from abkit.report import write_outputs_index

    for name, started, decision in (
        ("old", "2026-01-01T10:00:00+00:00", "keep"),
        ("new", "2026-02-01T10:00:00+00:00", "continue"),
    ):
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(
            json.dumps(
                {
                    "run_name": name,
                    "started": started,
                    "ok": True,
                    "params_files": ["params/scenarios/aa.yaml"],
                    "parameters": {},
                }
            )
        )
        (run / "20_analyze.json").write_text(json.dumps(_results(decision=decision)))
    (tmp_path / "broken").mkdir()
    broken = {"run_name": "broken", "started": "2026-03-01", "ok": False}
    (tmp_path / "broken" / "run.json").write_text(json.dumps(broken))
    page = write_outputs_index(tmp_path).read_text()
    assert page.index(">broken<") < page.index(">new<") < page.index(">old<")  # newest first
    assert page.count(">aa<") == 2 and "Keep the control" in page and "Continue the test" in page
    assert "+4 %<br>(−1 % to +9 %)" in page  # the always-valid relative interval, rounded to its width
    assert not E_NUMBER.search(page)


def test_scorecard_axis_survives_zero_and_missing_intervals():
    res = _results()
    for e in res["effects"]:
        e.update(
            estimate=0.0,
            ci_low=0.0,
            ci_high=0.0,
            seq_ci_low=0.0,
            seq_ci_high=0.0,
            relative=0.0,
            relative_ci_low=0.0,
            relative_ci_high=0.0,
        )
    assert "<span>−0.10 %</span><span>0</span><span>+0.10 %</span>" in Scorecard(res).to_html()  # smallest axis
    assert "No metric rows yet" in Scorecard({**res, "effects": []}).to_html()


def test_pictures_draw_from_plain_tables_and_say_when_labels_are_missing():
    import pandas as pd

    from abkit.plots import confusion_plot

    rows = pd.DataFrame(
        {
            "variant": ["a", "a", "a", "b"],
            "label": ["x", "x", "y", "y"],
            "predicted_label": ["x", "y", "y", "y"],
            "n": [3, 1, 4, 2],
        }
    )
    fig = confusion_plot(rows, ["b", "a"])
    texts = [t.get_text() for ax in fig.axes[1:] for t in ax.texts]
    assert [ax.get_title() for ax in fig.axes] == ["b", "a"]
    assert texts[:4] == ["75 %\n(3)", "25 %\n(1)", "0 %\n(0)", "100 %\n(4)"]  # rows: true x, true y
    empty = confusion_plot(pd.DataFrame.from_records([]))
    assert [t.get_text() for t in empty.axes[0].texts] == ["no labelled predictions yet"]
