"""Shared by the browser tests: a real `arrival serve` over a copy of the shared corpus's index (the `real_index`
fixture), Debian's chromium through Playwright, and small page helpers."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrival.eval.load import LoadError, serve_process

from .conftest import ROOT

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_VIEWER = """q => { const f = document.querySelector('#arrival-viewer-panel iframe');
  const b = f && f.contentDocument && f.contentDocument.body;
  return !!b && ['ready', 'error'].includes(b.dataset.state)
    && new URLSearchParams(f.contentWindow.location.search).get('q') === q; }"""


@contextlib.contextmanager
def serve(tmp: Path, home: Path | None, **extra_env: str) -> Iterator[str]:
    """`arrival serve --no-ingest` on a free loopback port over `home` (None: a new home where the bundled corpus
    is indexed first)."""
    cache = Path(os.environ.get("ARRIVAL_CACHE", str(Path.home() / ".cache" / "arrival")))
    env = {**os.environ, "ARRIVAL_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for var in ("ARRIVAL_MODEL", "ARRIVAL_PASSWORD", "ARRIVAL_CORPUS", "ARRIVAL_PDFJS"):
        env.pop(var, None)
    env["ARRIVAL_HOME"] = str(home if home is not None else tmp / "home")
    env.update(extra_env)
    args = ["--no-ingest"] if home is not None else []
    try:
        with serve_process(args, tmp, env, tmp / "serve.log", timeout=180.0) as (url, _proc):
            yield url
    except LoadError as exc:
        pytest.fail(str(exc))


def copy_home(settings: Any, dest: Path) -> Path:
    """A copy of the real index's home: the tests may upload and remove documents without touching the index
    other tests share."""
    shutil.copytree(Path(settings.home), dest, ignore=shutil.ignore_patterns("*.lock"))
    return dest


def launch(playwright: Any) -> Any:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)


def open_page(browser: Any, url: str, locale: str = "en-US", viewport: dict[str, int] | None = None) -> Any:
    ctx = browser.new_context(locale=locale, viewport=viewport or DESKTOP, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.goto(url)
    page.wait_for_selector("#arrival-question textarea")
    return page


def ask(page: Any, question: str) -> str:
    """Type a question, press Enter, wait for the answer and its sources; the chat's text."""
    before = page.locator("#arrival-chat .message-row, #arrival-chat [data-testid=bot]").count()
    page.fill("#arrival-question textarea", question)
    page.press("#arrival-question textarea", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#arrival-chat .message-row, #arrival-chat [data-testid=bot]').length > n",
        arg=before)
    wait_answer(page)
    return str(page.inner_text("#arrival-chat"))


def wait_answer(page: Any) -> None:
    page.wait_for_function("!document.querySelector('#arrival-ask').disabled")
    page.wait_for_selector("#arrival-sources .cite-card, #arrival-sources .cite-note", timeout=60_000)


def viewer_state(page: Any) -> dict[str, Any]:
    """The viewer frame's state and its highlighted text, pages and where the marks are."""
    return dict(page.evaluate("""() => {
      const f = document.querySelector('#arrival-viewer-panel iframe');
      const d = f.contentDocument, b = d.body;
      const marks = [...d.querySelectorAll('mark.arrival-hl')];
      return {state: b.dataset.state, match: b.dataset.match || '', pages: b.dataset.pages || '',
              status: d.getElementById('status').textContent, text: marks.map(m => m.textContent).join(''),
              markPages: [...new Set(marks.map(m => m.closest('.page-wrap').dataset.page))],
              search: f.contentWindow.location.search};
    }"""))


def open_citation(page: Any, link: Any) -> tuple[float, dict[str, Any], str]:
    """Click a citation's viewer link: (seconds until the page is shown and the quote highlighted, the viewer's
    state, the quote the link carries)."""
    href = link.get_attribute("href") or ""
    quote = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query).get("q", [""])[0]
    t0 = time.perf_counter()
    link.click()
    page.wait_for_function(WAIT_VIEWER, arg=quote, timeout=30_000, polling=20)
    seconds = time.perf_counter() - t0
    return seconds, viewer_state(page), quote


def no_horizontal_scroll(page: Any) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, (width, inner)


def boxes_apart(page: Any, a: str, b: str) -> None:
    """The two elements' boxes do not overlap (side by side or one above the other)."""
    ba, bb = page.locator(a).bounding_box(), page.locator(b).bounding_box()
    assert ba and bb, (a, b)
    apart = (ba["x"] + ba["width"] <= bb["x"] + 1 or bb["x"] + bb["width"] <= ba["x"] + 1
             or ba["y"] + ba["height"] <= bb["y"] + 1 or bb["y"] + bb["height"] <= ba["y"] + 1)
    assert apart, (a, ba, b, bb)
