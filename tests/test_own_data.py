"""Your own data and model: tables in four formats with columns by name or position, clear errors, a user
model from ``models_path``, ``abkit params``, and a headerless TSV run end to end through ``abkit run``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from abkit.cli import main
from abkit.data import DataError, TableSpec, load_table, prepare_dataset
from abkit.models import ModelError, train_model, use_models_path

WORDS = {
    "spam": ["win", "free", "prize", "click", "offer", "cash"],
    "ham": ["meeting", "lunch", "report", "call", "tomorrow", "notes"],
}


def _rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = "spam" if rng.random() < 0.4 else "ham"
        words = rng.choice(WORDS[label], size=4).tolist() + rng.choice(sum(WORDS.values(), []), size=1).tolist()
        out.append((label, f'{" ".join(words)} "quoted {i}'))  # an unmatched quote inside the text
    return out


def _headerless_tsv(path: Path, n: int = 300) -> Path:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in _rows(n)), encoding="utf-8")
    return path


def test_headerless_tsv_label_first_keeps_quotes_literally(tmp_path):
    path = _headerless_tsv(tmp_path / "mail.tsv", 20)
    df = load_table(path, spec=TableSpec(text_column="1", label_column="0", header=False))
    assert len(df) == 20 and set(df.label) <= {"spam", "ham"}
    assert df.text[3].endswith('"quoted 3')  # the quote is text, not CSV quoting


def test_formats_by_suffix_and_by_table_format(tmp_path):
    frame = pd.DataFrame({"body": ["good", "bad", "fine", "awful"], "y": ["p", "n", "p", "n"], "domain": "d1"})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t_no_suffix", index=False, sep="\t")
    for name, fmt in (("t.parquet", "auto"), ("t.jsonl", "auto"), ("t.csv", "auto"), ("t_no_suffix", "tsv")):
        df = load_table(tmp_path / name, spec=TableSpec("body", "y", format=fmt))
        assert df.text.tolist() == ["good", "bad", "fine", "awful"], name
        assert df.label.tolist() == ["p", "n", "p", "n"] and df.domain.tolist() == ["d1"] * 4
    with pytest.raises(DataError, match=r"suffix '\(none\)'.*table_format"):
        load_table(tmp_path / "t_no_suffix", spec=TableSpec("body", "y"))


def test_clear_errors_for_bad_tables(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="header but no rows"):
        load_table(tmp_path / "header.csv")
    (tmp_path / "latin.csv").write_bytes("text,label\ngood,p\ncaf\xe9 bad,n\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv' line 3: .*not valid utf-8.*table_encoding"):
        load_table(tmp_path / "latin.csv")
    df = load_table(tmp_path / "latin.csv", spec=TableSpec(encoding="latin-1"))
    assert df.text[1] == "café bad"
    with pytest.raises(DataError, match=r"text_column='txt' names no column.*Did you mean 'text'"):
        load_table(tmp_path / "latin.csv", spec=TableSpec("txt", "label", encoding="latin-1"))
    with pytest.raises(DataError, match="label_column=5 but 'latin.csv' has 2 column"):
        load_table(tmp_path / "latin.csv", spec=TableSpec("text", 5, encoding="latin-1"))
    with pytest.raises(DataError, match="table_header=false.*0-based positions"):
        TableSpec("text", "label", header=False)
    with pytest.raises(DataError, match="table_format='xml' is unknown"):
        TableSpec(format="xml")


def test_n_train_zero_trains_on_every_row_and_a_cap_stays_optional(tmp_path):
    path = _headerless_tsv(tmp_path / "mail.tsv", 200)
    spec = TableSpec(1, 0, header=False)
    every = prepare_dataset(f"table:{path}", n_train=0, rng=0, test_fraction=0.25, table=spec)
    capped = prepare_dataset(f"table:{path}", n_train=50, rng=0, test_fraction=0.25, table=spec)
    assert len(every.train) + len(every.pool) == 200  # texts are unique (numbered)
    assert len(every.train) == 150 and len(capped.train) == 50


def _user_module(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "abkit_test_usermodel.py").write_text(
        "from sklearn.feature_extraction.text import CountVectorizer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n\n\n"
        "def make():\n"
        "    return make_pipeline(CountVectorizer(), LogisticRegression())\n"
    )
    return folder


def test_user_model_loads_from_models_path(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = _user_module(tmp_path / "my_models")
    with pytest.raises(ModelError, match="models_path"):
        train_model("abkit_test_usermodel:make", ["a b", "c d"] * 3, ["x", "y"] * 3, rng=0, measure_cost=False)
    assert use_models_path(folder) == folder.resolve()
    model = train_model(
        "abkit_test_usermodel:make", ["free cash", "lunch notes"] * 5, ["spam", "ham"] * 5, rng=0, measure_cost=False
    )
    assert model.predict(["free cash now"])[0].tolist() == ["spam"]
    with pytest.raises(ModelError, match="models_path='nowhere' is not a folder"):
        use_models_path("nowhere")
    sys.modules.pop("abkit_test_usermodel", None)


def test_abkit_params_lists_every_notebook_parameter(capsys):
    from abkit.params import notebook_parameters

    assert main(["params"]) == 0
    out = capsys.readouterr().out
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"{path.stem}:" in out
        for name in notebook_parameters(path):
            assert f"  {name} " in out, (path.stem, name)
    assert "auto | csv | tsv | jsonl | parquet" in out and "> 0, < 1" in out
    assert main(["params", "setup"]) == 0
    assert "10_simulate:" not in capsys.readouterr().out


@pytest.fixture(scope="module")
def mail_run(tmp_path_factory) -> Path:
    """A headerless TSV (label first, string labels) and a user model from models_path, run with parameters only."""
    tmp = tmp_path_factory.mktemp("own")
    data = _headerless_tsv(tmp / "mail.tsv", 400)
    models = _user_module(tmp / "my_models")
    out = tmp / "outputs"
    args = [
        "-p",
        f"dataset=table:{data}",
        "-p",
        "table_header=false",
        "-p",
        "label_column=0",
        "-p",
        "text_column=1",
        "-p",
        "positive_label=spam",
        "-p",
        "champion_model=abkit_test_usermodel:make",
        "-p",
        "challenger_model=tfidf_logreg",
        "-p",
        f"models_path={models}",
        "-p",
        "n_users=200",
        "-p",
        "calibration_sims=200",
        "-p",
        "experiment_key=mail",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "abkit", "run", *args, "--run-name", "mail", "--output-dir", str(out), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "mail"


@pytest.mark.slow
def test_headerless_tsv_and_user_model_run_end_to_end(mail_run):
    setup = json.loads((mail_run / "00_setup.json").read_text())
    assert setup["n_train"] == {"champion": 280, "challenger": 280}  # every training row (70 % of 400)
    assert setup["models"]["champion"]["name"] == "make"  # the user factory, imported from models_path
    assert setup["positive_label"] == "spam"
    analysis = json.loads((mail_run / "20_analyze.json").read_text())
    assert analysis["recommendation"]["decision"] in ("ship", "keep", "continue", "stop")
    assert sum(analysis["counts"]["users"]) > 150


# numbers like 1.09e+04 or 7e-144 (not hex ids such as a commit "57e28ed"), NaN, None and Python reprs
_REPR = re.compile(
    "|".join(
        (
            r"(?<![0-9A-Za-z])\d+(?:\.\d+)?[eE][+-]?\d+(?![0-9A-Za-z])",  # 1.09e+04, 7e-144 (not a hash like 57e28ed)
            r"\bNaN\b",
            r"\bnan\b",
            r"\bNone\b",
            r"\b(?:True|False)\b(?!-)",  # missing values and booleans as Python
            r"\{'",
            r"\['",
            r"\b[A-Za-z_]\w*\((?:'|\"|\[|\{)",
            r"<(?:Figure|Axes|matplotlib|IPython)",  # reprs
            r"\b(?:ResultTable|Scorecard|DataFrame|Recommendation|array)\(",
        )
    )
)


def _layout(browser, path: Path, width: int = 1280) -> dict:
    """Page width, visible text and scorecard presence of a report at a ``width``-px viewport."""
    context = browser._chromium.new_context(offline=True, viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(path.resolve().as_uri(), wait_until="load")
        return page.evaluate("""() => ({
            scrollWidth: document.documentElement.scrollWidth,
            text: document.body.innerText,
            banner: document.querySelectorAll('.abk-banner').length,
            rows: document.querySelectorAll('.abk table')[0]?.rows.length ?? 0,
        })""")
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["00_setup", "10_simulate", "20_analyze", "30_drift", "40_rollout"])
def test_stakeholder_reports_read_well_in_a_browser(browser, mail_run, notebook):
    path = mail_run / f"{notebook}.stakeholder.html"
    page = _layout(browser, path)
    assert page["scrollWidth"] <= 1280, f"{notebook} is {page['scrollWidth']} px wide at 1280 px"
    found = sorted({m.group(0) for m in _REPR.finditer(page["text"])})
    assert not found, f"{notebook} shows {found}"
    if notebook == "20_analyze":
        assert page["banner"] == 1 and page["rows"] >= 4  # the scorecard: banner, header and >= 3 metric rows
        assert "How to read this report" in page["text"] and "chance to win" in page["text"]
    visit = browser.open(path, click_links=False)
    assert visit.page_errors == [] and visit.console_errors == []
    assert not re.findall(r'<script[^>]+src="https?:[^"]+"', path.read_text())  # self-contained: no CDN scripts


@pytest.mark.slow
def test_a_production_log_becomes_a_report_with_one_command(tmp_path):
    """The README's library snippet, at volume: log with the library, then `abkit run --only 20_analyze`."""
    from abkit.experiment import Experiment
    from abkit.log import PredictionLog

    run = tmp_path / "outputs" / "prod"
    exp = Experiment.from_params(key="prod-test", split="50/50", variant_names="champion,challenger", duration_days=14)
    exp.save(run / "experiment.json")
    rng = np.random.default_rng(3)
    users = [f"user-{i}" for i in range(600)]
    arms = np.array(exp.variant_names, dtype=object)[exp.assign(np.array(users))]  # coverage 1: every user is in
    rows = pd.DataFrame(
        {
            "variant": arms,
            "unit_id": users,
            "request_id": [f"req-{i}" for i in range(600)],
            "text": "an order",
            "predicted_label": "ok",
            "confidence": rng.uniform(0.5, 1, 600),
            "latency_ms": rng.lognormal(1, 0.3, 600),
            "model_name": "m",
            "model_version": "1",
        }
    )
    log = PredictionLog(run / "log")
    with log.writer(exp.key, exp.variant_names) as writer:
        writer.append(rows)
    labels = np.where(rng.random(len(rows)) < 0.8, "ok", "bad")
    log.append_labels(
        [{"experiment": exp.key, "request_id": r, "label": lab} for r, lab in zip(rows.request_id, labels)]
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "abkit",
            "run",
            "--only",
            "20_analyze",
            "--run-name",
            "prod",
            "--output-dir",
            str(tmp_path / "outputs"),
            "-p",
            "calibration_sims=0",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run / "20_analyze.json").read_text())
    assert results["experiment"] == "prod-test" and sum(results["counts"]["users"]) == len(rows)
    assert results["recommendation"]["decision"] == "continue"  # day one of a 14-day test: no verdict yet
    assert "Continue the test" in (run / "20_analyze.stakeholder.html").read_text()
    assert "prod" in (tmp_path / "outputs" / "index.html").read_text()


def test_held_out_accuracy_has_one_all_row_without_domains():
    from abkit.models import evaluate_variants

    texts, labels = ["free cash", "lunch notes", "win prize", "call tomorrow"] * 4, ["spam", "ham"] * 8
    model = train_model("tfidf_logreg", texts, labels, rng=0, measure_cost=False)
    pool = pd.DataFrame({"text": texts, "label": labels, "domain": "all"})  # a table without a domain column
    accuracy, _ = evaluate_variants({"champion": model, "challenger": model}, pool)
    assert accuracy.index.tolist() == ["all"]
    with_domains = pool.assign(domain=["a", "b"] * 8)
    assert evaluate_variants({"champion": model}, with_domains)[0].index.tolist() == ["a", "b", "all"]
