"""Shared fixtures: tiny notebooks for pipeline tests, and the project root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Keep Matplotlib and Hugging Face quiet and offline in every test.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """Write a notebook with one ``parameters`` cell and the given code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "abkit", "display_name": "abkit", "language": "python"}
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, *(nbformat.v4.new_code_cell(src) for src in cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium that opens generated pages and records errors, requests and scripts (tests/browser.py)."""
    from browser import Browser, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(f"cannot open pages in a browser: {reason}")
    chromium = Browser()
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def _spark_sessions() -> object:
    """The Spark sessions the ``spark`` fixture handed out, stopped when the test session ends."""
    started: list = []
    yield started
    for session in started:
        session.stop()  # harmless on a session that a test already stopped


@pytest.fixture
def spark(_spark_sessions: list) -> object:
    """A local Spark session (``abkit.engine.spark_session``: local[2], UTC), started once and shared by the
    tests that take it (a test that stops its own session gets a new one here); skipped without pyspark or Java.
    Spark tests collect rows (``Engine.sql``/``arrays``), never ``toPandas()``."""
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed; Spark needs a JVM")
    from abkit.engine import spark_session

    session = spark_session("abkit-tests")
    _spark_sessions.append(session)
    return session
