"""Parameter discovery, merging and validation (no kernel needed)."""

from __future__ import annotations

import pytest

from abkit import params as P
from abkit.errors import ParameterError

CELL = """run_dir: str = "outputs/dev"  # set by abkit run
seed: int = 42  # one seed for the whole run [min: 0]
alpha: float = 0.05  # significance level [gt: 0, lt: 1]
dataset: str = "synthetic"  # corpus [choices: synthetic | uci:amazon]
plots: bool = True  # draw figures
"""


@pytest.fixture
def known():
    return P.parse_parameters_cell(CELL, "20_analyze")


def test_parse_types_defaults_help_and_constraints(known):
    assert set(known) == {"run_dir", "seed", "alpha", "dataset", "plots"}
    assert known["alpha"].type == "float" and known["alpha"].default == 0.05
    assert known["alpha"].greater_than == 0 and known["alpha"].less_than == 1
    assert known["alpha"].help == "significance level"
    assert known["seed"].minimum == 0
    assert known["dataset"].choices == ("synthetic", "uci:amazon")


def test_validate_accepts_and_coerces(known):
    out = P.validate({"alpha": 1 / 10, "seed": 7, "dataset": "uci:amazon", "plots": False}, known)
    assert out == {"alpha": 0.1, "seed": 7, "dataset": "uci:amazon", "plots": False}
    assert isinstance(P.validate({"alpha": 0}, {"alpha": P.ParamSpec("alpha", "float", 0.5)})["alpha"], float)


def test_unknown_parameter_suggests_closest(known):
    with pytest.raises(ParameterError, match=r"unknown parameter 'alhpa'.*Did you mean 'alpha'"):
        P.validate({"alhpa": 0.1}, known)


@pytest.mark.parametrize(
    ("name", "value", "pattern"),
    [
        ("seed", "seven", r"'seed' = 'seven' has type str; it must be an int"),
        ("seed", True, r"'seed' = True has type bool"),
        ("seed", 1.5, r"'seed' = 1.5 has type float"),
        ("alpha", 1.5, r"'alpha' = 1.5 is too large: it must be a float > 0 < 1"),
        ("alpha", 0, r"'alpha' = 0.0 is too small"),
        ("seed", -1, r"'seed' = -1 is below the minimum"),
        (
            "dataset",
            "imdb",
            r"'dataset' = 'imdb' is not an allowed choice: it must be one of 'synthetic', 'uci:amazon'",
        ),
    ],
)
def test_wrong_type_or_range_names_key_value_and_allowed(known, name, value, pattern):
    with pytest.raises(ParameterError, match=pattern):
        P.validate({name: value}, known)


def test_run_dir_is_reserved(known):
    with pytest.raises(ParameterError, match="--run-name"):
        P.validate({"run_dir": "/tmp/x"}, known)


def test_merge_later_files_win_then_overrides(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("seed: 1\nalpha: 0.1\nstart_date: 2026-11-01\n")
    b.write_text("seed: 2\n")
    merged = P.merge_params([a, b], ["alpha=0.2", "dataset=uci:amazon", "name="])
    assert merged == {"seed": 2, "alpha": 0.2, "start_date": "2026-11-01", "dataset": "uci:amazon", "name": ""}


def test_missing_and_malformed_params_files(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        P.load_params_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\nalpha: 0.1\n")
    with pytest.raises(ParameterError, match=r"not valid YAML at line \d+"):
        P.load_params_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="not a mapping"):
        P.load_params_file(listy)


def test_override_needs_key_value():
    with pytest.raises(ParameterError, match="key=value"):
        P.parse_override("seed")


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "x..y", "/abs", "", "a b", "a\\b"])
def test_bad_run_names_are_refused(name):
    with pytest.raises(ParameterError, match="run name"):
        P.check_run_name(name)


def test_good_run_name():
    assert P.check_run_name("trial-1.v2_b") == "trial-1.v2_b"


def test_parameters_cell_lines_must_be_annotated():
    with pytest.raises(ParameterError, match="name: type = default"):
        P.parse_parameters_cell("seed = 42\n", "x")
    with pytest.raises(ParameterError, match="has type 'list'"):
        P.parse_parameters_cell("xs: list = [1]\n", "x")
    with pytest.raises(ParameterError, match="contains '=', which makes papermill drop"):
        P.parse_parameters_cell("x: int = 1  # help (0 = off)\n", "x")
    with pytest.raises(ParameterError, match="unknown constraint 'above'"):
        P.parse_parameters_cell("x: int = 1  # help [above: 0]\n", "x")


def test_conflicting_types_across_notebooks(tmp_path):
    from conftest import write_notebook

    a = write_notebook(tmp_path / "00_a.ipynb", "seed: int = 1  # s\n")
    b = write_notebook(tmp_path / "10_b.ipynb", "seed: str = 'x'  # s\n")
    with pytest.raises(ParameterError, match="declare it with one type"):
        P.known_parameters([a, b])
