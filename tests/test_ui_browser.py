"""End to end in a real browser: `arrival serve` with the real model, driven by Playwright on Debian's chromium.

Ask, watch the answer stream in, open a cited PDF at its page, upload a new PDF and get an answer cited from it.
Screenshots go to artifacts/ (gitignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arrival.eval.load import LoadError, serve_process

from .conftest import ROOT, SHARED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ARTIFACTS = ROOT / "artifacts"
UPLOAD = SHARED / "gcm-guidance" / "en" / "objectives" / "15-ACCESS TO BASIC SERVICES.pdf"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


@contextlib.contextmanager
def _serve(tmp: Path, **extra_env: str) -> Iterator[tuple[str, dict[str, float]]]:
    """`arrival serve` on a free loopback port with its own home; the bundled corpus is indexed first."""
    cache = Path(os.environ.get("ARRIVAL_CACHE", str(Path.home() / ".cache" / "arrival")))
    env = {**os.environ, "ARRIVAL_HOME": str(tmp / "home"), "ARRIVAL_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for var in ("ARRIVAL_MODEL", "ARRIVAL_PASSWORD", "ARRIVAL_CORPUS"):
        env.pop(var, None)
    env.update(extra_env)
    t0 = time.perf_counter()
    try:
        with serve_process([], tmp, env, tmp / "serve.log", timeout=180.0) as (url, _proc):
            yield url, {"server_start_s": time.perf_counter() - t0}
    except LoadError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, float]]]:
    """The real default model (use-m3)."""
    from arrival.index.models import fetch_use_m3

    fetch_use_m3(Path(os.environ.get("ARRIVAL_CACHE", str(Path.home() / ".cache" / "arrival"))))
    with _serve(tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _ask(page, question: str) -> str:  # type: ignore[no-untyped-def]
    """Ask, wait for the streamed answer to finish (the sources column is rendered last) and return the chat."""
    before = page.locator("#arrival-chat .message-row, #arrival-chat [data-testid=bot]").count()
    page.fill("#arrival-question textarea", question)
    page.click("#arrival-ask")
    page.wait_for_function(
        "n => document.querySelectorAll('#arrival-chat .message-row, #arrival-chat [data-testid=bot]').length > n",
        arg=before)
    page.wait_for_selector("#arrival-sources .cite-card, #arrival-sources .cite-empty:not(:empty)")
    page.wait_for_function("!document.querySelector('#arrival-ask').disabled")
    page.wait_for_selector("#arrival-sources .cite-card", timeout=30_000)
    return str(page.inner_text("#arrival-chat"))


def _open_first_citation(page, url: str, shot: str | None = None) -> float:  # type: ignore[no-untyped-def]
    """Click the first card's link: the app serves the PDF (application/pdf) and the link names the page."""
    ctx = page.context
    link = page.locator("#arrival-sources .cite-card a.cite-link").first
    href = link.get_attribute("href") or ""
    assert href.startswith("pdf/") and "#page=" in href, href
    page_no = int(href.rsplit("#page=", 1)[1])
    assert page_no >= 1
    t0 = time.perf_counter()
    with ctx.expect_event("response", predicate=lambda r: "/pdf/" in r.url) as resp_info:
        link.click()
    resp = resp_info.value
    seconds = time.perf_counter() - t0
    assert resp.status == 200 and resp.headers["content-type"] == "application/pdf"
    assert resp.url == url + href.split("#", 1)[0]
    # (Chromium's PDF viewer stands in for the body in the browser: fetch it again with the same cookies)
    direct = ctx.request.get(resp.url)
    assert direct.ok and direct.body()[:5] == b"%PDF-"
    if len(ctx.pages) > 1:  # the PDF opened in a new tab (rendered or downloaded, depending on the build)
        popup = ctx.pages[-1]
        assert popup.url.endswith(f"#page={page_no}") or popup.url.startswith("about:"), popup.url
        if shot:
            popup.wait_for_timeout(1500)
            popup.screenshot(path=str(ARTIFACTS / shot))
        popup.close()
    return seconds


@pytest.fixture
def page_en(server, browser):  # type: ignore[no-untyped-def]
    url, timings = server
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#arrival-question textarea")
    timings.setdefault("page_load_s", time.perf_counter() - t0)
    yield page
    assert not errors, errors
    ctx.close()
    (ARTIFACTS / "ui-timings.txt").write_text("".join(f"{k} {v:.2f}\n" for k, v in timings.items()))


def test_english_question_cites_the_french_document_and_opens_the_pdf(server, page_en):  # type: ignore[no-untyped-def]
    url, timings = server
    t0 = time.perf_counter()
    chat = _ask(page_en, "Which Spanish city lets migrants use its services without showing an identity document?")
    timings["first_answer_s"] = time.perf_counter() - t0
    page_en.screenshot(path=str(ARTIFACTS / "ui-answer.png"), full_page=True)
    assert "According to the documents" in chat and "Malaga" in chat and "[1]" in chat, chat
    first = page_en.locator("#arrival-sources .cite-card").first
    assert first.locator("mark").count() == 1 and "Malaga" in first.inner_text()
    timings["pdf_open_s"] = _open_first_citation(page_en, url, "ui-pdf.png")


def test_french_browser_gets_french_labels(server, browser):  # type: ignore[no-untyped-def]
    url, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#arrival-question textarea")
    assert page.inner_text("#arrival-ask").strip() == "Demander"
    assert page.get_attribute("#arrival-question textarea", "placeholder") == \
        "Posez une question en français ou en anglais…"
    chat = _ask(page, "Quelle ville espagnole n'exige pas de pièce d'identité pour accéder à ses services ?")
    page.screenshot(path=str(ARTIFACTS / "ui-answer-fr.png"), full_page=True)
    assert "D'après les documents" in chat and "Malaga" in chat, chat
    assert "Ouvrir le PDF" in page.inner_text("#arrival-sources")
    _open_first_citation(page, url)
    ctx.close()


def test_upload_then_answer_from_it_and_export(server, page_en, tmp_path):  # type: ignore[no-untyped-def]
    url, timings = server
    if not UPLOAD.is_file():
        pytest.skip(f"shared corpus not found at {UPLOAD}")
    page = page_en
    page.click("#arrival-add button, #arrival-add .label-wrap")
    target = tmp_path / UPLOAD.name
    shutil.copy(UPLOAD, target)
    t0 = time.perf_counter()
    page.locator("#arrival-upload input[type=file]").set_input_files(str(target))
    row = page.locator("#arrival-upload-results tr.st-indexed")
    row.wait_for()
    timings["upload_ingest_s"] = time.perf_counter() - t0
    assert UPLOAD.name in row.inner_text() and "indexed" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "ui-upload.png"), full_page=True)

    # the documents filter lists it now: restrict the search to it
    page.click("#arrival-docs input")
    option = page.locator("#arrival-docs [role=option]", has_text="PROVIDE ACCESS TO BASIC SERVICES")
    option.wait_for()
    assert page.locator("#arrival-docs [role=option]").count() == 2
    option.click()
    page.keyboard.press("Escape")

    t0 = time.perf_counter()
    chat = _ask(page, "Which Tunisian municipality expanded its social assistance programmes for migrants during "
                      "COVID-19?")
    timings["second_answer_s"] = time.perf_counter() - t0
    page.screenshot(path=str(ARTIFACTS / "ui-uploaded-answer.png"), full_page=True)
    assert "Sfax" in chat, chat
    files = page.locator("#arrival-sources .cite-file").all_inner_texts()
    assert files and all(f == UPLOAD.name for f in files), files
    _open_first_citation(page, url)

    # export the last answer as Markdown
    with page.expect_download() as dl_info:
        page.click("#arrival-export")
    md = Path(dl_info.value.path()).read_text(encoding="utf-8")
    assert md.startswith("# Answer") and "Sfax" in md and "15-ACCESS TO BASIC SERVICES.pdf" in md


def test_password_guards_the_chat_and_the_pdfs(browser, tmp_path):  # type: ignore[no-untyped-def]
    """With ARRIVAL_PASSWORD set: a login page first; the PDF links work after login and only then."""
    ARTIFACTS.mkdir(exist_ok=True)
    # the hash embedder is enough here: this is about the login, not the answers
    with _serve(tmp_path, ARRIVAL_PASSWORD="correct horse", ARRIVAL_MODEL="hash:256") as (url, _):
        ctx = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 800})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.goto(url)
        page.wait_for_selector("input[type=password]")
        assert page.locator("#arrival-question").count() == 0
        page.screenshot(path=str(ARTIFACTS / "ui-login.png"))
        page.locator("input[type=text]").first.fill("someone")
        page.fill("input[type=password]", "wrong")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Incorrect Credentials", timeout=10_000)
        page.locator("input[type=text]").first.fill("someone")  # the form was reset
        page.fill("input[type=password]", "correct horse")
        page.keyboard.press("Enter")
        page.wait_for_selector("#arrival-question textarea")
        chat = _ask(page, "La ville de Malaga veille à ce qu'il ne soit pas nécessaire de disposer d'une pièce "
                          "d'identité")
        assert "Malaga" in chat, (chat, console)
        link = page.locator("#arrival-sources a.cite-link").first
        href = link.get_attribute("href") or ""
        pdf_url = url + href.split("#", 1)[0]
        assert ctx.request.get(pdf_url).headers["content-type"] == "application/pdf"  # logged in: served
        stranger = browser.new_context()
        r = stranger.request.get(pdf_url)
        assert r.status == 401 and b"%PDF" not in r.body()
        stranger.close()
        ctx.close()
