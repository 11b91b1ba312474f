"""Project hygiene: environment.yml in sync with pyproject.toml, notebooks committed clean."""

from __future__ import annotations

import re
import tomllib

import nbformat
import pytest
import yaml
from conftest import ROOT

from abkit.params import notebook_parameters

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_is_thin_and_in_sync():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert python == "python=" + _pyproject()["project"]["requires-python"].removeprefix(">=")
    pip = next(d for d in deps if isinstance(d, dict))["pip"]
    torch_pin = next(d for d in _pyproject()["project"]["dependencies"] if d.startswith("torch"))
    assert torch_pin in pip, "environment.yml must pin torch exactly as pyproject.toml does"
    editable = next(d for d in pip if d.startswith("-e"))
    extras = set(re.search(r"\[(.*)\]", editable).group(1).split(","))
    assert extras <= set(_pyproject()["project"]["optional-dependencies"])
    makefile = (ROOT / "Makefile").read_text()
    assert f'-e ".[{",".join(sorted(extras))}]"' in makefile, "make setup and environment.yml install the same extras"
    # Nothing else: every dependency lives in pyproject.toml.
    assert len(pip) == 2 and {d for d in deps if isinstance(d, str)} == {python, "pip"}


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make report") < readme.index("papermill") and "make test" in readme


def test_there_are_pipeline_notebooks():
    assert [p.stem for p in NOTEBOOKS][:3] == ["00_setup", "10_simulate", "20_analyze"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == "abkit" and spec.get("language") == "python"
    tags = [t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])]
    assert tags.count("parameters") == 1 and "injected-parameters" not in tags
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"
    params = notebook_parameters(path)  # every line typed, defaulted and parseable
    assert {"run_dir", "seed"} <= set(params)
    assert all(spec.help for spec in params.values()), "every parameter has a comment"


@pytest.mark.parametrize("path", sorted((ROOT / "params").rglob("*.yaml")), ids=lambda p: p.name)
def test_params_files_are_valid_for_the_notebooks(path):
    from abkit.params import known_parameters, load_params_file, validate

    validate(load_params_file(path), known_parameters(NOTEBOOKS))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_the_same_parameters(path, caplog):
    """papermill must parse every parameter line (it warns and drops lines it cannot read)."""
    import papermill

    ours = notebook_parameters(path)
    theirs = papermill.inspect_notebook(str(path))
    assert set(theirs) == set(ours)
    assert "Unable to parse" not in caplog.text


def test_readme_library_example_runs(tmp_path, monkeypatch):
    """The README's Python example is executed as written (in a scratch folder)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has a python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    rec = namespace["result"].recommendation
    assert rec.decision == "invalid"  # one user is too little data, and the report says so
    assert any("user" in reason for reason in rec.reasons)
