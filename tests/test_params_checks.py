"""Every parameter of every notebook is checked before the first notebook starts (issue 12).

The real project notebooks are read; ``run_pipeline`` is replaced, so a test fails if a bad value would
have reached any notebook.
"""

from __future__ import annotations

import math
import string

import pytest
import yaml
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abkit import cli
from abkit import params as P
from abkit.errors import AbkitError, ParameterError

NOTEBOOKS = str(ROOT / "notebooks")


@pytest.fixture
def calls(monkeypatch):
    seen = []

    class Summary:
        run_dir = "outputs/x"

    monkeypatch.setattr("abkit.report.run_pipeline", lambda params, **kw: seen.append(params) or Summary())
    return seen


def _run(*args: str) -> list[str]:
    return ["run", "--notebooks", NOTEBOOKS, "--run-name", "t", "--no-progress", *args]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # NaN and inf: range checks against NaN are always false, so they used to pass.
        ("alpha=.nan", "parameter 'alpha' = nan is not a finite number"),
        ("coverage=.nan", "parameter 'coverage' = nan is not a finite number"),
        ("label_delay_days=.nan", "parameter 'label_delay_days' = nan is not a finite number"),
        ("requests_per_day=.inf", "parameter 'requests_per_day' = inf is not a finite number"),
        ("sequential_tuning=.inf", "parameter 'sequential_tuning' = inf is not a finite number"),
        ("guardrail_latency_p95_ms=-.inf", "parameter 'guardrail_latency_p95_ms' = -inf is not a finite number"),
        # Finite but senseless: a rate no user can reach, delays that overflow a timestamp.
        ("requests_per_day=1.0e300", "parameter 'requests_per_day' = 1e+300 is above the maximum"),
        ("label_delay_days=1.0e300", "parameter 'label_delay_days' = 1e+300 is above the maximum"),
        ("requests_sigma=1000", "parameter 'requests_sigma' = 1000.0 is above the maximum"),
        # The experiment, built as 00_setup builds it, before any model is trained.
        ("split=10/80", "parameter 'split' = '10/80' is not valid"),
        ("split=34/33/33", "parameter 'split' = '34/33/33' is not valid"),
        ("split=fifty", "parameter 'split' = 'fifty' is not valid"),
        ('experiment_key="smoke\\n"', "parameter 'experiment_key' = 'smoke\\n' is not valid"),
        ("experiment_key=../x", "parameter 'experiment_key' = '../x' is not valid"),
        ("primary_metric=acuracy", "parameter 'primary_metric' = 'acuracy' is not valid"),
        ("start_date=2024-02-30", "parameter 'start_date' = '2024-02-30' is not valid"),
        # Traffic mixes, drift, models and datasets.
        ("domain_before=amazon:lots", "parameter 'domain_before' = 'amazon:lots' is not a traffic mix"),
        ("domain_after=a:-1", "parameter 'domain_after' = 'a:-1' is not a traffic mix"),
        ("drift_day=3", "parameter 'drift_day' = 3 is not valid: a drift needs the mix"),
        ("champion_model=no_such_kind", "parameter 'champion_model' = 'no_such_kind' is not valid"),
        ("dataset=table:/no/such.csv", "the table file '/no/such.csv' does not exist"),
        ("dataset=uci:twitter", "parameter 'dataset' = 'uci:twitter' is not valid"),
    ],
)
def test_bad_values_are_refused_before_any_notebook_runs(calls, capsys, override, message):
    assert cli.main(_run("-p", override)) == 2
    err = capsys.readouterr().err
    assert not calls, "a notebook would have started"
    assert message in err, err
    assert "Traceback" not in err and "-p " in err


@pytest.mark.parametrize(
    "override",
    [
        "split=10/90",
        "experiment_key=smoke.v2",
        "primary_metric=latency_ms",
        "guardrail_latency_p95_ms=0",
        "domain_before=electronics:0.8,movies:0.2",
        "dataset=uci:amazon",
        "champion_model=abkit.models:train_model",
    ],
)
def test_good_values_pass(calls, override):
    assert cli.main(_run("--params", str(ROOT / "params" / "smoke.yaml"), "-p", override)) == 0
    assert len(calls) == 1


@pytest.mark.parametrize(("text", "value"), [("1e-3", 0.001), ("2.5E2", 250.0), (".5", 0.5), ("-1e+0", -1.0)])
def test_floats_that_yaml_reads_as_text_are_numbers(text, value):
    spec = P.ParamSpec("x", "float", 0.0)
    assert spec.check(text) == value
    with pytest.raises(ParameterError, match="has type str"):
        spec.check("nan")  # the words stay words: NaN is refused either way


@pytest.mark.parametrize(("name", "value"), [("dataset", "table:a\0b"), ("challenger_model", "m\0")])
def test_a_nul_byte_in_a_path_is_no_such_file(name, value):
    with pytest.raises(ParameterError, match=f"parameter '{name}'"):
        P.check_together({name: value})


def test_checks_only_the_notebooks_that_run(calls):
    """Re-analysing with --only 20_analyze does not re-check the setup's parameters' defaults."""
    assert cli.main(_run("--only", "20_analyze", "-p", "alpha=0.1")) == 0


def test_every_scenario_passes(calls):
    for path in [ROOT / "params" / "default.yaml", *sorted((ROOT / "params" / "scenarios").glob("*.yaml"))]:
        assert cli.main(_run("--params", str(path))) == 0, path


def test_params_folder_gets_its_own_message(tmp_path, capsys):
    assert cli.main(_run("--params", str(ROOT / "params"))) == 2
    err = capsys.readouterr().err
    assert "is a folder; pass one YAML file to --params" in err and "params/default.yaml" in err


def test_non_utf8_params_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"seed: 7\ndomain_before: caf\xe9\n")
    assert cli.main(_run("--params", str(bad))) == 2
    err = capsys.readouterr().err
    assert f"params file {str(bad)!r} is not UTF-8 text: byte 0xe9 at line 2" in err and "Traceback" not in err


def test_undecodable_argument_is_refused(calls, capsys):
    # Linux hands undecodable argv bytes to Python as lone surrogates.
    assert cli.main(_run("-p", "domain_before=caf\udce9")) == 2
    assert "parameter 'domain_before'" in capsys.readouterr().err and not calls


def test_run_name_with_trailing_newline_is_refused(calls, capsys):
    assert cli.main(["run", "--notebooks", NOTEBOOKS, "--run-name", "x\n"]) == 2
    assert "run name 'x\\n' is not allowed" in capsys.readouterr().err and not calls


# ---------------------------------------------------------------------------------------------- properties
KNOWN = P.known_parameters(sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
_names = st.one_of(st.sampled_from(sorted(KNOWN)), st.text(string.ascii_letters + "_", min_size=1, max_size=12))
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["50/50", "10/90", "1/2/3", "synthetic", "accuracy"]),
)


def _same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_names, _values, max_size=5))
def test_params_file_is_accepted_exactly_or_refused_naming_the_field(tmp_path, params):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    try:
        loaded = P.load_params_file(path)
    except ParameterError as exc:
        assert str(path) in str(exc)  # the file is the field at fault (text that is not UTF-8)
        return
    try:
        checked = P.validate(loaded, KNOWN)
        P.check_together(P.effective_values(checked, [KNOWN]))
    except ParameterError as exc:
        assert any(repr(name) in str(exc) for name in params), (params, exc)
        return
    except AbkitError as exc:  # pragma: no cover - the failure message shows what escaped
        pytest.fail(f"{type(exc).__name__} instead of ParameterError: {exc}")
    assert set(checked) == set(params)
    for name, value in params.items():  # round trip: ints become floats (or their digits) where declared
        expected = {"float": float, "str": str}.get(KNOWN[name].type, lambda v: v)(value)
        assert _same(checked[name], expected), name
        assert not (isinstance(value, float) and not math.isfinite(value))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(KNOWN)), st.text(max_size=20))
def test_overrides_are_accepted_or_refused_naming_the_parameter(name, raw):
    try:
        key, value = P.parse_override(f"{name}={raw}")
        checked = P.validate({key: value}, KNOWN)
        P.check_together(P.effective_values(checked, [KNOWN]))
    except ParameterError as exc:
        assert repr(name) in str(exc) or "-p" in str(exc), exc
        return
    assert key == name and set(checked) == {name}
