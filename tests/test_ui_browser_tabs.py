"""The Search and Library tabs in a real browser, over a copy of the shared corpus's index (real model).

Search: ranked passages with scores, language and document; language and document filters; CSV and JSONL
downloads that hold what the page shows. Library: the documents with the figures of `arrival stats --documents
--json`; a filter; removing a document after a confirmation; uploads with a progress bar per file, a failed one
listed with its reason. Screenshots under each test's tmp_path (the folder is printed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser_helpers import DESKTOP, copy_home, launch, no_horizontal_scroll, open_page, serve
from .conftest import ROOT, SHARED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REMOVED = "15-ACCESS TO BASIC SERVICES.pdf"


@pytest.fixture(scope="module")
def served(real_index, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    settings, _ = real_index
    tmp = tmp_path_factory.mktemp("tabs")
    home = copy_home(settings, tmp / "home")
    with serve(tmp, home) as url:
        yield url, home


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"\nscreenshots: {folder}")
    return folder


def _stats(home: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "arrival.cli", "stats", "--documents", "--json", "--home", str(home)],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    return dict(json.loads(out.stdout))


def _rows(page: Any, selector: str) -> list[list[str]]:
    return list(page.evaluate(f"[...document.querySelectorAll('{selector} tbody tr')].map(tr =>"
                              " [...tr.children].map(td => td.innerText.trim()))"))


def _results(page: Any) -> list[dict[str, str]]:
    return [{"rank": r[0], "score": r[1], "lang": r[2], "doc": r[3], "text": r[4]}
            for r in _rows(page, "#search-results table")]


def _search(page: Any, query: str) -> list[dict[str, str]]:
    page.fill("#search-query textarea", query)
    page.click("#search-go")
    page.wait_for_function("q => { const c = document.querySelector('#search-results caption');"
                           " return c && c.textContent.includes(q); }", arg=query)
    page.wait_for_timeout(200)
    return _results(page)


def _pick(page: Any, dropdown: str, text: str) -> None:
    page.click(f"{dropdown} input")
    page.keyboard.type(text)
    page.locator(f"{dropdown} [role=option]", has_text=text).first.click()
    page.keyboard.press("Escape")


def test_search_view_ranks_filters_and_exports(served, browser, shots):
    url, _ = served
    page = open_page(browser, url, "en-US", DESKTOP)
    page.get_by_role("tab", name="Search").click()
    rows = _search(page, "one-stop shop for migrants in Lisbon")
    assert len(rows) == 20 and [r["rank"] for r in rows] == [str(i) for i in range(1, 21)]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and {r["lang"] for r in rows} == {"French", "English"}
    assert any("Lisbon" in r["text"] for r in rows[:5])
    page.screenshot(path=str(shots / "search.png"), full_page=True)
    no_horizontal_scroll(page)

    # the downloads hold what the page shows
    with page.expect_download() as dl:
        page.click("#search-csv")
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(t["rank"], f"{float(t['score']):.3f}") for t in table] == [(r["rank"], r["score"]) for r in rows]
    with page.expect_download() as dl:
        page.click("#search-jsonl")
    lines = [json.loads(x) for x in Path(dl.value.path()).read_text(encoding="utf-8").splitlines()]
    assert [x["rank"] for x in lines] == list(range(1, 21))
    assert lines[0]["query"] == "one-stop shop for migrants in Lisbon"
    assert lines[0]["text"] and lines[0]["doc_id"] and lines[0]["chunk_id"] == table[0]["chunk_id"]

    # filters: one language, then one document
    page.locator("#search-langs label", has_text="EN").click()
    rows = _search(page, "one-stop shop for migrants in Lisbon")
    assert rows and {r["lang"] for r in rows} == {"English"}, rows
    page.locator("#search-langs label", has_text="EN").click()
    _pick(page, "#search-docs", "FMMD 2019")
    rows = _search(page, "guichet unique Lisbonne")
    assert rows and all(r["doc"].startswith("FMMD 2019") for r in rows), rows
    assert "Lisbon" in rows[0]["text"] or "Lisbonne" in rows[0]["text"]
    page.screenshot(path=str(shots / "search-filtered.png"), full_page=True)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_library_matches_stats_removes_and_uploads(served, browser, shots, tmp_path):
    url, home = served
    page = open_page(browser, url, "en-US", DESKTOP)
    page.get_by_role("tab", name="Library").click()
    page.wait_for_selector("#library-table tr[data-doc]")
    stats = _stats(home)
    by_id = {d["doc_id"]: d for d in stats["document_list"]}
    shown = page.evaluate("[...document.querySelectorAll('#library-table tr[data-doc]')].filter(tr => tr.dataset.doc)"
                          ".map(tr => [tr.dataset.doc, tr.querySelector('.lib-pages').innerText,"
                          " tr.querySelector('.lib-chunks').innerText, tr.querySelector('.lib-status').innerText,"
                          " tr.querySelector('time').getAttribute('datetime')])")
    assert len(shown) == stats["documents"] == len(by_id)
    for doc_id, pages, chunks, status, added in shown:
        d = by_id[doc_id]
        assert (int(pages), int(chunks), status) == (d["pages"], d["chunks"], "indexed"), doc_id
        assert added.startswith("20")
    assert f"{stats['documents']} indexed documents" in page.inner_text("#library-table caption")
    page.screenshot(path=str(shots / "library.png"))

    # filter by title
    page.locator("#library-filter").get_by_role("textbox").fill("access to basic")
    page.wait_for_function("document.querySelectorAll('#library-table tr[data-doc]').length < 20")
    titles = [r[0] for r in _rows(page, "#library-table")]
    assert titles and all("basic" in t.lower() for t in titles), titles

    # remove one, after a confirmation (cancel first)
    [doc] = [d for d in stats["document_list"] if d["path"].endswith("en/objectives/" + REMOVED)]
    _pick(page, "#library-pick", REMOVED)
    page.click("#library-remove")
    page.wait_for_selector("#library-confirm-text .lib-confirm")
    assert "Remove “" in page.inner_text("#library-confirm-text")
    page.screenshot(path=str(shots / "library-confirm.png"))
    page.click("#library-confirm-no")
    page.wait_for_selector("#library-confirm", state="hidden")
    assert doc["doc_id"] in {d["doc_id"] for d in _stats(home)["document_list"]}
    page.click("#library-remove")
    page.click("#library-confirm-yes")
    page.wait_for_selector("#library-status .lib-status-line")
    assert "was removed from the index" in page.inner_text("#library-status")
    after = _stats(home)
    assert after["documents"] == stats["documents"] - 1 and doc["doc_id"] not in {
        d["doc_id"] for d in after["document_list"]}
    page.locator("#library-filter").get_by_role("textbox").fill("")
    page.wait_for_function(f"document.querySelectorAll('#library-table tr[data-doc]').length === {after['documents']}")

    # add it back by upload, with a file that is not a PDF: a progress bar per file, the failure listed
    src = SHARED / "gcm-guidance" / "en" / "objectives" / REMOVED
    good = tmp_path / REMOVED
    shutil.copy(src, good)
    bad = tmp_path / "notes.pdf"
    bad.write_text("these are notes, not a PDF")
    page.locator("#library-upload input[type=file]").set_input_files([str(good), str(bad)])
    page.wait_for_selector("#library-progress li.st-indexed", timeout=120_000)
    page.wait_for_selector("#library-progress li.st-failed")
    bars = page.locator("#library-progress progress")
    assert bars.count() == 2 and {bars.nth(i).get_attribute("value") for i in range(2)} == {"100"}
    assert page.get_by_role("progressbar", name=REMOVED).count() == 1
    progress = page.inner_text("#library-progress")
    assert "indexed:" in progress and "not a PDF file" in progress
    page.screenshot(path=str(shots / "library-upload.png"), full_page=True)
    final = _stats(home)
    assert final["documents"] == stats["documents"]
    page.wait_for_function(f"document.querySelectorAll('#library-table tr[data-doc]').length === "
                           f"{final['documents'] + 1}")
    failed = page.locator("#library-table tr.lib-failed")
    assert failed.count() == 1 and "notes.pdf" in failed.inner_text() and "not a PDF file" in failed.inner_text()
    shown = page.evaluate("[...document.querySelectorAll('#library-table tr.lib-indexed')].map(tr =>"
                          " [tr.dataset.doc, tr.querySelector('.lib-pages').innerText,"
                          " tr.querySelector('.lib-chunks').innerText])")
    assert sorted((d, int(p), int(c)) for d, p, c in shown) == sorted(
        (d["doc_id"], d["pages"], d["chunks"]) for d in final["document_list"])
    # the chat's document filter knows it again
    page.get_by_role("tab", name="Chat").click()
    page.get_by_text("Search options").click()
    page.click("#arrival-docs input")
    page.keyboard.type("PROVIDE ACCESS")
    assert page.locator("#arrival-docs [role=option]", has_text="PROVIDE ACCESS TO BASIC SERVICES").count() >= 1
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    page.context.close()
