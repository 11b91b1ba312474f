"""Reports no data or parameter can script, that load nothing from outside the file, and runs that never
collide (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_notebook

from abkit import params as P
from abkit.report import CSP, _ipc_kernel_manager, run_pipeline, safe_page

HOSTILE = (
    "x\n\n[Open the dashboard](javascript:document.title='pwned')\n\n</details></code>"
    "<script>document.title='pwned'</script><img src=nothing onerror=\"document.title='pwned'\">"
)


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ('<a href="javascript:alert(1)">x</a>', '<a href="#unsafe-link-removed">x</a>'),
        ("<a href='JaVa&#x09;Script:alert(1)'>x</a>", '<a href="#unsafe-link-removed">x</a>'),
        ('<a href=" data:text/html,<b>">x</a>', '<a href="#unsafe-link-removed">x</a>'),
        ('<a href="vbscript:x">x</a>', '<a href="#unsafe-link-removed">x</a>'),
        ('<a href="20_analyze.html#top">x</a>', '<a href="20_analyze.html#top">x</a>'),
        ('<a href="https://example.org/docs">x</a>', '<a href="https://example.org/docs">x</a>'),
        ('<img src="data:image/png;base64,AAAA">', '<img src="data:image/png;base64,AAAA">'),
        ('<img src="https://example.org/p.gif">', '<img data-removed-src="https://example.org/p.gif">'),
        ('<img src="data:image/svg+xml,<svg>">', '<img data-removed-src="data:image/svg+xml,<svg>">'),
        ('<img src=x onerror="alert(1)">', '<img data-removed-src=x data-removed-onerror="alert(1)">'),
        ("<img src=x/onerror=alert(1)>", "<img data-removed-src=x/onerror=alert(1)>"),
        ('<body onload="alert(1)">', '<body data-removed-onload="alert(1)">'),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script>"),
        ("<SCRIPT src=//x></script>", "&lt;SCRIPT src=//x&gt;&lt;/script>"),
        ('<a/href="javascript:alert(1)">x</a>', '<a href="#unsafe-link-removed">x</a>'),
        ('<a title="x"href="javascript:alert(1)">x</a>', '<a title="x" href="#unsafe-link-removed">x</a>'),
        ('<a title="a > b" href=javascript:alert(1)>x</a>', '<a title="a > b" href="#unsafe-link-removed">x</a>'),
        (
            '<svg><a xlink:href="javascript:alert(1)">x</a></svg>',
            '<svg><a xlink:href="#unsafe-link-removed">x</a></svg>',
        ),
        (
            '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
            '<iframe data-removed-srcdoc="<script>alert(1)&lt;/script>"></iframe>',
        ),
        (
            '<p>text about onload= and href="javascript:x" stays text</p>',
            '<p>text about onload= and href="javascript:x" stays text</p>',
        ),
    ],
)
def test_safe_page_neutralises_scripts_and_links(dirty, clean):
    page = safe_page(f"<html><head><title>t</title></head><body>{dirty}</body></html>")
    assert page.count("Content-Security-Policy") == 1 and f'content="{CSP}"' in page
    assert page.endswith(f"<body>{clean}</body></html>")


def test_the_policy_allows_no_script_and_no_request():
    rules = dict(rule.strip().split(" ", 1) for rule in CSP.split(";"))
    assert rules["default-src"] == "'none'" and "script-src" not in rules  # scripts fall back to 'none'
    assert rules["img-src"] == "data:" and rules["base-uri"] == "'none'"


def test_each_kernel_gets_private_sockets():
    """jupyter_client's default names sockets kernel-ipc-N in the working folder, shared by every run there."""
    manager = _ipc_kernel_manager()
    first, second = manager(kernel_name="abkit"), manager(kernel_name="abkit")
    try:
        assert first.transport == "ipc"
        assert os.path.dirname(first.ip) != os.path.dirname(second.ip)
        assert os.path.dirname(first.ip) != os.getcwd() and os.path.isdir(os.path.dirname(first.ip))
        first.cleanup_ipc_files()
        assert not os.path.exists(os.path.dirname(first.ip))
    finally:
        first.cleanup_ipc_files()
        second.cleanup_ipc_files()


PARAMS = 'run_dir: str = "outputs/dev"  # set by abkit run\nnote: str = ""  # free text shown in the report\n'


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    """A run whose parameter, outputs and results carry markup, scripts and javascript: links."""
    tmp = tmp_path_factory.mktemp("hostile")
    nb = write_notebook(
        tmp / "nb" / "00_hostile.ipynb",
        PARAMS,
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()",
        "from IPython.display import HTML, Javascript, Markdown, display\n"
        "display(HTML(note))\ndisplay(Markdown(note))\ndisplay(Javascript(\"document.title='pwned'\"))\nnote",
        "import abkit.report\nabkit.report.write_results(run_dir, '00_hostile', {'headline': note})",
    )
    specs = {nb.stem: P.notebook_parameters(nb)}
    run_pipeline(
        {"note": HOSTILE}, run_name="hostile", notebooks=[nb], specs=specs, output_root=tmp / "out", progress=False
    )
    return tmp / "out"


@pytest.mark.slow
def test_hostile_run_pages_are_inert_in_a_browser(hostile_run, browser):
    pages = sorted(hostile_run.rglob("*.html"))
    assert len(pages) == 4  # the report, its stakeholder variant, the run index and the outputs index
    for page in pages:
        visit = browser.open(page)
        visit.assert_clean()
        assert visit.title != "pwned"
    text = (hostile_run / "hostile" / "00_hostile.html").read_text()
    assert "Run provenance" in text and "&lt;script&gt;document.title" in text  # shown, as text


def _abkit(*args: str, cwd: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "abkit", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_three_runs_at_once_in_one_folder_with_tiny_notebooks(tmp_path):
    """Before: 5 of 9 such runs failed (Invalid Signature, Kernel didn't respond) over 3 rounds."""
    cell = "import time\ntime.sleep(0.3)\nx = seed * 2"
    for i in range(3):
        write_notebook(
            tmp_path / "nb" / f"{i}0_step.ipynb",
            'run_dir: str = "outputs/dev"  # set by abkit run\nseed: int = 1  # seed\n',
            cell,
            "print(x)",
        )
    runs = [
        _abkit(
            "run",
            "--notebooks",
            "nb",
            "--output-dir",
            "out",
            "--run-name",
            f"r{i}",
            "-p",
            f"seed={i}",
            "--no-progress",
            cwd=tmp_path,
        )
        for i in range(3)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert not list(tmp_path.glob("kernel-ipc*"))  # no sockets in the working folder


@pytest.mark.slow
def test_three_smoke_runs_at_once_in_one_folder(tmp_path):
    tiny = [
        "-p",
        "n_train=60",
        "-p",
        "champion_n_train=30",
        "-p",
        "n_traffic=80",
        "-p",
        "n_users=60",
        "-p",
        "calibration_sims=0",
    ]
    runs = [
        _abkit(
            "run",
            "--params",
            str(ROOT / "params" / "smoke.yaml"),
            *tiny,
            "--notebooks",
            str(ROOT / "notebooks"),
            "--output-dir",
            "out",
            "--run-name",
            f"s{i}",
            "--no-progress",
            cwd=tmp_path,
        )
        for i in range(3)
    ]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [o[-2000:] for o in outputs]
    for i in range(3):
        assert (tmp_path / "out" / f"s{i}" / "20_analyze.json").is_file()
