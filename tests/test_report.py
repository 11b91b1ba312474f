"""The notebook pipeline on tiny notebooks: reports, results, index pages, failures, escaping."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_notebook

from abkit import params as P
from abkit.errors import AbkitError, NotebookFailed
from abkit.report import run_pipeline, write_results

PARAMS = 'run_dir: str = "outputs/dev"  # set by abkit run\nseed: int = 1  # seed\n'
FIGURE = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4]); plt.show()"
)


def _pipeline(tmp_path, *notebooks, params=None, run_name="r1"):
    specs = {p.stem: P.notebook_parameters(p) for p in notebooks}
    return run_pipeline(
        params or {},
        run_name=run_name,
        notebooks=list(notebooks),
        specs=specs,
        output_root=tmp_path / "out",
        progress=False,
    )


@pytest.mark.slow
def test_pipeline_writes_reports_results_and_indexes(tmp_path):
    first = write_notebook(
        tmp_path / "nb" / "00_first.ipynb",
        PARAMS,
        FIGURE,
        "import abkit.report\n"
        "abkit.report.write_results(run_dir, '00_first', {'seed': seed, 'headline': 'made <b>it</b>'})",
    )
    summary = _pipeline(tmp_path, first, params={"seed": 7})
    run = tmp_path / "out" / "r1"
    assert summary.ok and summary.notebooks[0].status == "ok"
    for name in (
        "00_first.ipynb",
        "00_first.html",
        "00_first.stakeholder.html",
        "00_first.json",
        "index.html",
        "run.json",
    ):
        assert (run / name).exists(), name
    assert json.loads((run / "00_first.json").read_text()) == {"seed": 7, "headline": "made <b>it</b>"}
    full = (run / "00_first.html").read_text()
    assert "data:image/png;base64" in full  # the figure is embedded
    assert "hl-ipython3" in full and "hl-ipython3" not in (run / "00_first.stakeholder.html").read_text()
    assert "Run provenance" in full and "numpy" in full  # seed, parameters, versions, commit
    index = (run / "index.html").read_text()
    assert "made &lt;b&gt;it&lt;/b&gt;" in index and "<b>it</b>" not in index
    assert "r1/index.html" in (tmp_path / "out" / "index.html").read_text()
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["provenance"]["seed"] == 7 and recorded["parameters"]["seed"] == 7


@pytest.mark.slow
def test_failing_notebook_names_cell_and_keeps_partial_report(tmp_path):
    ok = write_notebook(tmp_path / "nb" / "00_ok.ipynb", PARAMS, "x = 1")
    bad = write_notebook(tmp_path / "nb" / "10_bad.ipynb", PARAMS, "y = 2", "raise ValueError('boom here')")
    never = write_notebook(tmp_path / "nb" / "20_never.ipynb", PARAMS, "z = 3")
    with pytest.raises(NotebookFailed, match=r"notebook 10_bad failed in cell \d+ .*ValueError: boom here"):
        _pipeline(tmp_path, ok, bad, never)
    run = tmp_path / "out" / "r1"
    assert (run / "10_bad.html").exists()  # the partial report shows where it broke
    assert "boom here" in (run / "10_bad.html").read_text()
    recorded = json.loads((run / "run.json").read_text())
    assert [nb["status"] for nb in recorded["notebooks"]] == ["ok", "failed", "not run"]
    assert "failed" in (tmp_path / "out" / "index.html").read_text()


def test_write_results_refuses_non_finite(tmp_path):
    with pytest.raises(AbkitError, match=r"'metrics\[0\].p_value' is nan"):
        write_results(tmp_path, "x", {"metrics": [{"p_value": float("nan")}]})
    assert not (tmp_path / "x.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output_folder_non_root(tmp_path):  # pragma: no cover - CI runs as root
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    nb = write_notebook(tmp_path / "nb" / "00_a.ipynb", PARAMS)
    with pytest.raises(AbkitError, match="cannot write to the output folder"):
        run_pipeline({}, run_name="r", notebooks=[nb], specs={"00_a": {}}, output_root=locked, progress=False)


def test_output_folder_that_is_a_file(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    nb = write_notebook(tmp_path / "nb" / "00_a.ipynb", PARAMS)
    with pytest.raises(AbkitError, match="cannot write to the output folder .*--output-dir"):
        run_pipeline({}, run_name="r", notebooks=[nb], specs={"00_a": {}}, output_root=blocker, progress=False)


def test_enter_project_moves_from_notebooks_to_the_root(tmp_path, monkeypatch):
    from abkit.report import enter_project

    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    enter_project()
    assert Path.cwd() == tmp_path
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    enter_project()
    assert Path.cwd() == other  # anywhere else nothing moves


def test_ensure_kernel_registers_the_abkit_kernel_once_when_missing(tmp_path):
    import json
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    from abkit.report import ensure_kernel

    manager = KernelSpecManager(kernel_dirs=[str(tmp_path / "share" / "jupyter" / "kernels")])
    manager.ensure_native_kernel = False
    assert "abkit" not in manager.find_kernel_specs()
    folder = ensure_kernel("abkit", manager=manager, prefix=str(tmp_path))
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "abkit" / "kernel.json").read_text())
    assert folder.endswith("abkit") and spec["argv"][0] == sys.executable and spec["display_name"] == "abkit"
    assert ensure_kernel("abkit", manager=manager, prefix=str(tmp_path / "elsewhere")) == folder  # found, not redone
