"""The chat's parts without a browser: library, uploads with progress, removal, exports and their clean-up, the
first screen's examples, the search view, follow-ups through the chat handler."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from arrival.assistant.exports import prune, search_csv, search_jsonl, write_export
from arrival.assistant.library import (
    dismiss_failure,
    failures,
    library_rows,
    record_results,
    remove_document,
    upload_with_progress,
)
from arrival.assistant.render import render_library, render_overview, render_search_results, render_upload_progress
from arrival.assistant.server import Backend
from arrival.types import Hit

from .conftest import DEMO

MB = 1 << 20


@pytest.fixture
def backend(hash_settings, tmp_path):  # type: ignore[no-untyped-def]
    b = Backend(hash_settings)
    src = tmp_path / "in" / "Villes d'arrivée.pdf"
    src.parent.mkdir()
    shutil.copy(DEMO, src)
    [res] = b.ingest_uploads([(src.name, src)])
    assert res.status == "indexed"
    return b


# -- the library ---------------------------------------------------------------------------------------------
def test_library_lists_documents_and_failed_uploads(backend, tmp_path):
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"<html>no</html>")
    [bad] = backend.ingest_uploads([("../Rapport <b>été.pdf", junk)])
    assert bad.status == "failed"
    rows = library_rows(backend)
    assert [r.status for r in rows] == ["indexed", "failed"]
    doc = rows[0]
    info = next(iter(backend.documents().values()))
    assert (doc.doc_id, doc.pages, doc.chunks, doc.languages, doc.added) == (
        info.doc_id, info.page_count, info.chunks, info.languages, info.ingested_at)
    assert doc.pages == 18 and doc.added > time.time() - 600
    assert rows[1].name == "Rapport bété.pdf" and rows[1].reason == "not_pdf"
    html = render_library(rows, "fr")
    assert "<b>" not in html and "Rapport bété.pdf" in html and "ce n&#x27;est pas un fichier PDF" in html
    assert "1 documents indexés" in html and 'datetime="' in html
    # filtering: by title or file name, without accents or case
    assert [r.name for r in library_rows(backend, "VILLES D'ARRIVEE")] == ["Villes d'arrivée.pdf"]
    assert [r.status for r in library_rows(backend, "rapport")] == ["failed"]
    assert library_rows(backend, "nothing like this") == []
    assert "Aucun document ne correspond" in render_library([], "fr", "xyz")


def test_failures_are_kept_until_indexed_or_dismissed(tmp_path):
    home = tmp_path / "home"
    record_results(home, [("a.pdf", "failed", "not_pdf"), ("b.pdf", "failed", "boom"), ("c.pdf", "indexed", "")])
    assert [f["name"] for f in failures(home)] == ["a.pdf", "b.pdf"]
    record_results(home, [("a.pdf", "indexed", "")])
    assert [f["name"] for f in failures(home)] == ["b.pdf"]
    assert dismiss_failure(home, "b.pdf") and failures(home) == [] and not dismiss_failure(home, "b.pdf")
    (home / "failures.json").write_text("{garbage")
    assert failures(home) == []


def test_remove_document_drops_it_and_its_uploaded_file(backend):
    [doc_id] = backend.documents()
    stored = Path(backend.documents()[doc_id].abspath)
    assert stored.parent == backend.uploads_dir and stored.is_file()
    done, title = remove_document(backend, doc_id)
    assert done and title.startswith("FMMD 2019")
    assert backend.documents() == {} and not stored.exists()
    assert remove_document(backend, doc_id) == (False, "")


def test_remove_keeps_files_that_were_not_uploaded_here(hash_settings, tmp_path):
    from arrival.index.build import Indexer
    from arrival.index.embed import HashEmbedder

    outside = tmp_path / "corpus" / "gfmd.pdf"
    outside.parent.mkdir()
    shutil.copy(DEMO, outside)
    Indexer(hash_settings, HashEmbedder(256)).ingest([outside])
    b = Backend(hash_settings)
    [doc_id] = b.documents()
    assert remove_document(b, doc_id)[0] and outside.is_file() and b.documents() == {}


def test_upload_with_progress_reports_each_file(hash_settings, tmp_path):
    b = Backend(hash_settings)
    good = tmp_path / "good.pdf"
    shutil.copy(DEMO, good)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"nope")
    snapshots = []
    final = None
    for progress, results in upload_with_progress(b, [("good.pdf", good), ("bad.pdf", bad)]):
        snapshots.append([(p.name, p.stage, p.fraction, p.status) for p in progress])
        final = (progress, results)
    assert final is not None and final[1] is not None
    progress, results = final
    assert [(p.name, p.status) for p in progress] == [("good.pdf", "indexed"), ("bad.pdf", "failed")]
    assert all(p.fraction == 1.0 for p in progress) and progress[0].pages == 18
    stages = [s[0][1] for s in snapshots]
    assert stages[0] == "queued" and "indexing" in stages and "writing" in stages and stages[-1] == "done"
    fractions = [s[0][2] for s in snapshots]
    assert fractions == sorted(fractions)  # a bar never goes back
    html = render_upload_progress(progress, "en")
    assert html.count("<progress") == 2 and 'value="100"' in html and "indexed: 18 pages" in html
    assert 'aria-label="bad.pdf"' in html and "not a PDF file" in html
    assert [f["name"] for f in failures(hash_settings.home)] == ["bad.pdf"]


# -- exports ---------------------------------------------------------------------------------------------------
def test_exports_older_than_a_day_or_over_the_size_limit_are_removed(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    now = time.time()
    old = folder / "old.md"
    old.write_text("x")
    os.utime(old, (now - 25 * 3600, now - 25 * 3600))
    recent = []
    for i in range(5):
        p = folder / f"r{i}.csv"
        p.write_bytes(b"x" * MB)
        os.utime(p, (now - 3600 + i, now - 3600 + i))
        recent.append(p)
    removed = prune(folder, max_bytes=3 * MB, now=now)
    assert old in removed and not old.exists()
    assert [p.exists() for p in recent] == [False, False, True, True, True]  # the oldest go first
    # at each new export: the new file is kept even when it alone is over the limit
    path = write_export(folder, "arrival-search", ".jsonl", "y" * (2 * MB), max_bytes=2 * MB)
    assert path.exists() and path.name.startswith("arrival-search-") and sorted(folder.iterdir()) == [path]
    again = write_export(folder, "arrival-search", ".jsonl", "y" * (2 * MB), max_bytes=2 * MB)
    assert again == path and path.exists()


def _hits() -> list[Hit]:
    return [Hit(1, 0.91234567, "c1", '=HYPERLINK("x") text, "quoted"\nnext', "/d/a.pdf", "Été <b>", 3, 4, "fr",
                "Heading", "0123456789abcdef"),
            Hit(2, 0.5, "c2", "plain", "/d/b.pdf", "B", 1, 1, "en")]


def test_search_exports_csv_and_jsonl():
    import csv
    import io

    text = search_csv(_hits())
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert [r["rank"] for r in rows] == ["1", "2"] and rows[0]["score"] == "0.912346"
    assert rows[0]["text"].startswith("'=HYPERLINK") and rows[0]["title"] == "Été <b>"  # no formula in a sheet
    assert rows[0]["page_end"] == "4" and rows[0]["doc_id"] == "0123456789abcdef"
    lines = [json.loads(x) for x in search_jsonl("guichet", _hits()).splitlines()]
    assert lines[0]["query"] == "guichet" and lines[0]["text"].startswith("=HYPERLINK") and lines[1]["lang"] == "en"


def test_search_results_render_escaped_with_scores():
    html = render_search_results("guichet", _hits(), "en", viewer=True, seconds=0.012)
    assert "<b>" not in html and "Été &lt;b&gt;" in html and "0.912" in html and "12 ms" in html
    assert html.count("<tr>") == 3 and "French" in html and 'data-viewer="1"' in html
    assert "No passage found" in render_search_results("x", [], "en")


# -- the first screen --------------------------------------------------------------------------------------------
def test_overview_and_examples_come_from_the_index(backend):
    from arrival.assistant.examples import heading_question, overview

    ov = overview(backend)
    info = next(iter(backend.documents().values()))
    assert ov is not None and (ov.documents, ov.pages) == (1, 18)
    assert ov.languages == tuple(sorted((code, 1) for code in info.languages)) and ("fr", 1) in ov.languages
    assert ov.examples and {e.lang for e in ov.examples} <= {"fr", "en"}
    snap = backend.retriever().snapshot()
    text = " ".join(r[0] for r in snap.db.execute("SELECT text FROM chunks"))
    for e in ov.examples:  # each drawn from the document: its words are the document's words
        core = e.text.removeprefix("Comment ").rstrip(" ?").lower()
        assert core.split()[0] in text.lower(), e
        assert not backend.assistant().ask(e.text).refused
    assert overview(backend) is ov  # cached for this generation
    assert "1 documents, 18 pages — " in render_overview(ov, "fr") and "français (1)" in render_overview(ov, "fr")
    assert heading_question("ASSURER L'ACCÈS DES MIGRANTS AUX SERVICES DE BASE", "fr", set(), set()) == \
        "Comment assurer l'accès des migrants aux services de base ?"
    assert heading_question("PROVIDE ACCESS TO BASIC SERVICES FOR GCM MIGRANTS", "en", {"GCM"}, {"provide"}) == \
        "How can governments provide access to basic services for GCM migrants?"
    assert heading_question("Introduction", "fr", set(), set()) is None
    assert heading_question("ACTION 1 ÉLABORER UN PLAN D'ACTION", "fr", set(), set()) is None


def test_overview_without_index(hash_settings):
    from arrival.assistant.examples import overview

    assert overview(Backend(hash_settings)) is None
    assert "Library" in render_overview(None, "en")


# -- follow-ups through the chat handler ------------------------------------------------------------------------
class _Req:
    def __init__(self) -> None:
        self.headers = {"accept-language": "fr-FR"}


def test_chat_rewrites_a_follow_up_and_shows_it(backend):
    from arrival.assistant.ui import build_blocks

    blocks = build_blocks(backend)
    [fn] = [f.fn for f in blocks.fns.values() if getattr(f.fn, "__name__", "") == "respond"][:1]
    first = list(fn("Que fait la ville de Malaga pour que les migrants accèdent aux services sans pièce "
                    "d'identité ?", [], [], [], 5, [], _Req()))[-1]
    history, conv = first[0], first[2]  # respond yields (history, last answer, conversation, export path)
    assert [a.question for a in conv] == ["Que fait la ville de Malaga pour que les migrants accèdent aux services "
                                          "sans pièce d'identité ?"]
    assert "Question comprise" not in history[-1]["content"]
    second = list(fn("Et à Lisbonne ?", history, [], [], 5, conv, _Req()))[-1]
    said = second[0][-1]["content"]
    assert said.startswith("*Question comprise comme :* « Que fait la ville de Lisbonne pour que")
    assert second[2][-1].question.startswith("Que fait la ville de Lisbonne") and second[1] is second[2][-1]
    assert second[0][-2]["content"] == "Et à Lisbonne ?"
    # the export holds the whole conversation, each question as it was searched
    md = Path(second[3]).read_text(encoding="utf-8")
    assert md.startswith("# Conversation\n") and "## 1. Que fait la ville de Malaga" in md
    assert "## 2. Que fait la ville de Lisbonne" in md and md.count("### Sources") == 2
    # a cleared chat (no history) starts over: nothing to follow up on
    third = list(fn("Et à Lisbonne ?", [], [], [], 5, second[2], _Req()))[-1]
    assert "Question comprise" not in third[0][-1]["content"] and len(third[2]) == 1
