"""Calibration at test size: error rates within Monte-Carlo bounds of their targets."""

from __future__ import annotations

import math

import pytest

from abkit.calibrate import UserModel, calibrate, calibrate_decisions
from abkit.errors import AbkitError

N = 2000
SE = math.sqrt(0.05 * 0.95 / N)  # Monte-Carlo SE of a 5 % rate


@pytest.fixture(scope="module")
def cal() -> dict:
    return calibrate(N, seed=0, looks=20)


def test_keys_and_settings(cal: dict) -> None:
    for k in (
        "n_sims",
        "fpr_fixed",
        "fpr_sequential",
        "fpr_naive_peeking",
        "coverage",
        "power",
        "effect",
        "users_per_sim",
        "fpr_fixed_mc_se",
    ):
        assert k in cal
    assert cal["n_sims"] == N and cal["looks"] == 20


def test_error_rates_within_monte_carlo_bounds(cal: dict) -> None:
    assert abs(cal["fpr_fixed"] - 0.05) < 4 * SE
    assert cal["fpr_sequential"] <= 0.05 + 3 * SE
    assert abs(cal["coverage"] - 0.95) < 4 * SE
    assert abs(cal["coverage_aa"] - 0.95) < 4 * SE
    assert cal["fpr_naive_peeking"] > 0.05 + 4 * SE  # peeking with a fixed test inflates the error
    assert cal["power"] > 0.2


def test_same_seed_same_numbers() -> None:
    a = calibrate(50, seed=3, looks=5)
    b = calibrate(50, seed=3, looks=5)
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_bad_arguments() -> None:
    with pytest.raises(AbkitError, match="n_sims"):
        calibrate(0)
    with pytest.raises(AbkitError, match="accuracy"):
        UserModel(accuracy=1.2)
    with pytest.raises(AbkitError, match="effect"):
        calibrate(10, effect=0.5)


def test_sparse_labels_keep_the_fixed_test_honest(cal: dict) -> None:
    """Issue 11, repro 4: with Welch df counting every user, 3 labelled users per arm gave 0.108 (α = 0.05).
    Degrees of freedom and variances now come from the labelled users only."""
    sparse = cal["fpr_fixed_sparse"]
    assert set(sparse) == {"3", "10", "30"}
    for k, row in sparse.items():
        assert row["fpr"] <= 0.05 + 3 * row["mc_se"] + 1e-9 or row["decision_withheld"], (k, row)
        assert row["decision_withheld"] == (int(k) < 30)
    assert sparse["30"]["fpr"] == pytest.approx(0.05, abs=4 * SE) and sparse["30"]["insufficient"] == 0
    assert sparse["3"]["insufficient"] > 0.1  # three users often agree on every label: no variance, no test


def test_decisions_through_the_real_path() -> None:
    """A few whole experiments through write_log → SQL → analyze → decide: A/A never ships in these seeds,
    a 10-point gain on 300 users per arm always does, and 3 labelled users per arm never give a verdict."""
    r = calibrate_decisions(4, seed=0, sparse=(3,))
    assert r["false_ship_rate_aa"] == 0.0 and r["ship_rate_ab"] == 1.0
    assert r["false_ship_rate_sparse"]["3"]["rate"] == 0.0
    assert r["false_ship_rate_sparse"]["3"]["decisions"] == {"continue": 4}
    assert sum(r["decisions_aa"].values()) == 4 and "SQL" in r["decision_path"]
