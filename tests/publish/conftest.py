"""Shared by the tests of the decks and the site: that a written page works offline.

:func:`remote_urls_of_page` extends :func:`kdteach.publish.offline_html.remote_urls` (one
HTML text) to a page on disk and the local style sheets it links, which may pull in more
with ``@import`` or ``url(...)``; only the tests need that, so it lives here.
"""

import re
from pathlib import Path

import pytest

from kdteach.publish.offline_html import _CSS_REMOTE, _REMOTE, remote_urls

_LINKED_CSS = re.compile(r"""<link[^>]+href=["']([^"']+\.css)["']""", re.I)
_IMPORTED_CSS = re.compile(r"""@import\s+(?:url\()?\s*["']?([^"')\s;]+\.css)""", re.I)
LOCAL_REF = re.compile(r"""<(?:script|link)[^>]+(?:src|href)=["']([^"':]+?)(?:\?[^"']*)?["']""")


def remote_urls_of_page(page: Path) -> list[str]:
    """Remote scripts and styles of an HTML file, including those that the local style
    sheets it links pull in with ``@import`` or ``url(...)``."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    found = remote_urls(text)
    queue = [page.parent / href for href in _LINKED_CSS.findall(text) if not _REMOTE.match(href)]
    seen = set()
    while queue:
        sheet = queue.pop().resolve()
        if sheet in seen:
            continue
        seen.add(sheet)
        if not sheet.is_file():
            found.append(f"missing local style sheet {sheet}")
            continue
        css = sheet.read_text(encoding="utf-8", errors="replace")
        found += _CSS_REMOTE.findall(css)
        queue += [sheet.parent / href for href in _IMPORTED_CSS.findall(css)
                  if not _REMOTE.match(href)]
    return found


def _check_offline(page: Path) -> None:
    page = Path(page)
    assert remote_urls_of_page(page) == []
    for ref in LOCAL_REF.findall(page.read_text(encoding="utf-8")):
        assert (page.parent / ref).is_file(), f"{page} refers to a missing {ref}"


@pytest.fixture
def check_offline():
    """``check_offline(page)`` asserts that the HTML file ``page`` fetches no script or
    style sheet from the network and that every local one it refers to is there."""
    return _check_offline
