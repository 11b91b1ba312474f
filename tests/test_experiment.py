"""Experiment definitions: validation, parsing from params/YAML/JSON, assignment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from abkit import assign as A
from abkit.errors import AbkitError
from abkit.experiment import Experiment, ExperimentError, Guardrail, Variant, parse_split


def _exp(**kw: object) -> Experiment:
    base: dict = dict(key="exp-1", variants=(Variant("control", 0.5), Variant("challenger", 0.5)))
    base.update(kw)
    return Experiment(**base)


@pytest.mark.parametrize(
    ("split", "weights"),
    [
        ("10/90", [0.1, 0.9]),
        ("50/50", [0.5, 0.5]),
        ("34/33/33", [0.34, 0.33, 0.33]),
        ("0.2/0.8", [0.2, 0.8]),
        (" 25 / 75 ", [0.25, 0.75]),
    ],
)
def test_parse_split(split: str, weights: list[float]) -> None:
    assert parse_split(split) == pytest.approx(weights)


@pytest.mark.parametrize("split", ["10/80", "100", "a/b", "0/100", "-10/110", "nan/50"])
def test_parse_split_refuses(split: str) -> None:
    with pytest.raises(ExperimentError, match="split"):
        parse_split(split)


def test_from_params_one_liner() -> None:
    exp = Experiment.from_params(
        key="sent",
        split="10/90",
        variant_names="champion,challenger",
        models="models/a,models/b",
        guardrail_latency_p95_ms=25,
        start="2024-03-01",
    )
    assert exp.variant_names == ("champion", "challenger") and exp.control == "champion"
    assert exp.weights.tolist() == [0.1, 0.9]
    assert [v.model for v in exp.variants] == ["models/a", "models/b"]
    assert exp.guardrails == (Guardrail("latency_ms", "p95", 25.0, higher_is_better=False),)
    assert exp.hash_seed == "sent" and exp.end == "2024-03-14"
    three = Experiment.from_params(key="k", split="34/33/33", variant_names="a,b,c")
    assert three.weights.sum() == pytest.approx(1.0)
    with pytest.raises(ExperimentError, match="variant_names"):
        Experiment.from_params(key="k", split="34/33/33")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key": ""}, "key"),
        ({"key": "has space"}, "key"),
        ({"variants": (Variant("control", 1.0),)}, "variants"),
        ({"variants": (Variant("a", 0.5), Variant("a", 0.5))}, "variants"),
        ({"variants": (Variant("a", 0.5), Variant("b", 0.6))}, "weight"),
        ({"variants": (Variant("a", 0.4), Variant("b", 0.4))}, "weight"),  # the SDK would equalise silently
        ({"seed": ""}, "seed"),
        ({"hash_version": 3}, "hash_version"),
        ({"coverage": 1.2}, "coverage"),
        ({"coverage": float("nan")}, "coverage"),
        ({"namespace": ("ns", 0.6, 0.4)}, "namespace"),
        ({"namespace": ("ns", 0.0)}, "namespace"),
        ({"start": "2024-13-01"}, "start"),
        ({"start": "01/03/2024"}, "start"),
        ({"duration_days": 0}, "duration_days"),
        ({"duration_days": 2.5}, "duration_days"),
        ({"primary_metric": "f2"}, "primary_metric"),
        ({"guardrails": ({"metric": "latency_ms", "statistic": "p90"},)}, "statistic"),
        (
            {
                "guardrails": (Guardrail("latency_ms", "p95", 10.0),),
                "filters": ({"seed": "h", "ranges": [[0.5, 0.2]]},),
            },
            "filters",
        ),
    ],
)
def test_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(AbkitError, match=field):
        _exp(**kwargs)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Variant("", 0.5), "name"),
        (lambda: Variant("a", 0.0), "weight"),
        (lambda: Variant("a", True), "weight"),
        (lambda: Guardrail("bleu"), "metric"),
        (lambda: Guardrail("accuracy", margin=-0.1), "margin"),
    ],
)
def test_parts_validate(make: object, field: str) -> None:
    with pytest.raises(ExperimentError, match=field):
        make()  # type: ignore[operator]


def test_weights_within_tolerance_pass() -> None:
    exp = _exp(variants=[Variant("a", 0.333333), Variant("b", 0.333333), Variant("c", 0.333334)])
    assert len(exp.ranges) == 3


def test_json_round_trip(tmp_path: Path) -> None:
    exp = _exp(
        seed="s-1",
        coverage=0.3,
        namespace=("ns", 0.1, 0.6),
        start="2024-02-29",
        duration_days=21,
        primary_metric="confidence",
        guardrails=(Guardrail("latency_ms", "p99", 5.0, False),),
        filters=(A.Filter("holdout", ((0.05, 1.0),)),),
        variants=(Variant("control", 0.25, "m/a"), Variant("challenger", 0.75, "m/b")),
    )
    path = exp.save(tmp_path / "sub" / "experiment.json")
    assert json.loads(path.read_text())["variants"][1] == {"name": "challenger", "weight": 0.75, "model": "m/b"}
    back = Experiment.load(path)
    assert back == exp
    ids = np.strings.add("u", np.arange(5000).astype("U4"))
    assert np.array_equal(back.assign(ids), exp.assign(ids))


def test_from_yaml_nested_and_top_level(tmp_path: Path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text(
        "seed: 42\nexperiment:\n  key: sentiment\n  start: 2024-03-01\n  variants:\n"
        "    - {name: control, weight: 0.1, model: models/control}\n"
        "    - {name: challenger, weight: 0.9}\n"
        "  guardrails:\n    - {metric: latency_ms, statistic: p95, margin: 20, higher_is_better: false}\n"
    )
    exp = Experiment.from_yaml(nested)
    assert exp.start == "2024-03-01" and exp.weights.tolist() == [0.1, 0.9]
    assert exp.guardrails[0].margin == 20.0
    flat = tmp_path / "flat.yaml"
    flat.write_text("key: sentiment\nsplit: 10/90\nvariant_names: control,challenger\nstart: 2024-03-01\n")
    assert Experiment.from_yaml(flat).ranges == exp.ranges
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment:\n  key: k\n  variants: []\n  colour: red\n")
    with pytest.raises(ExperimentError, match="colour"):
        Experiment.from_yaml(bad)


def test_assign_one_agrees_with_assign_and_ramping_keeps_users() -> None:
    exp = Experiment.from_params(key="ramp", split="10/90", coverage=0.1)
    ids = [f"user-{i}" for i in range(3000)]
    idx = exp.assign(ids)
    names = [exp.assign_one(u) for u in ids]
    assert names == [None if i < 0 else exp.variant_names[i] for i in idx]
    wider = exp.with_coverage(0.5).assign(ids)
    assert np.array_equal(wider[idx >= 0], idx[idx >= 0])


def test_namespaces_make_experiments_exclusive() -> None:
    a = _exp(key="a", namespace=("homepage", 0.0, 0.5))
    b = _exp(key="b", namespace=("homepage", 0.5, 1.0))
    ids = np.strings.add("u", np.arange(20_000).astype("U5"))
    assert not np.any((a.assign(ids) >= 0) & (b.assign(ids) >= 0))


def test_start_defaults_to_today_utc():
    import datetime as dt

    before = dt.datetime.now(dt.UTC).date()
    exp = Experiment.from_params(key="today", split="50/50")
    after = dt.datetime.now(dt.UTC).date()
    assert exp.start in (before.isoformat(), after.isoformat())
    assert Experiment.from_dict(exp.to_dict()).start == exp.start  # a saved test keeps its first day
