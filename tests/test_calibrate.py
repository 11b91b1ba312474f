"""Calibration at test size: error rates within Monte-Carlo bounds of their targets."""

from __future__ import annotations

import math

import pytest

from abkit.calibrate import UserModel, calibrate
from abkit.errors import AbkitError

N = 2000
SE = math.sqrt(0.05 * 0.95 / N)  # Monte-Carlo SE of a 5 % rate


@pytest.fixture(scope="module")
def cal() -> dict:
    return calibrate(N, seed=0, looks=20)


def test_keys_and_settings(cal: dict) -> None:
    for k in ("n_sims", "fpr_fixed", "fpr_sequential", "fpr_naive_peeking", "coverage", "power", "effect",
              "users_per_sim", "fpr_fixed_mc_se"):
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
