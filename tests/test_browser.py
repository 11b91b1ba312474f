"""The browser helper itself: it must see each kind of finding, or the report tests that use it prove nothing."""

from __future__ import annotations

import pytest


def _page(tmp_path, name, head="", body=""):
    path = tmp_path / name
    path.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{name}</title>{head}</head><body>{body}</body></html>'
    )
    return path


def test_an_inert_self_contained_page_is_clean(browser, tmp_path):
    tiny_gif = "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs="
    visit = browser.open(_page(tmp_path, "clean.html", body=f'<a href="other.html">next</a><img src="{tiny_gif}">'))
    visit.assert_clean()
    assert visit.title == "clean.html" and visit.links == ["other.html"]


@pytest.mark.parametrize(
    ("head", "body", "finding"),
    [
        ("<script>var ran = 1;</script>", "", "script ran: 'var ran = 1;'"),
        ("", "<img src=missing.png onerror=\"document.title='pwned'\">", "script ran: \"document.title='pwned'\""),
        (
            '<script src="https://cdn.example.com/lib.js"></script>',
            "",
            "network request: https://cdn.example.com/lib.js",
        ),
        ("", '<img src="http://example.com/pixel.gif">', "network request: http://example.com/pixel.gif"),
        (
            "",
            "<a href=\"java&#9;script:document.title='x'\">go</a>",
            "unsafe link: \"java\\tscript:document.title='x'\"",
        ),
        ("", '<a href="data:text/html,hello">go</a>', "unsafe link: 'data:text/html,hello'"),
        ("<script>null.boom()</script>", "", "uncaught exception:"),
        ("<script>console.error('said no')</script>", "", "console error: said no"),
    ],
)
def test_each_kind_of_finding_is_reported(browser, tmp_path, head, body, finding):
    visit = browser.open(_page(tmp_path, "dirty.html", head, body))
    assert any(p.startswith(finding) for p in visit.problems), visit.problems
    with pytest.raises(AssertionError, match="dirty.html"):
        visit.assert_clean()


def test_a_javascript_link_is_clicked_and_its_script_counted(browser, tmp_path):
    visit = browser.open(_page(tmp_path, "link.html", body="<a href=\"javascript:void(document.title='ran')\">x</a>"))
    assert visit.title == "link.html"  # read before the click
    assert any("document.title='ran'" in s or "replaced document" in s for s in visit.scripts), visit.scripts
