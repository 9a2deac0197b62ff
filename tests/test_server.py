"""The web server without a browser: upload checks and names, the /pdf route and its auth, safe HTML rendering."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from arrival.assistant.i18n import pick_lang, t
from arrival.assistant.server import (
    Backend,
    UploadError,
    build_app,
    bundled_corpus,
    exposure_refusal,
    exposure_warning,
    sanitize_filename,
    store_upload,
)
from arrival.types import Answer, Citation, Hit

from .conftest import DEMO

MB = 1 << 20


# -- file names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("../../x.pdf", "x.pdf"),
    ("..\\..\\windows\\evil.pdf", "evil.pdf"),
    ("/etc/passwd", "passwd.pdf"),
    ("rapport.PDF", "rapport.pdf"),
    ('a "quoted"\nname.pdf', "a quoted name.pdf"),
    ("tab\there\r\nand\x00nul.pdf", "tab here and nul.pdf"),
    ("Politique d'accueil — Été 2024.pdf", "Politique d'accueil — Été 2024.pdf"),
    ("15-ACCESS TO BASIC SERVICES.pdf", "15-ACCESS TO BASIC SERVICES.pdf"),
    (".hidden.pdf", "hidden.pdf"),
    ("...pdf", "pdf.pdf"),
    ("  spaced   out  .pdf", "spaced out.pdf"),
    ("notes.txt", "notes.txt.pdf"),
    ("\u202eevil\u200b.pdf", "evil.pdf"),
    ("a<b>c|d?e*f:g.pdf", "abcdefg.pdf"),
    ("", "document.pdf"),
    ("../", "document.pdf"),
    ("..", "document.pdf"),
])
def test_sanitize_filename(given, expected):
    assert sanitize_filename(given) == expected


def test_sanitize_filename_is_always_a_plain_name():
    for name in ["a/b/../c.pdf", "..", "./.x", "x" * 1000 + ".pdf", "é" * 400, "\\\\server\\share\\f.pdf"]:
        out = sanitize_filename(name)
        assert "/" not in out and "\\" not in out and "\x00" not in out
        assert not out.startswith(".") and out.endswith(".pdf")
        assert len(out.encode()) <= 200
        out.encode("utf-8")  # no half character left by truncation


# -- storing uploads --------------------------------------------------------------------------------------
@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    src = tmp_path / "incoming" / "whatever.pdf"
    src.parent.mkdir()
    shutil.copy(DEMO, src)
    return src


def test_store_upload_path_traversal_stays_inside(tmp_path, demo_copy):
    dest = tmp_path / "home" / "uploads"
    path, created = store_upload(demo_copy, "../../x.pdf", dest, 200 * MB)
    assert created and path == dest / "x.pdf" and path.read_bytes() == DEMO.read_bytes()
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "home" / "x.pdf").exists()


def test_store_upload_collisions_never_overwrite(tmp_path, demo_copy):
    dest = tmp_path / "uploads"
    first, created = store_upload(demo_copy, "Été.pdf", dest, 200 * MB)
    assert created and first.name == "Été.pdf"
    # same name, same content: the stored file is reused
    again, created = store_upload(demo_copy, "Été.pdf", dest, 200 * MB)
    assert again == first and not created
    # same name, other content: a new name, the first file untouched
    other = tmp_path / "other.pdf"
    other.write_bytes(b"%PDF-1.4\n% another document\n")
    second, created = store_upload(other, "Été.pdf", dest, 200 * MB)
    assert created and second.name == "Été-2.pdf"
    third, created = store_upload(tmp_path / "other.pdf", "../Été.pdf", dest, 200 * MB)
    assert third == second and not created
    other.write_bytes(b"%PDF-1.4\n% a third one\n")
    fourth, _ = store_upload(other, "Été.pdf", dest, 200 * MB)
    assert fourth.name == "Été-3.pdf"
    assert first.read_bytes() == DEMO.read_bytes()
    assert second.read_bytes() == b"%PDF-1.4\n% another document\n"


def test_store_upload_does_not_follow_a_planted_symlink(tmp_path, demo_copy):
    dest = tmp_path / "uploads"
    dest.mkdir()
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(b"%PDF- precious")
    (dest / "x.pdf").symlink_to(outside)
    path, created = store_upload(demo_copy, "x.pdf", dest, 200 * MB)
    assert created and path.name == "x-2.pdf"
    assert outside.read_bytes() == b"%PDF- precious"


def test_store_upload_rejects_non_pdf_and_big_files(tmp_path, demo_copy):
    dest = tmp_path / "uploads"
    fake = tmp_path / "fake.pdf"
    fake.write_text("<html>not a pdf</html>")
    with pytest.raises(UploadError) as err:
        store_upload(fake, "fake.pdf", dest, 200 * MB)
    assert err.value.key == "not_pdf" and "%PDF-" in str(err.value)
    late = tmp_path / "late.pdf"
    late.write_bytes(b"   %PDF-1.4 header not at the start")
    with pytest.raises(UploadError):
        store_upload(late, "late.pdf", dest, 200 * MB)
    with pytest.raises(UploadError) as err:
        store_upload(demo_copy, "big.pdf", dest, 1000)
    assert err.value.key == "too_big"
    with pytest.raises(UploadError) as err:
        store_upload(tmp_path / "missing.pdf", "missing.pdf", dest, 200 * MB)
    assert err.value.key == "unreadable"
    assert not dest.exists() or not any(dest.iterdir())


def test_ingest_uploads_indexes_and_reports_each_file(hash_settings, tmp_path, demo_copy):
    backend = Backend(hash_settings)
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"PK\x03\x04 a zip file")
    results = backend.ingest_uploads([("../Villes d'arrivée.pdf", demo_copy), ("junk.pdf", junk)])
    assert [(r.name, r.status) for r in results] == [("Villes d'arrivée.pdf", "indexed"), ("junk.pdf", "failed")]
    assert results[0].pages == 18 and results[0].chunks > 20 and results[1].reason == "not_pdf"
    uploads = hash_settings.home / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["Villes d'arrivée.pdf"]
    docs = backend.documents()
    assert [Path(d.path).name for d in docs.values()] == ["Villes d'arrivée.pdf"]

    # the same file again: unchanged, nothing new on disk; the same content under another name: not kept twice
    again = backend.ingest_uploads([("Villes d'arrivée.pdf", demo_copy), ("copy.pdf", demo_copy)])
    assert [r.status for r in again] == ["unchanged", "unchanged"]
    assert again[1].reason == "same_as" and again[1].other == "Villes d'arrivée.pdf"
    from arrival.assistant.ui import render_upload_results

    assert "same content as Villes d&#x27;arrivée.pdf, already indexed" in render_upload_results(again)
    assert sorted(p.name for p in uploads.iterdir()) == ["Villes d'arrivée.pdf"]

    # a PDF signature on a file with no pages: indexing fails, the stored copy is removed
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    res = backend.ingest_uploads([("broken.pdf", broken)])
    assert res[0].status == "failed" and res[0].reason and not (uploads / "broken.pdf").exists()

    # searchable at once through the shared retriever
    hits = backend.retriever().search("guichet unique Lisbonne", k=3)
    assert hits and Path(hits[0].source).name == "Villes d'arrivée.pdf"


# -- the /pdf route ---------------------------------------------------------------------------------------
@pytest.fixture
def indexed(hash_settings, demo_copy):  # type: ignore[no-untyped-def]
    backend = Backend(hash_settings)
    [res] = backend.ingest_uploads([("gfmd.pdf", demo_copy)])
    assert res.status == "indexed"
    [doc_id] = backend.documents()
    return backend, doc_id


def test_pdf_route_serves_indexed_documents_only(hash_settings, indexed):
    from fastapi.testclient import TestClient

    backend, doc_id = indexed
    app = build_app(hash_settings, backend=backend)
    with TestClient(app) as client:
        r = client.get(f"/pdf/{doc_id}")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["content-disposition"].startswith("inline")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.content == DEMO.read_bytes()
        for bad in ["0123456789abcdef", doc_id.upper(), doc_id + "0", "..%2F..%2Fetc%2Fpasswd", "%2e%2e",
                    "gfmd.pdf", "../../pyproject.toml"]:
            assert client.get(f"/pdf/{bad}").status_code == 404, bad
        # the file changed on disk since it was indexed: not served as that document
        path = Path(backend.documents()[doc_id].abspath)
        path.write_bytes(path.read_bytes() + b"\n%% appended")
        assert client.get(f"/pdf/{doc_id}").status_code == 404
        # the chat itself is there
        assert client.get("/").status_code == 200


def test_pdf_route_without_index_is_404(hash_settings):
    from fastapi.testclient import TestClient

    with TestClient(build_app(hash_settings)) as client:
        assert client.get("/pdf/0123456789abcdef").status_code == 404


# -- rendering ----------------------------------------------------------------------------------------------
EVIL = '<script>alert("x")</script>'


def _answer() -> Answer:
    passage = (f"Intro {EVIL} words. The city <b>lets</b> migrants use services & more without ID. "
               f"After <img src=x onerror=alert(1)> text.")
    quote = "The city <b>lets</b> migrants use services & more without ID."
    hit = Hit(rank=1, score=0.9, chunk_id="c1", text=passage, source="/x/a\"b.pdf", title=f"T {EVIL}", page=3,
              page_end=3, lang="en", doc_id="0123456789abcdef")
    cite = Citation(1, f"T {EVIL}", "/x/a\"b.pdf", 3, quote, passage, "en", "c1")
    return Answer("Which city?", f"According to the documents:\n\n- {quote} [1]", "en", False, (cite,), (hit,))


def test_citation_cards_escape_document_text_and_mark_the_quote():
    from arrival.assistant.ui import render_sources

    out = render_sources(_answer(), "en")
    assert "<script" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "<mark>The city &lt;b&gt;lets&lt;/b&gt; migrants use services &amp; more without ID.</mark>" in out
    assert 'href="pdf/0123456789abcdef#page=3"' in out and 'target="_blank"' in out
    assert "a&quot;b.pdf" in out and 'class="cite-n" aria-hidden="true">1<' in out and "page 3" in out
    # with the viewer: the quote opens beside the answer, escaped inside the link too
    viewer = render_sources(_answer(), "en", viewer=True)
    assert 'data-viewer="1"' in viewer
    assert "viewer/?doc=0123456789abcdef&amp;page=3&amp;q=The+city+%3Cb%3Elets" in viewer
    assert "<script" not in viewer and 'href="pdf/0123456789abcdef#page=3"' in viewer
    fr = render_sources(_answer(), "fr")
    assert "Ouvrir le PDF à la page 3" in fr and "anglais" in fr


def test_refused_answer_shows_closest_passages_escaped():
    from arrival.assistant.ui import render_sources

    a = _answer()
    refused = Answer(a.question, "I could not find this in the documents.", "en", True, (), a.passages)
    out = render_sources(refused, "en")
    assert "closest passages" in out and "<script" not in out and "<mark>" not in out
    assert "pdf/0123456789abcdef#page=3" in out
    assert "appear here" in render_sources(None, "en")


def test_chat_text_and_export_markdown():
    from arrival.assistant.ui import chat_text, export_markdown

    assert "<" not in chat_text(f"- {EVIL} [1]") and "[1]" in chat_text("- a [1]")
    md = export_markdown(_answer())
    assert md.startswith("# Answer\n") and "**Question:** Which city?" in md
    assert "## Sources" in md and "1. T " in md and "page 3 (en)" in md
    assert "> The city <b>lets</b> migrants" in md


def test_upload_results_table():
    from arrival.assistant.server import UploadResult
    from arrival.assistant.ui import render_upload_results

    out = render_upload_results([UploadResult("a<b>.pdf", "indexed", pages=3, chunks=9),
                                 UploadResult("c.pdf", "failed", "not_pdf"),
                                 UploadResult("d.pdf", "unchanged")], "en")
    assert "a&lt;b&gt;.pdf" in out and "indexed" in out and "3 p., 9 passages" in out
    assert t("not_pdf") in out and "1 indexed, 1 unchanged, 1 failed." in out
    assert "indexé" in render_upload_results([UploadResult("a.pdf", "indexed")], "fr")


def test_friendly_errors_are_one_line():
    from arrival.assistant.ui import friendly_error
    from arrival.errors import IndexOpenError, ModelError

    assert friendly_error(IndexOpenError("/h: no index yet; run it"), "fr") == t("no_index", "fr")
    assert "arrival models fetch" in friendly_error(ModelError("missing: run 'arrival models fetch'"), "en")
    assert friendly_error(ZeroDivisionError("boom"), "en") == "Something went wrong: ZeroDivisionError"


def test_answer_from_the_real_assistant_renders(indexed):
    from arrival.assistant.ui import citation_doc_ids, render_sources

    backend, doc_id = indexed
    a = backend.assistant().ask("La ville de Malaga veille à ce qu'il ne soit pas nécessaire de disposer d'une "
                                "pièce d'identité")
    assert not a.refused and a.citations
    assert citation_doc_ids(a)[1] == doc_id
    out = render_sources(a, "en")
    assert f"pdf/{doc_id}#page={a.citations[0].page}" in out and "<mark>" in out and "Malaga" in out


# -- languages, serving, command line -----------------------------------------------------------------------
@pytest.mark.parametrize(("header", "lang"), [
    (None, "en"), ("", "en"), ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("en-GB,en;q=0.9,fr;q=0.8", "en"),
    ("de-DE,de;q=0.9,fr;q=0.5", "fr"), ("en;q=0.2, fr;q=0.9", "fr"), ("es", "en"), ("fr;q=0", "en"),
])
def test_pick_lang(header, lang):
    assert pick_lang(header) == lang


def test_exposure_warning(hash_settings):
    assert exposure_warning(hash_settings, "127.0.0.1") is None
    assert exposure_warning(hash_settings, "localhost") is None
    assert exposure_warning(hash_settings, "::1") is None
    assert "ARRIVAL_PASSWORD" in (exposure_warning(hash_settings, "0.0.0.0") or "")
    with_pw = hash_settings.model_copy(update={"password": "x"})
    assert exposure_warning(with_pw, "0.0.0.0") is None


def test_exposure_refusal(hash_settings):
    assert exposure_refusal(hash_settings, "127.0.0.1") is None and exposure_refusal(hash_settings, "[::1]") is None
    line = exposure_refusal(hash_settings, "0.0.0.0") or ""
    assert "ARRIVAL_PASSWORD" in line and "--public-without-password" in line and "\n" not in line
    assert exposure_refusal(hash_settings, "0.0.0.0", public_without_password=True) is None
    assert exposure_refusal(hash_settings.model_copy(update={"password": "x"}), "192.168.1.5") is None


def test_serve_refuses_a_public_address_without_password(monkeypatch, tmp_path, capsys):
    import uvicorn

    from arrival.cli import main

    started: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: started.append(host))
    monkeypatch.delenv("ARRIVAL_PASSWORD", raising=False)
    home = ["--home", str(tmp_path / "home"), "--model", "hash:64", "--no-ingest"]
    assert main(["serve", "--host", "0.0.0.0", *home]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ARRIVAL_PASSWORD" in err and "--public-without-password" in err
    assert not started
    assert main(["serve", "--host", "0.0.0.0", "--public-without-password", *home]) == 0
    assert started == ["0.0.0.0"] and "warning" in capsys.readouterr().err
    monkeypatch.setenv("ARRIVAL_PASSWORD", "pw")
    assert main(["serve", "--host", "0.0.0.0", *home]) == 0 and started[-1] == "0.0.0.0"


def test_serve_command_is_registered(monkeypatch, tmp_path):
    from arrival.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "8123", "--no-ingest"])
    assert args.port == 8123 and args.host == "127.0.0.1" and args.no_ingest and not args.public_without_password
    monkeypatch.setenv("ARRIVAL_CORPUS", str(tmp_path))
    assert bundled_corpus() == tmp_path
    monkeypatch.delenv("ARRIVAL_CORPUS")
    assert (bundled_corpus() / DEMO.name).is_file()


# -- the chat handler's errors, without a browser ---------------------------------------------------------------
class _Req:
    def __init__(self, lang: str) -> None:
        self.headers = {"accept-language": lang}


def _respond(app):  # type: ignore[no-untyped-def]
    """The chat's three steps for one question, as the page chains them: take it from the box, stream the answer
    into the chatbot, then show its sources and export."""
    from arrival.assistant.ui import build_blocks

    blocks = build_blocks(app)
    steps = ("take_question", "respond", "show_answer")
    return {f.fn.__name__: f.fn for f in blocks.fns.values() if getattr(f.fn, "__name__", "") in steps}


class _Chat(NamedTuple):
    box: str  # the question box once the question was taken
    outs: list[tuple[Any, ...]]  # what respond streamed: (history, last answer, conversation, export file)
    sources: str  # the sources panel once the answer is complete
    export: dict[str, Any]  # the export button's update


def _run(fns, question: str, lang: str = "en"):  # type: ignore[no-untyped-def]
    import warnings

    import gradio as gr

    skip = gr.skip()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        box, asked, *_ = fns["take_question"](question, [], 0.0, None, None, _Req(lang))
        outs = list(fns["respond"](asked, [], [], [], 5, [], _Req(lang)))
        last, path = (None if v == skip else v for v in (outs[-1][1], outs[-1][3]))
        sources, export, free = fns["show_answer"](last, path, _Req(lang))
    assert free == 0.0  # the session may ask again
    return _Chat(box, outs, sources, export), [str(w.message) for w in caught]


def test_chat_without_index_says_so(hash_settings):
    chat, warned = _run(_respond(Backend(hash_settings)), "Quelle ville ?", "fr-FR")
    history = chat.outs[-1][0]
    assert history[-1]["content"] == t("no_index", "fr") and history[0]["content"] == "Quelle ville ?"
    assert any("Aucun document" in w for w in warned)


def test_chat_with_missing_model_says_so(indexed, tmp_path):
    backend, _ = indexed
    settings = backend.settings.model_copy(update={"model": "use-m3", "cache": tmp_path / "empty-cache"})
    chat, _ = _run(_respond(Backend(settings)), "Which city?")
    text = chat.outs[-1][0][-1]["content"]
    assert text.startswith("The embedding model is not available") and "Traceback" not in text


def test_chat_streams_then_renders_sources(indexed):
    backend, doc_id = indexed
    chat, warned = _run(_respond(backend), "La ville de Malaga veille à ce qu'il ne soit pas nécessaire de "
                                           "disposer d'une pièce d'identité")
    outs = chat.outs
    assert not warned and len(outs) >= 4  # placeholder, intro, one line per sentence, final
    assert chat.box == "" and outs[0][0][-1]["content"] == "…"
    final = outs[-1]
    from arrival.assistant.ui import chat_text

    assert final[0][-1]["content"] == chat_text(final[1].answer) and "Malaga" in final[0][-1]["content"]
    assert f"pdf/{doc_id}#page=" in chat.sources and "<mark>" in chat.sources
    assert isinstance(final[1], Answer) and final[1].citations
    assert chat.export["interactive"] and chat.export["value"] == final[3]
    assert Path(final[3]).read_text().startswith("# Réponse")


def test_a_question_is_not_taken_while_the_sessions_answer_is_under_way(hash_settings):
    """A second Enter (or Ask, or an example) while the answer streams: the question stays in the box and the
    chain stops at the first step (an error the page does not show), so one session never runs two answers."""
    import time

    import gradio as gr

    take = _respond(Backend(hash_settings))["take_question"]
    with pytest.raises(gr.Error) as err:
        take("Which city?", [], time.monotonic(), None, None, _Req("en"))
    assert not err.value.visible
    box, asked, *_, started = take("Which city?", [], time.monotonic() - 3600, None, None, _Req("en"))
    assert (box, asked) == ("", "Which city?") and started > 0


def test_chat_rejects_empty_question(hash_settings):
    chat, warned = _run(_respond(Backend(hash_settings)), "   ")
    assert len(chat.outs) == 1 and any("question" in w for w in warned)


def test_chat_answers_with_the_configured_chat_model(indexed, monkeypatch):
    """ARRIVAL_LLM reaches the chat: the answer is the (fake) chat model's, with its citation checked."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    import arrival.assistant.llm as llm

    backend, doc_id = indexed
    said = "La ville de Malaga veille à ce qu'il ne soit pas nécessaire de disposer d'une pièce d'identité [1]."
    monkeypatch.setattr(llm, "load_chat_model", lambda *a, **k: GenericFakeChatModel(
        messages=iter([AIMessage(content=said)])))
    settings = backend.settings.model_copy(update={"llm": "ollama:fake"})
    chat, warned = _run(_respond(Backend(settings)), "La ville de Malaga veille à ce qu'il ne soit pas "
                                                     "nécessaire de disposer d'une pièce d'identité")
    final = chat.outs[-1]
    assert not warned and isinstance(final[1], Answer) and final[1].mode == "llm"
    assert "Malaga" in final[0][-1]["content"] and final[1].citations
    assert f"pdf/{doc_id}#page=" in chat.sources
