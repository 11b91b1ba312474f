"""Notebook results and HTML reports: papermill execution, nbconvert export and index pages."""

from __future__ import annotations

import html
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abkit.errors import AbkitError, NotebookFailed
from abkit.params import ParamSpec, effective_values
from abkit.progress import progress_hidden


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise AbkitError(
            f"results field {where!r} is {value!r}; results must hold finite numbers — "
            "report missing values as null (None) with a reason instead."
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def enter_project() -> None:
    """Make relative paths (``run_dir``, data files) mean the same in JupyterLab and under papermill.

    ``abkit run`` and papermill start kernels in the project root, JupyterLab in the notebook's folder.
    When the current folder is a project's ``notebooks/``, move to the project root.
    """
    cwd = Path.cwd()
    if cwd.name == "notebooks" and (cwd.parent / "params").is_dir():
        os.chdir(cwd.parent)


def write_results(run_dir: str | Path, name: str, results: dict[str, Any]) -> Path:
    """Write a notebook's machine-readable results to ``<run_dir>/<name>.json``.

    Non-finite floats are refused so that no NaN reaches a report silently.
    """
    _check_finite(results, "")
    path = Path(run_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=_to_json))
    tmp.replace(path)
    return path


def _to_json(value: Any) -> Any:
    """Convert numpy scalars and arrays that ``json`` does not know."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to results JSON")


# --------------------------------------------------------------------------------------------------
# The pipeline: execute notebooks with papermill, export HTML, write index pages.

KERNEL = "abkit"
CELL_TIMEOUT_S = 1800
_PACKAGES = (
    "abkit",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "scikit-learn",
    "torch",
    "transformers",
    "duckdb",
    "pyarrow",
    "papermill",
    "nbconvert",
)


@dataclass
class NotebookRun:
    """What happened to one notebook of a run."""

    name: str
    status: str = "not run"  # "ok" | "failed" | "not run"
    seconds: float = 0.0
    error: str | None = None
    headline: str | None = None


@dataclass
class RunSummary:
    """A whole pipeline run, as recorded in ``outputs/<run>/run.json``."""

    run_name: str
    run_dir: str
    parameters: dict[str, Any]
    provenance: dict[str, Any]
    notebooks: list[NotebookRun] = field(default_factory=list)
    started: str = ""
    finished: str = ""
    params_files: list[str] = field(default_factory=list)  # the --params files, in order (the scenario)

    @property
    def ok(self) -> bool:
        return all(nb.status == "ok" for nb in self.notebooks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def ensure_kernel(name: str = KERNEL, *, manager: Any = None, prefix: str | None = None) -> str:
    """The folder of Jupyter kernel ``name``, registered for this Python first when Jupyter does not know it.

    ``make setup`` registers it (``ipykernel install --sys-prefix``); an environment made another way (``conda env
    create -f environment.yml``, a plain ``pip install``) gets the same registration, into its own prefix, on
    its first ``abkit run``.
    """
    import sys

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = manager or KernelSpecManager()
    try:
        return str(manager.get_kernel_spec(name).resource_dir)
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        return str(install(manager, kernel_name=name, display_name=name, prefix=prefix or sys.prefix))


def _ipc_kernel_manager() -> type:
    """A kernel manager on Unix sockets in a private folder of its own.

    No TCP ports (no port races, no unencrypted-TCP warning, no network needed), and no shared socket names:
    jupyter_client's default ``kernel-ipc-N`` files in the working folder let two runs started there at once
    take the same sockets. Each kernel's sockets live in a fresh ``mkdtemp`` folder, removed at shutdown.
    """
    from jupyter_client.manager import AsyncKernelManager

    class PrivateIPCKernelManager(AsyncKernelManager):
        transport = "ipc"
        _socket_dir: str | None = None

        def _ip_default(self) -> str:
            self._socket_dir = tempfile.mkdtemp(prefix="abkit-kernel-")
            return os.path.join(self._socket_dir, "ipc")

        def cleanup_ipc_files(self) -> None:
            super().cleanup_ipc_files()
            if self._socket_dir:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
                self._socket_dir = None

    return PrivateIPCKernelManager


def discover_notebooks(notebooks_dir: str | Path) -> list[Path]:
    """The pipeline's notebooks, in run order (``NN_name.ipynb`` sorted by name)."""
    folder = Path(notebooks_dir)
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise AbkitError(
            f"no notebooks named NN_*.ipynb in {str(folder)!r}; run abkit from the project root "
            "or pass --notebooks DIR."
        )
    return found


def select_notebooks(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Keep the notebooks named in ``only`` (stem, with or without the ``NN_`` prefix)."""
    if not only:
        return list(notebooks)
    chosen: list[Path] = []
    for wanted in only:
        match = [p for p in notebooks if wanted in (p.stem, p.name, p.stem.split("_", 1)[-1])]
        if not match:
            names = ", ".join(p.stem for p in notebooks)
            raise AbkitError(f"--only {wanted!r} names no notebook; choose from {names}.")
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen)


def provenance(params: Mapping[str, Any]) -> dict[str, Any]:
    """Seed, effective parameters, package versions and the git commit, for every report."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "seed": params.get("seed"),
        "parameters": dict(params),
        "packages": versions,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    if sha.returncode != 0:
        return "unknown (not a git checkout)"
    return sha.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def prepare_run_dir(output_root: str | Path, run_name: str) -> Path:
    """Create ``<output_root>/<run_name>`` and prove it is writable before anything runs."""
    run_dir = Path(output_root).resolve() / run_name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise AbkitError(
            f"cannot write to the output folder {str(run_dir)!r} ({exc.strerror}); choose a writable "
            "folder with --output-dir or fix its permissions."
        ) from None
    return run_dir


def run_pipeline(
    params: Mapping[str, Any],
    *,
    run_name: str,
    notebooks: Sequence[Path],
    specs: Mapping[str, Mapping[str, ParamSpec]],
    output_root: str | Path = "outputs",
    progress: bool = True,
    params_files: Sequence[str | Path] = (),
) -> RunSummary:
    """Execute ``notebooks`` in order into ``<output_root>/<run_name>`` and render their reports.

    ``params`` are already validated; each notebook receives the ones it declares (``specs[stem]``)
    plus ``run_dir``. Raises ``NotebookFailed`` after writing the partial report of a failing notebook.
    """
    import papermill
    from tqdm.auto import tqdm

    run_dir = prepare_run_dir(output_root, run_name)
    ensure_kernel()
    effective = effective_values(params, [specs[path.stem] for path in notebooks])
    summary = RunSummary(
        run_name,
        str(run_dir),
        effective,
        provenance(effective),
        started=_now(),
        params_files=[str(p) for p in params_files],
    )
    summary.notebooks = [NotebookRun(p.stem) for p in notebooks]
    failure: NotebookFailed | None = None
    bar = tqdm(
        list(zip(notebooks, summary.notebooks)), desc=f"abkit run {run_name}", unit="notebook", disable=not progress
    )
    for path, record in bar:
        bar.set_postfix_str(path.stem)
        own = {k: v for k, v in params.items() if k in specs[path.stem]} | {"run_dir": str(run_dir)}
        out = run_dir / f"{path.stem}.ipynb"
        start = time.perf_counter()
        try:
            with progress_hidden():  # the run has its own bar; the kernels' bars would clutter the reports
                papermill.execute_notebook(
                    str(path),
                    str(out),
                    parameters=own,
                    kernel_name=KERNEL,
                    progress_bar=False,
                    cwd=str(Path.cwd()),
                    execution_timeout=CELL_TIMEOUT_S,
                    kernel_manager_class=_ipc_kernel_manager(),
                )
            record.status = "ok"
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message below
            record.status = "failed"
            record.error = _describe_failure(path.stem, exc)
            failure = NotebookFailed(record.error)
        record.seconds = round(time.perf_counter() - start, 2)
        if out.exists():
            export_html(out, summary.provenance)
        record.headline = _headline(run_dir / f"{path.stem}.json") if record.status == "ok" else None
        if failure:
            break
    bar.close()
    summary.finished = _now()
    write_run_index(summary)
    write_outputs_index(Path(output_root))
    if failure:
        raise failure
    return summary


def _describe_failure(notebook: str, exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        return (
            f"notebook {notebook} failed in cell {exc.exec_count} ({first_line.strip()[:80]!r}): "
            f"{exc.ename}: {exc.evalue}"
        )
    name = type(exc).__name__
    if "Timeout" in name:
        return f"notebook {notebook} timed out: a cell ran longer than {CELL_TIMEOUT_S} s ({exc})."
    return f"notebook {notebook} could not be executed: {name}: {exc}"


def export_html(executed: Path, prov: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write the full report and the code-hidden stakeholder variant of an executed notebook.

    Both pages are self-contained and inert: no script of nbconvert's template (require.js, MathJax, mermaid:
    all fetched from the internet) and none from outputs, no link that runs code, and a Content-Security-Policy
    that forbids every script and every request outside the file (see ``safe_page``).
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_raw_cell(_provenance_html(prov), metadata={"abkit": "provenance"}))
    nb.metadata["title"] = executed.stem
    full = executed.with_suffix(".html")
    stakeholder = executed.with_name(f"{executed.stem}.stakeholder.html")
    options = {
        "embed_images": True,
        "extra_loaders": [DictLoader({"abkit.html.j2": _TEMPLATE})],
        "template_file": "abkit.html.j2",
    }
    full.write_text(safe_page(HTMLExporter(**options).from_notebook_node(nb)[0]))
    hidden = HTMLExporter(**options, exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    stakeholder.write_text(safe_page(hidden.from_notebook_node(nb)[0]))
    return full, stakeholder


#: Everything a report may load comes from the file itself: inline styles, embedded images and fonts. No script
#: runs at all (``default-src 'none'`` also covers ``script-src``), nothing is fetched, no form is sent.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'"
)
_CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'

#: nbconvert's lab template without its scripts (require.js, MathJax, widgets, mermaid) and without running
#: JavaScript outputs; the policy goes first in <head>, before anything it governs. The provenance cell (built
#: here, every value escaped) is shown as written; nbconvert's own raw-cell filter would drop its <details>.
_TEMPLATE = (
    "{%- extends 'lab/index.html.j2' -%}\n"
    "{%- block html_head_js -%}" + _CSP_META + "{%- endblock html_head_js -%}\n"
    "{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}\n"
    "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
    "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
    "{%- block rawcell scoped -%}{%- if cell.metadata.get('abkit') == 'provenance' -%}{{ cell.source }}"
    "{%- else -%}{{ super() }}{%- endif -%}{%- endblock rawcell -%}\n"
    "{%- block data_javascript scoped -%}<pre>(a JavaScript output; reports run no scripts)</pre>"
    "{%- endblock data_javascript -%}\n"
)

_TAG = re.compile(r"""<([A-Za-z][^\s/>]*)((?:"[^"]*"|'[^']*'|[^"'>])*)>""")
_ATTRIBUTE = re.compile(r"""[\s/]*([^\s"'>/=][^\s"'>/=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_LINKS = frozenset({"href", "action", "formaction", "xlink:href"})
_SOURCES = frozenset({"src", "data", "poster", "background", "srcset", "srcdoc"})
_SAFE_SCHEMES = ("http:", "https:", "file:", "mailto:")
_EMBEDDED_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);", re.IGNORECASE)


def safe_page(page: str) -> str:
    """Make an HTML page inert whatever its content: a CSP ``<meta>`` first in ``<head>``, no ``<script>``
    element, no event-handler attribute, and no address that runs code or leaves the file.

    Links keep relative, ``#``, ``http(s):``, ``file:`` and ``mailto:`` targets; ``javascript:``, ``data:``,
    ``vbscript:`` and every other scheme become ``#unsafe-link-removed`` (browsers ignore spaces and control
    characters in a scheme, and so does this check). ``src`` may hold an embedded PNG, JPEG, GIF or WebP
    image only (any other becomes ``data-removed-src``): the page never fetches anything. Attributes are read
    as a browser reads them (``<a/href=...>``, ``title="x"href=...`` and ``<`` inside quotes included).
    """
    page = re.sub(r"</(script)", r"&lt;/\1", _TAG.sub(_safe_tag, page), flags=re.IGNORECASE)
    if _CSP_META not in page:
        page = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + _CSP_META, page, count=1, flags=re.IGNORECASE)
    return page


def _safe_tag(tag: re.Match[str]) -> str:
    name, rest = tag.group(1), tag.group(2)
    if name.lower() == "script":
        return html.escape(tag.group(), quote=False)
    kept, position = [], 0
    for attribute in _ATTRIBUTE.finditer(rest):
        if attribute.start() != position:
            break
        position = attribute.end()
        key, value = attribute.group(1).lower(), attribute.group(2)
        if key.startswith("on") or (key in _SOURCES and not _embedded(value)):
            kept.append(f" data-removed-{attribute.group(1)}" + (f"={value}" if value else ""))
        elif key in _LINKS and value is not None and not _ordinary_link(value):
            kept.append(f' {attribute.group(1)}="#unsafe-link-removed"')
        else:
            kept.append(attribute.group())
    return f"<{name}{''.join(kept)}{rest[position:]}>"


def _address(value: str | None) -> str:
    """An attribute value as the browser uses it: unquoted, unescaped, without spaces and control characters."""
    text = html.unescape((value or "").strip("\"'"))
    return "".join(ch for ch in text if ord(ch) > 0x20).lower()


def _embedded(value: str | None) -> bool:
    return value is not None and _EMBEDDED_IMAGE.match(_address(value)) is not None


def _ordinary_link(value: str) -> bool:
    address = _address(value)
    return re.match(r"[a-z][a-z0-9+.-]*:", address) is None or address.startswith(_SAFE_SCHEMES)


def _provenance_html(prov: Mapping[str, Any]) -> str:
    """A collapsed HTML block with seed, commit, parameters and versions; every value is escaped text."""

    def text(value: Any) -> str:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return html.escape(shown)

    rows = "".join(
        f"<tr><td>{text(k)}</td><td><code>{text(v)}</code></td></tr>" for k, v in sorted(prov["parameters"].items())
    )
    packages = ", ".join(f"{text(k)} {text(v)}" for k, v in prov["packages"].items())
    return (
        f"<details><summary><b>Run provenance</b> — seed {text(prov['seed'])}, commit "
        f"{text(prov['git_commit'])}</summary><table><tr><th>parameter</th><th>value</th></tr>{rows}"
        f"</table><p><b>Packages:</b> {packages}</p></details>"
    )


def _headline(results_path: Path) -> str | None:
    if not results_path.exists():
        return None
    results = json.loads(results_path.read_text())
    rec = results.get("recommendation")
    if isinstance(rec, dict) and rec.get("decision"):
        variant = f" {rec['variant']}" if rec.get("variant") else ""
        return f"{rec['decision']}{variant}"
    headline = results.get("headline")
    return str(headline) if headline is not None else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_PAGE = """<!doctype html><html><head><meta charset="utf-8">{csp}<title>{title}</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:76rem;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
.ok{{color:#176f2c;font-weight:bold}}.failed{{color:#b00020;font-weight:bold}}.muted{{color:#777}}
pre{{white-space:pre-wrap;background:#fff4f4;padding:.6rem}}</style></head><body>{body}</body></html>"""


def write_run_index(summary: RunSummary) -> Path:
    """Write ``<run_dir>/index.html`` (links, status, parameters, headline) and ``run.json``."""
    run_dir = Path(summary.run_dir)
    (run_dir / "run.json").write_text(json.dumps(summary.to_dict(), indent=2, default=str))
    e = html.escape
    rows = []
    for nb in summary.notebooks:
        links = " · ".join(
            f'<a href="{e(nb.name + suffix)}">{label}</a>'
            for suffix, label in (
                (".html", "report"),
                (".stakeholder.html", "stakeholder"),
                (".ipynb", "notebook"),
                (".json", "results"),
            )
            if (run_dir / f"{nb.name}{suffix}").exists()
        )
        rows.append(
            f'<tr><td>{e(nb.name)}</td><td class="{e(nb.status.replace(" ", "-"))}">{e(nb.status)}'
            f"</td><td>{nb.seconds:.1f} s</td><td>{e(nb.headline or '')}</td><td>{links}</td></tr>"
        )
    errors = "".join(f"<pre>{e(nb.error)}</pre>" for nb in summary.notebooks if nb.error)
    params = "".join(
        f"<tr><td>{e(k)}</td><td>{e(json.dumps(v))}</td></tr>" for k, v in sorted(summary.parameters.items())
    )
    status = '<span class="ok">ok</span>' if summary.ok else '<span class="failed">failed</span>'
    body = (
        f"<h1>Run {e(summary.run_name)}: {status}</h1>"
        f'<p class="muted">started {e(summary.started)} · finished {e(summary.finished)} · '
        f"commit {e(summary.provenance['git_commit'])} · seed {e(str(summary.provenance['seed']))}</p>"
        f"{errors}<table><tr><th>notebook</th><th>status</th><th>time</th><th>headline</th>"
        f"<th>files</th></tr>{''.join(rows)}</table><h2>Parameters</h2><table>{params}</table>"
        '<p><a href="../index.html">all runs</a></p>'
    )
    path = run_dir / "index.html"
    path.write_text(safe_page(_PAGE.format(csp=_CSP_META, title=e(f"abkit run {summary.run_name}"), body=body)))
    return path


def write_outputs_index(output_root: Path) -> Path:
    """Write ``<output_root>/index.html`` listing every run, newest first (see :func:`_runs_overview`)."""
    path = output_root / "index.html"
    path.write_text(safe_page(_PAGE.format(csp=_CSP_META, title="abkit runs", body=_runs_overview(output_root))))
    return path


def _runs_overview(output_root: Path) -> str:
    """Every run's scenario, date, decision, top reason and primary-metric lift (``abkit.scorecard``)."""
    from abkit.scorecard import runs_table_html

    runs = []
    for run_json in output_root.glob("*/run.json"):
        try:
            run = json.loads(run_json.read_text())
            analysis = run_json.parent / "20_analyze.json"
            results = json.loads(analysis.read_text()) if analysis.is_file() else None
        except (OSError, json.JSONDecodeError):
            continue
        runs.append((f"{run_json.parent.name}/index.html", run.get("started", "").replace("T", " ")[:16], run, results))
    runs.sort(key=lambda r: r[2].get("started", ""), reverse=True)
    return "<h1>abkit runs</h1>" + (
        runs_table_html(runs) if runs else "<p>No runs yet: try <code>abkit run</code>.</p>"
    )
