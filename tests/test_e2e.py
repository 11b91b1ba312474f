"""End to end, as a user runs it: ``abkit run --params params/smoke.yaml`` into a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
SCRIPT = "<script>alert('owned')</script>"


def _abkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abkit", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("outputs")
    proc = _abkit("run", "--params", "params/smoke.yaml", "--run-name", "smoke", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_every_report_json_and_index_exists(smoke_run):
    run = smoke_run / "smoke"
    for name in NOTEBOOKS:
        for suffix in (".ipynb", ".html", ".stakeholder.html", ".json"):
            assert (run / f"{name}{suffix}").is_file(), f"{name}{suffix}"
        # NaN and Infinity are the only non-finite JSON tokens; any of them fails the run.
        results = json.loads(
            (run / f"{name}.json").read_text(),
            parse_constant=lambda c, name=name: pytest.fail(f"{name}.json holds {c}"),
        )
        assert results
    index = (run / "index.html").read_text()
    assert all(f'href="{name}.html"' in index for name in NOTEBOOKS)
    assert "smoke/index.html" in (smoke_run / "index.html").read_text()
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["ok"] and recorded["provenance"]["seed"] == 7
    assert recorded["provenance"]["packages"]["duckdb"] != "not installed"


def test_reports_embed_figures_and_provenance(smoke_run):
    run = smoke_run / "smoke"
    for name in NOTEBOOKS:
        html = (run / f"{name}.html").read_text()
        assert "data:image/png;base64," in html, f"{name}.html has no figure"
        assert "Run provenance" in html and "seed 7" in html and "duckdb" in html


def test_analysis_json_has_the_documented_shape(smoke_run):
    results = json.loads((smoke_run / "smoke" / "20_analyze.json").read_text())
    names = {(m["name"], m["variant"]) for m in results["metrics"]}
    assert {"accuracy", "confidence", "latency_ms"} <= {n for n, _ in names}
    for row in results["metrics"]:
        assert set(row) >= {"name", "variant", "estimate", "ci_low", "ci_high", "p_value", "method", "n"}
    assert 0 <= results["srm"]["p_value"] <= 1
    assert results["recommendation"]["decision"] in {"ship", "keep", "continue", "stop", "invalid"}
    assert isinstance(results["recommendation"]["reasons"], list) and results["recommendation"]["reasons"]


def test_logged_markup_renders_as_text(smoke_run):
    """A prediction whose text is a <script> shows up escaped in the re-rendered analysis report."""
    from abkit.experiment import Experiment
    from abkit.log import PredictionLog

    run = smoke_run / "smoke"
    exp = Experiment.load(run / "experiment.json")
    log = PredictionLog(run / "log")
    with log.writer(exp.key, exp.variant_names) as writer:
        writer.append(
            {
                "variant": exp.variant_names[1],
                "unit_id": "u-evil",
                "request_id": "r-evil",
                "ts": datetime.fromisoformat(exp.start + "T12:00:00+00:00"),
                "text": SCRIPT,
                "predicted_label": "positive",
                "confidence": 0.5,
                "latency_ms": 3.0,
                "model_name": "m",
                "model_version": "1",
            }
        )
    proc = _abkit(
        "run",
        "--params",
        "params/smoke.yaml",
        "--run-name",
        "smoke",
        "--output-dir",
        str(smoke_run),
        "--only",
        "20_analyze",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for page in ("20_analyze.html", "20_analyze.stakeholder.html"):
        html = (run / page).read_text()
        assert "&lt;script&gt;alert(" in html, page
        assert SCRIPT not in html


def test_every_page_is_inert_and_self_contained(smoke_run, browser):
    """Every generated page in headless Chromium: no console error, no request, no script (after the logged
    <script> of the test above has been re-rendered)."""
    pages = sorted(smoke_run.rglob("*.html"))
    assert len(pages) == 2 + 2 * len(NOTEBOOKS)  # two indexes, a report and a stakeholder page per notebook
    for page in pages:
        visit = browser.open(page)
        visit.assert_clean()
        assert visit.title


def test_an_unimportable_model_factory_is_refused_before_any_notebook_runs(tmp_path):
    proc = _abkit(
        "run",
        "--params",
        "params/smoke.yaml",
        "-p",
        "champion_model=no_such_package.models:build",
        "--run-name",
        "refused",
        "--output-dir",
        str(tmp_path),
        "--no-progress",
    )
    assert proc.returncode == 2
    assert "champion_model" in proc.stderr and "no_such_package" in proc.stderr and "models_path" in proc.stderr
    assert not (tmp_path / "refused" / "00_setup.ipynb").exists()


def test_a_failing_notebook_exits_non_zero_with_one_message(tmp_path):
    # the factory imports (checked before the run) but fails when 00_setup builds the model
    (tmp_path / "boom_models.py").write_text("def build(**options):\n    raise RuntimeError('boom')\n")
    proc = _abkit(
        "run",
        "--params",
        "params/smoke.yaml",
        "-p",
        "champion_model=boom_models:build",
        "-p",
        f"models_path={tmp_path}",
        "--run-name",
        "broken",
        "--output-dir",
        str(tmp_path),
        "--no-progress",
    )
    assert proc.returncode == 1
    assert "notebook 00_setup failed in cell" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "broken" / "00_setup.html").is_file()
    assert "failed" in (tmp_path / "broken" / "index.html").read_text()


def _run_scenario(tmp_path: Path, scenario: str, *extra: str) -> subprocess.CompletedProcess:
    """``abkit run`` of a scenario file (calibration off) into ``tmp_path/<scenario>``."""
    return _abkit(
        "run",
        "--params",
        f"params/scenarios/{scenario}.yaml",
        "-p",
        "calibration_sims=0",
        "--run-name",
        scenario,
        "--output-dir",
        str(tmp_path),
        "--no-progress",
        *extra,
    )


@pytest.mark.parametrize(
    ("scenario", "allowed"),
    [("aa", {"keep", "continue", "stop"}), ("worse_challenger", {"keep", "stop"})],
)
def test_scenarios_reach_their_story(tmp_path, scenario, allowed):
    """The TF-IDF-only scenarios, run as a user would: an A/A test never ships, a worse model is kept out."""
    proc = _run_scenario(tmp_path, scenario)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / scenario / "20_analyze.json").read_text())
    assert results["srm"]["p_value"] > 0.001
    assert results["recommendation"]["decision"] in allowed, results["recommendation"]
    drift = json.loads((tmp_path / scenario / "30_drift.json").read_text())
    assert drift["alarms"] == [], drift["verdict"]  # no shift in these scenarios: the monitor stays quiet
    assert {"signal", "window", "statistic", "threshold", "alarm"} <= set(drift["checks"][0])


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "decision"), [("fast_and_as_good", "ship"), ("fast_but_worse", "keep")])
def test_the_non_inferiority_policy_ships_a_faster_model_only_when_it_is_as_good(tmp_path, scenario, decision):
    """Issue 13: MiniLM against TF-IDF under "ship if non-inferior on accuracy and faster at p50"."""
    proc = _run_scenario(tmp_path, scenario, "--only", "00_setup", "--only", "10_simulate", "--only", "20_analyze")
    assert proc.returncode == 0, proc.stderr[-3000:]
    recommendation = json.loads((tmp_path / scenario / "20_analyze.json").read_text())["recommendation"]
    assert recommendation["decision"] == decision, recommendation
    assert any("non-inferiority of accuracy" in r for r in recommendation["reasons"])
