"""Property tests for the chunker (and clean_pages on PDF-shaped input): no exception on any page text, every
chunk's text sits at its recorded offsets in the cleaned pages, sizes within the settings, ids stable from
run to run and from process to process. (clean_pages' own never-raises property is in test_clean.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrival.ingest.chunk import Chunker, join_pages
from arrival.ingest.clean import clean_pages
from arrival.types import Document, Page

from . import pdfgen

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow])

# Arbitrary text (surrogates excluded: pypdf returns str from decoded bytes), plus prose-like pages built
# from words, separators the splitter cuts on, headings, page furniture and hyphenation.
_chars = st.characters(codec="utf-8") | st.sampled_from(list("-\n ‐–—’«»ﬁ\u00ad.:;•›1\t\x0c"))
_any_text = st.text(alphabet=_chars, max_size=400)
_tokens = st.sampled_from([
    "la", "migration", "policy", "villes", "d'arrivée", "cities.", "ville,", "accès", "services;", "inter-",
    "national", "OBJECTIF 4", "3.1 Title", "« guillemets »", "www.example.org/a-", "path", "12", "- 3 -",
    "Page 7", "\n", "\n", "\n\n", ". ", "? ", "; ", ": ", ", ", "  ", "\t", "ﬁnance", "•", "a" * 150,
])
_prose = st.lists(_tokens, max_size=250).map(" ".join)
_page = _any_text | _prose
_pages = st.lists(_page, min_size=1, max_size=8)


@st.composite
def _sizes(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(100, 900))  # Settings allows chunk_size >= 100 and overlap < size
    return size, draw(st.integers(0, size - 1))


def _doc(raw: list[str], path: str = "fuzz.pdf") -> Document:
    cleaned = clean_pages(raw)
    pages = tuple(Page(i + 1, r, c) for i, (r, c) in enumerate(zip(raw, cleaned, strict=True)))
    return Document(path=path, sha256="f" * 64, title="Fuzz", pages=pages, page_count=len(pages))


@FUZZ
@given(_pages, _sizes())
def test_chunks_sit_at_their_offsets_and_respect_the_size(raw: list[str], sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    doc = _doc(raw)
    chunker = Chunker(size, overlap)
    chunks = chunker.split(doc)
    joined = join_pages(doc)
    by_number = {p.number: p.text for p in doc.pages}
    if not joined.text.strip():
        assert chunks == []
        return
    assert chunks, "text but no chunk"
    previous = -1
    for c in chunks:
        assert c.text and c.text == c.text.strip()
        assert len(c.text) <= chunker.max_chars
        assert c.page <= c.page_end and c.page in by_number and c.page_end in by_number
        if c.page == c.page_end:
            assert by_number[c.page][c.start:c.end] == c.text
        else:  # spans pages: the joined text (pages + blank line) holds it
            assert by_number[c.page][c.start:].startswith(c.text[: len(by_number[c.page]) - c.start])
            assert by_number[c.page_end][: c.end] == c.text[len(c.text) - c.end:]
        start = joined.starts[joined.numbers.index(c.page)] + c.start
        end = joined.starts[joined.numbers.index(c.page_end)] + c.end
        assert joined.text[start:end] == c.text
        assert start >= previous, "chunks out of document order"
        previous = start
        assert c.doc_id == doc.doc_id and c.source == doc.path
    ids = [c.chunk_id for c in chunks]
    assert len(set(ids)) == len(ids)


@FUZZ
@given(_pages, _sizes())
def test_chunk_ids_are_stable_from_run_to_run(raw: list[str], sizes: tuple[int, int]) -> None:
    first = [(c.chunk_id, c.page, c.start, c.end, c.heading) for c in Chunker(*sizes).split(_doc(list(raw)))]
    again = [(c.chunk_id, c.page, c.start, c.end, c.heading) for c in Chunker(*sizes).split(_doc(list(raw)))]
    assert first == again


@FUZZ
@given(_pages)
def test_the_default_settings_never_raise(raw: list[str]) -> None:
    chunker = Chunker(800, 120)
    assert all(len(c.text) <= chunker.max_chars == 1000 for c in chunker.split(_doc(raw)))


# clean_pages on the shape of a real extracted document: many pages sharing headers, footers and page
# numbers around varying bodies (test_clean.py fuzzes short free-form pages).
_body_line = st.lists(_tokens, min_size=1, max_size=30).map(" ".join)


@st.composite
def _pdf_like_document(draw: st.DrawFn) -> list[str]:
    header = draw(st.sampled_from(["", "FMMD 2019 · Table ronde 3.1", "GCM GUIDANCE", "› OBJECTIVE 15"]))
    footer = draw(st.sampled_from(["", "Page {n}", "- {n} -", "{n}", "{n} | Access to services"]))
    n_pages = draw(st.integers(1, 25))
    pages = []
    for n in range(1, n_pages + 1):
        body = draw(st.lists(_body_line | _any_text, max_size=8))
        lines = [header, *body, footer.format(n=n)]
        pages.append("\n".join(lines))
    return pages


@FUZZ
@given(_pdf_like_document())
def test_clean_pages_on_whole_documents(pages: list[str]) -> None:
    out = clean_pages(pages)
    assert len(out) == len(pages) and all(isinstance(p, str) for p in out)
    assert clean_pages(list(pages)) == out  # deterministic


# ids must not depend on the process either (hash randomisation, set order): chunk the same documents in two
# interpreters with different PYTHONHASHSEED and compare.
_IDS = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests import pdfgen
from arrival.ingest.chunk import Chunker
from arrival.ingest.pdf import PdfLoader
out = {}
for path in sys.argv[2:]:
    doc = PdfLoader().load(Path(path))
    out[path] = [(c.chunk_id, c.page, c.start, c.end, c.heading, c.lang) for c in Chunker(800, 120).split(doc)]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_chunk_ids_are_stable_across_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from .conftest import DEMO

    generated = pdfgen.text_pdf(pdfgen.varied_pages(40, 12, seed=3, tag="Stable "))
    (tmp_path / "generated.pdf").write_bytes(generated)
    paths = [str(DEMO), str(tmp_path / "generated.pdf")]
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        p = subprocess.run([sys.executable, "-c", _IDS, str(pdfgen.ROOT), *paths], capture_output=True, text=True,
                           env=env, timeout=600)
        assert p.returncode == 0, p.stderr
        runs.append(json.loads(p.stdout))
    assert runs[0] == runs[1]
    assert len(runs[0][str(DEMO)]) > 20
