"""The ``abkit`` command translates arguments into one library call; errors are one clear paragraph."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_notebook

from abkit import cli

PARAMS = (
    'run_dir: str = "outputs/dev"  # set by abkit run\nseed: int = 42  # seed [min: 0]\n'
    "alpha: float = 0.05  # significance level [gt: 0, lt: 1]\n"
)


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    write_notebook(folder / "00_setup.ipynb", PARAMS)
    write_notebook(
        folder / "20_analyze.ipynb", 'run_dir: str = "x"  # set\nlabel_rate: float = 0.5  # share [min: 0, max: 1]\n'
    )
    return folder


@pytest.fixture
def calls(monkeypatch):
    seen = []

    class Summary:
        run_dir = "outputs/x"

    def fake(params, **kwargs):
        seen.append((params, kwargs))
        return Summary()

    monkeypatch.setattr("abkit.report.run_pipeline", fake)
    return seen


def test_run_merges_files_then_overrides_and_calls_pipeline(tmp_path, notebooks, calls, capsys):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("seed: 1\nalpha: 0.1\n")
    b.write_text("seed: 2\n")
    code = cli.main(
        [
            "run",
            "--params",
            str(a),
            "--params",
            str(b),
            "-p",
            "label_rate=0.25",
            "--run-name",
            "t1",
            "--notebooks",
            str(notebooks),
            "--output-dir",
            str(tmp_path / "o"),
            "--only",
            "analyze",
            "--no-progress",
        ]
    )
    assert code == 0
    params, kwargs = calls[0]
    assert params == {"seed": 2, "alpha": 0.1, "label_rate": 0.25}
    assert kwargs["run_name"] == "t1" and kwargs["output_root"] == str(tmp_path / "o")
    assert [p.name for p in kwargs["notebooks"]] == ["20_analyze.ipynb"]
    assert set(kwargs["specs"]) == {"00_setup", "20_analyze"} and kwargs["progress"] is False
    assert "finished" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "alhpa=0.1"], "unknown parameter 'alhpa' = 0.1. Did you mean 'alpha'?"),
        (["-p", "seed=abc"], "parameter 'seed' = 'abc' has type str; it must be an int"),
        (["-p", "alpha=2"], "parameter 'alpha' = 2.0 is too large"),
        (["--params", "missing.yaml"], "params file 'missing.yaml' does not exist"),
        (["--run-name", "../escape"], "run name '../escape' is not allowed"),
        (["--only", "nope"], "--only 'nope' names no notebook"),
    ],
)
def test_bad_input_is_one_paragraph_with_exit_2(notebooks, calls, capsys, args, message):
    code = cli.main(["run", "--notebooks", str(notebooks), *args])
    err = capsys.readouterr().err
    assert code == 2 and not calls
    assert message in err and "Traceback" not in err and err.startswith("abkit: error:")


def test_malformed_yaml(tmp_path, notebooks, calls, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nalpha: [0.1\n")
    assert cli.main(["run", "--notebooks", str(notebooks), "--params", str(bad)]) == 2
    assert "is not valid YAML at line" in capsys.readouterr().err


def test_missing_notebook_folder(tmp_path, capsys):
    assert cli.main(["run", "--notebooks", str(tmp_path / "none")]) == 2
    assert "no notebooks named NN_*.ipynb" in capsys.readouterr().err


def test_failing_notebook_exits_1_without_traceback(notebooks, monkeypatch, capsys):
    from abkit.errors import NotebookFailed

    def boom(params, **kwargs):
        raise NotebookFailed("notebook 10_simulate failed in cell 4 ('x'): ValueError: bad")

    monkeypatch.setattr("abkit.report.run_pipeline", boom)
    assert cli.main(["run", "--notebooks", str(notebooks)]) == 1
    err = capsys.readouterr().err
    assert "10_simulate failed in cell 4" in err and "index.html" in err and "Traceback" not in err


def test_download_data_passes_destination_and_checksum(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(dest, *, sha256="pinned"):
        seen.update(dest=dest, sha256=sha256)
        return Path(dest)

    monkeypatch.setattr("abkit.data.download_uci", fake)
    assert cli.main(["download-data", "--dest", str(tmp_path), "--sha256", "ab12"]) == 0
    assert seen == {"dest": str(tmp_path), "sha256": "ab12"}
    assert f"ABKIT_DATA_DIR={tmp_path}" in capsys.readouterr().out
    assert cli.main(["download-data", "--dest", str(tmp_path)]) == 0
    assert seen["sha256"] == "pinned"  # without --sha256 the library's pinned digest applies


def test_calibrate_prints_one_json_object(capsys):
    import json

    assert cli.main(["calibrate", "--sims", "200", "--seed", "3", "--decision-sims", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_sims"] == 200 and result["decision_sims"] == 2
    assert 0 <= result["false_ship_rate_aa"] <= 1
    assert set(result["fpr_fixed_sparse"]) == {"3", "10", "30"} == set(result["false_ship_rate_sparse"])
    for key in ("fpr_fixed", "fpr_sequential", "fpr_naive_peeking", "coverage", "power"):
        assert 0 <= result[key] <= 1
    # With 200 A/A tests, peeking 20 times inflates false positives far above the sequential method's.
    assert result["fpr_naive_peeking"] > result["fpr_sequential"]


def test_calibrate_refuses_zero_sims(capsys):
    assert cli.main(["calibrate", "--sims", "0"]) == 2
    assert "--sims 0 must be a positive number" in capsys.readouterr().err


def test_unwritable_output_folder_exits_2(tmp_path, notebooks, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert cli.main(["run", "--notebooks", str(notebooks), "--output-dir", str(blocker), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "--output-dir" in err and "Traceback" not in err
