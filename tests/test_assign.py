"""GrowthBook-exact hashing, bucket ranges, namespaces, filters; scalar and vectorized agree."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from abkit import assign as A
from abkit.errors import AbkitError

# Hash vectors from GrowthBook's SDK test suite, packages/sdk-js/test/cases.json ("hash" section,
# specVersion 0.8.0): (seed, value, hash version, expected bucket or None).
GROWTHBOOK_HASH_CASES = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
    ("abc", "def", 99, None),
]


@pytest.mark.parametrize(("seed", "value", "version", "expected"), GROWTHBOOK_HASH_CASES)
def test_growthbook_hash_vectors(seed: str, value: str, version: int, expected: float | None) -> None:
    assert A.hash(seed, value, version) == expected
    got = A.hash_many(seed, [value], version)[0]
    assert np.isnan(got) if expected is None else got == expected


def test_fnv1a32_known_values_and_utf16() -> None:
    # FNV-1a 32 offset basis and the published value for "a" (Fowler/Noll/Vo test suite).
    assert A.fnv1a32("") == 0x811C9DC5
    assert A.fnv1a32("a") == 0xE40C292C
    # an emoji is two UTF-16 code units, hashed like the explicit surrogate pair
    assert A.fnv1a32("😀") == A.fnv1a32("\ud83d\ude00")
    assert A.fnv1a32("😀") != A.fnv1a32("\ud83d")


def test_decimal_rehash_of_small_inner_hash() -> None:
    # fnv1a32("exp" + "user-195390") == 6277 < 100000: the decimal string has no zero padding
    assert A.fnv1a32("expuser-195390") == 6277
    assert A.hash("exp", "user-195390") == (A.fnv1a32("6277") % 10000) / 10000
    assert A.hash_many("exp", ["user-195390", "user-46572"]).tolist() == [
        A.hash("exp", "user-195390"),
        A.hash("exp", "user-46572"),
    ]


# Cases derived from the getBucketRanges specification (clamped coverage, equal-weight fallback,
# fixed range starts): (n, coverage, weights, expected ranges).
BUCKET_CASES = [
    (2, 1.0, None, [(0, 0.5), (0.5, 1)]),
    (2, 0.5, None, [(0, 0.25), (0.5, 0.75)]),
    (2, 0.0, None, [(0, 0), (0.5, 0.5)]),
    (4, 1.0, None, [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    (2, 1.0, [0.4, 0.6], [(0, 0.4), (0.4, 1)]),
    (3, 0.2, [0.2, 0.3, 0.5], [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    (2, -0.2, None, [(0, 0), (0.5, 0.5)]),
    (2, 1.5, None, [(0, 0.5), (0.5, 1)]),
    (2, 1.0, [0.4, 0.1], [(0, 0.5), (0.5, 1)]),  # sum 0.5: equal weights
    (2, 1.0, [0.7, 0.6], [(0, 0.5), (0.5, 1)]),  # sum 1.3: equal weights
    (2, 1.0, [0.4, 0.3, 0.3], [(0, 0.5), (0.5, 1)]),  # wrong length: equal weights
    (0, 1.0, None, []),
]


@pytest.mark.parametrize(("n", "coverage", "weights", "expected"), BUCKET_CASES)
def test_bucket_ranges(n: int, coverage: float, weights: list[float] | None, expected: list) -> None:
    got = A.bucket_ranges(n, coverage, weights)
    assert len(got) == len(expected)
    for (s, e), (es, ee) in zip(got, expected, strict=True):
        assert s == pytest.approx(es) and e == pytest.approx(ee)


@pytest.mark.parametrize(
    ("n", "ranges", "expected"),
    [
        (0.2, [(0, 0.5), (0.5, 1)], 0),
        (0.6, [(0, 0.5), (0.5, 1)], 1),
        (0.5, [(0, 0.5), (0.5, 1)], 1),  # start inclusive, end exclusive
        (0.3, [(0, 0.25), (0.5, 0.75)], -1),  # the coverage gap
        (0.5, [(0, 0.5), (0.5, 0.5)], -1),
        (None, [(0, 1)], -1),
    ],
)
def test_choose_variation(n: float | None, ranges: list, expected: int) -> None:
    assert A.choose_variation(n, ranges) == expected
    if n is not None:
        assert A.choose_many(np.array([n]), ranges).tolist() == [expected]


def _ids(n: int, prefix: str = "user-") -> np.ndarray:
    return np.strings.add(prefix, np.arange(n).astype(f"U{len(str(n))}"))


def test_namespace_matches_v1_hash_and_splits_traffic() -> None:
    ids = _ids(20_000)
    n = A.hash_many("__checkout", ids, 1)
    a = A.in_namespace_many(ids, ("checkout", 0.0, 0.4))
    b = A.in_namespace_many(ids, ("checkout", 0.4, 1.0))
    assert np.array_equal(a, (n >= 0) & (n < 0.4))
    assert not np.any(a & b) and np.all(a | b)
    for uid in ids[:300]:
        assert A.in_namespace(str(uid), ("checkout", 0.0, 0.4)) == (A.hash("__checkout", str(uid), 1) < 0.4)


def test_namespace_exclusive_experiments_share_no_unit() -> None:
    ids = _ids(50_000)
    r = A.bucket_ranges(2)
    x = A.assign_many(ids, seed="exp-x", ranges=r, namespace=("ns", 0.0, 0.5))
    y = A.assign_many(ids, seed="exp-y", ranges=r, namespace=("ns", 0.5, 1.0))
    assert not np.any((x >= 0) & (y >= 0))
    assert abs((x >= 0).mean() - 0.5) < 0.02


def test_holdout_filter_scalar_and_vectorized() -> None:
    holdout = A.Filter("holdout-q1", ((0.05, 1.0),))
    ids = _ids(40_000)
    out = A.is_filtered_out_many(ids, [holdout])
    assert np.array_equal(out, A.hash_many("holdout-q1", ids) < 0.05)
    assert abs(out.mean() - 0.05) < 5 * np.sqrt(0.05 * 0.95 / ids.size)
    assign = A.assign_many(ids, seed="e", ranges=A.bucket_ranges(2), filters=[holdout])
    assert np.all(assign[out] == -1) and np.all(assign[~out] >= 0)
    for uid in ids[:200]:
        assert A.is_filtered_out(str(uid), [holdout]) == out[int(str(uid)[5:])]
    assert A.is_filtered_out("x", [A.Filter("s", ((0, 1),), 99)])  # unknown hash version filters out


def test_ramping_coverage_moves_nobody() -> None:
    ids = _ids(200_000)
    weights = [0.1, 0.9]
    at10 = A.assign_many(ids, seed="ramp", ranges=A.bucket_ranges(2, 0.1, weights))
    at50 = A.assign_many(ids, seed="ramp", ranges=A.bucket_ranges(2, 0.5, weights))
    included = at10 >= 0
    assert np.array_equal(at50[included], at10[included])  # nobody switches variant
    assert np.all(at50[included] >= 0)  # nobody included at 10 % drops out at 50 %
    assert abs(included.mean() - 0.1) < 0.005 and abs((at50 >= 0).mean() - 0.5) < 0.005


def test_split_10_90_within_binomial_bounds_over_a_million_ids() -> None:
    n = 1_000_000
    assigned = A.assign_many(_ids(n), seed="split-test", ranges=A.bucket_ranges(2, 1.0, [0.1, 0.9]))
    assert np.all(assigned >= 0)
    control = int(np.count_nonzero(assigned == 0))
    sigma = np.sqrt(n * 0.1 * 0.9)
    assert abs(control - 0.1 * n) < 5 * sigma  # 5-sigma binomial bound


def _random_ids(rng: random.Random, n: int, alphabet: list[str]) -> list[str]:
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(n)]


@pytest.mark.parametrize("version", [1, 2])
def test_scalar_equals_vectorized_on_random_unicode_ids(version: int) -> None:
    rng = random.Random(7)
    alphabet = list("abcXYZ0189_-@. ") + ["é", "ß", "中", "😀", "𝔘", "\u0000"]
    ids = _random_ids(rng, 6_000, alphabet) + ["", "😀😀", "a\ud800b"]  # empty, emoji, lone surrogate
    for seed in ("", "exp-1", "s😀ed"):
        expected = np.array([A.hash(seed, x, version) for x in ids])
        assert np.array_equal(A.hash_many(seed, ids, version), expected)
        assert np.array_equal(A.hash_many(seed, tuple(ids), version), expected)
        assert np.array_equal(A.hash_many(seed, pd.Series(ids, dtype=object), version), expected)
    # numpy str arrays cannot hold lone surrogates and drop trailing NULs: compare on the ids they keep
    kept = [x for x in ids if "\ud800" not in x and not x.endswith("\u0000")]
    expected = np.array([A.hash("exp-1", x, version) for x in kept])
    assert np.array_equal(A.hash_many("exp-1", np.array(kept), version), expected)
    assert np.array_equal(A.hash_many("exp-1", pa.array(kept), version), expected)
    assert np.array_equal(A.hash_many("exp-1", pd.Series(kept), version), expected)


def test_scalar_equals_vectorized_with_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(A, "_PARALLEL_MIN", 0)
    monkeypatch.setattr(A, "_CHUNK", 1_000)
    rng = random.Random(3)
    ids = _random_ids(rng, 5_000, list("abcdef0123") + ["ü", "😀"])
    ranges = A.bucket_ranges(3, 0.8, [0.2, 0.3, 0.5])
    expected = [A.assign_one(x, seed="t", ranges=ranges) for x in ids]
    for threads in (1, 2, 3):
        assert A.assign_many(ids, seed="t", ranges=ranges, threads=threads).tolist() == expected


def test_bad_ids_are_refused_with_the_index() -> None:
    with pytest.raises(AbkitError, match=r"index 2 is None"):
        A.hash_many("s", ["a", "b", None])
    with pytest.raises(AbkitError, match="single str"):
        A.hash_many("s", "user-1")
    with pytest.raises(AbkitError, match="seed must be a str"):
        A.hash(1, "a")  # type: ignore[arg-type]
    with pytest.raises(AbkitError, match="namespace"):
        A.in_namespace("a", ("ns", 0.5))  # type: ignore[arg-type]


def test_empty_input() -> None:
    assert A.hash_many("s", []).shape == (0,)
    assert A.assign_many(np.array([], dtype=str), seed="s", ranges=A.bucket_ranges(2)).shape == (0,)
