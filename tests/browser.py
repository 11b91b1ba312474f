"""Open generated pages in headless Chromium (Debian's ``chromium``, driven offline by playwright).

``Browser.open(path)`` loads one local file and returns a ``PageVisit``: the console errors and uncaught
exceptions, every request that left the file system (anything but ``file:``, ``data:``, ``blob:`` and
``about:``; such requests are aborted, never sent), every script the page ran in its own world, as seen by
the Chrome DevTools protocol (inline ``<script>`` blocks, event-handler attributes that fired,
``javascript:`` URLs, ``eval``; playwright's own helper scripts run in isolated worlds and are not counted),
and the addresses of its links, forms and frames (read through the DOM domain; links with an unusual scheme
such as ``javascript:`` are also clicked, to see whether they run).

Tests use the ``browser`` fixture of ``tests/conftest.py``; it skips, with the reason, only when Chromium or
playwright is missing::

    def test_report_is_inert(browser, tmp_path):
        visit = browser.open(tmp_path / "report.html")
        visit.assert_clean()            # no console error, no network request, no script run
        assert visit.title == "report"
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Flags for a quiet, offline, throw-away Chromium.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def unavailable() -> str | None:
    """Why pages cannot be opened here (no ``chromium`` on PATH, no playwright), or None when they can."""
    if shutil.which("chromium") is None:
        return "Debian's chromium is not on PATH (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; no browser download needed)"
    return None


@dataclass
class PageVisit:
    """What one page did while it loaded and while ``actions`` ran on it."""

    url: str
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)  # the first 200 characters of each script run
    links: list[str] = field(default_factory=list)  # link, form and frame addresses, as written in the page

    @property
    def problems(self) -> list[str]:
        """Every finding, one line each; empty for an inert, self-contained page."""
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.page_errors]
            + [f"network request: {u}" for u in self.requests]
            + [f"script ran: {s!r}" for s in self.scripts]
            + [f"unsafe link: {a!r}" for a in self.links if _unusual(a)]
        )

    def assert_clean(self) -> None:
        """Fail with every finding unless the page logged no error, requested nothing, ran no script and
        links to nothing but ordinary addresses (no ``javascript:``, ``data:`` ...)."""
        assert not self.problems, f"{self.url}:\n  " + "\n  ".join(self.problems)


class Browser:
    """One headless Chromium shared by many page visits (start it once per test session)."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._chromium = self._playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
        )

    def open(self, path: str | Path, *, click_links: bool = True, settle_ms: int = 300) -> PageVisit:
        """Load ``path`` (a local file) in a fresh context and record what it did.

        With ``click_links`` (the default) every link whose address is not an ordinary one (``javascript:``,
        ``vbscript:``, ``data:`` ...) is clicked from an isolated world, so such a link runs if it can.
        """
        url = Path(path).resolve().as_uri()
        visit = PageVisit(url)
        context = self._chromium.new_context(offline=True)
        try:
            page = context.new_page()
            context.route(lambda u: not u.startswith(_LOCAL_SCHEMES), lambda route: route.abort())
            page.on("request", lambda r: None if r.url.startswith(_LOCAL_SCHEMES) else visit.requests.append(r.url))
            page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: visit.page_errors.append(str(exc)))
            cdp = context.new_cdp_session(page)
            main_worlds: set[int] = set()
            parsed: list[dict[str, Any]] = []
            cdp.on(
                "Runtime.executionContextCreated",
                lambda e: (
                    main_worlds.add(e["context"]["id"]) if e["context"].get("auxData", {}).get("isDefault") else None
                ),
            )
            cdp.on("Debugger.scriptParsed", lambda e: parsed.append(e))
            cdp.send("Runtime.enable")
            cdp.send("Debugger.enable")
            page.goto(url, wait_until="load")
            page.wait_for_timeout(settle_ms)
            visit.links = _addresses(cdp)
            visit.title = page.title()
            seen = 0

            def drain() -> None:  # read sources now: a javascript: link may replace the document
                nonlocal seen
                mine = [e for e in parsed[seen:] if e.get("executionContextId") in main_worlds]
                visit.scripts.extend(_source(cdp, e) for e in mine)
                seen = len(parsed)

            drain()
            if click_links and any(_unusual(a) for a in visit.links):
                _click_unusual_links(cdp)
                page.wait_for_timeout(settle_ms)
                drain()
        finally:
            context.close()
        return visit

    def close(self) -> None:
        """Stop Chromium and playwright."""
        self._chromium.close()
        self._playwright.stop()


_LINKS = "a[href], area[href], form[action], [formaction], iframe[src], embed[src], object[data]"
_LINK_ATTRS = ("href", "action", "formaction", "src", "data")
_ORDINARY = re.compile(r"(?:https?:|file:|mailto:|#|\.{0,2}/|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)


def _unusual(address: str) -> bool:
    """Whether a link address runs or embeds content instead of navigating (``javascript:``, ``data:`` ...)."""
    cleaned = "".join(ch for ch in address if ord(ch) > 0x20)  # browsers drop spaces and controls here
    return not _ORDINARY.match(cleaned) or cleaned.lower().startswith("data:")


def _source(cdp: Any, script: dict[str, Any]) -> str:
    """The first 200 characters of a parsed script (or where it came from, once its document is gone)."""
    from playwright.sync_api import Error

    try:
        return cdp.send("Debugger.getScriptSource", {"scriptId": script["scriptId"]})["scriptSource"][:200]
    except Error:
        return f"<a script of {script.get('url') or 'a replaced document'}, {script.get('length', '?')} characters>"


def _addresses(cdp: Any) -> list[str]:
    """Every link, form and frame address in the document, read through the DOM domain (no script runs)."""
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    found = []
    for node in cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": _LINKS})["nodeIds"]:
        attrs = cdp.send("DOM.getAttributes", {"nodeId": node})["attributes"]
        found.extend(v for k, v in zip(attrs[::2], attrs[1::2]) if k.lower() in _LINK_ATTRS)
    return found


def _click_unusual_links(cdp: Any) -> None:
    """Click every unusual ``<a>``/``<area>`` link from an isolated world, whose own scripts are not counted."""
    frame = cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
    world = cdp.send("Page.createIsolatedWorld", {"frameId": frame, "worldName": "abkit-test-clicks"})
    cdp.send(
        "Runtime.evaluate",
        {
            "contextId": world["executionContextId"],
            "expression": (
                "for (const a of document.querySelectorAll('a[href], area[href]')) {"
                "  const h = a.getAttribute('href').replace(/[\\u0000-\\u0020]/g, '').toLowerCase();"
                "  if (!/^(https?:|file:|mailto:|#|\\.{0,2}\\/|[^:\\/?#]*([\\/?#]|$))/.test(h) || h.startsWith('data:'))"
                "    a.click();"
                "}"
            ),
        },
    )
