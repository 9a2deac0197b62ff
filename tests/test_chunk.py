"""Chunk provenance on the real GFMD paper: offsets, page numbers, headings, languages, stable ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arrival.ingest.chunk import Chunker, join_pages
from arrival.ingest.clean import normalize_for_match
from arrival.ingest.pdf import PdfLoader

from .conftest import DEMO


@pytest.fixture(scope="module")
def gfmd():
    return PdfLoader().load(DEMO)


def test_offsets_point_at_the_chunk_text(gfmd):
    chunker = Chunker(800, 120)
    chunks = chunker.split(gfmd)
    assert len(chunks) > 20
    joined = join_pages(gfmd)
    pages = {p.number: p.text for p in gfmd.pages}
    for c in chunks:
        start = joined.starts[joined.numbers.index(c.page)] + c.start
        end = joined.starts[joined.numbers.index(c.page_end)] + c.end
        assert joined.text[start:end] == c.text
        assert c.page <= c.page_end
        if c.page == c.page_end:
            assert pages[c.page][c.start:c.end] == c.text
        assert len(c.text) <= chunker.max_chars == 1000


def test_page_numbers_match_the_pdf(gfmd):
    """The first words of each chunk are on the PDF page the chunk says it starts on (checked on pypdf's raw text)."""
    from pypdf import PdfReader

    raw = [normalize_for_match(p.extract_text() or "") for p in PdfReader(DEMO).pages]
    for c in Chunker(800, 120).split(gfmd):
        words = re.findall(r"\w+", normalize_for_match(c.text))[:6]
        assert words, c
        pattern = r"\W+".join(map(re.escape, words))
        assert re.search(pattern, raw[c.page - 1]), (c.page, words)


def test_malaga_passage_is_on_page_6(gfmd):
    chunks = Chunker(800, 120).split(gfmd)
    hits = [c for c in chunks if "Malaga" in c.text or "Málaga" in c.text]
    assert hits and any(c.page == 6 for c in hits)


def test_languages_and_headings(gfmd):
    chunks = Chunker(800, 120).split(gfmd)
    langs = {c.lang for c in chunks}
    assert {"fr", "en"} <= langs  # French body, English annexes
    assert sum(1 for c in chunks if c.heading) > len(chunks) // 2


def test_ids_are_stable_and_unique(gfmd):
    a = [c.chunk_id for c in Chunker(800, 120).split(gfmd)]
    b = [c.chunk_id for c in Chunker(800, 120).split(PdfLoader().load(Path(DEMO)))]
    assert a == b
    assert len(set(a)) == len(a)


def test_fragments_join_their_neighbours(gfmd):
    """A heading or lead-in left alone by the splitter (the paragraph after it is too long to merge with) joins
    the passage it introduces; a tail joins the passage before it. On the real paper no chunk is that short."""
    from arrival.types import Document, Page

    sentence = "Les villes coordonnent l'accueil des migrants avec les services de l'État et les associations. "
    lead, body = "Adopter une approche multipartite :", sentence * 12
    page = f"{body.strip()}\n\n{lead}\n\n{body.strip()}\n\nFin."
    doc = Document(path="t.pdf", sha256="a" * 64, title="T", pages=(Page(1, page, page),), page_count=1)
    chunker = Chunker(800, 120)
    chunks = chunker.split(doc)
    assert all(len(c.text) >= 200 for c in chunks), [c.text[:40] for c in chunks]
    assert any(c.text.startswith(lead + "\n\nLes villes") for c in chunks)
    assert chunks[-1].text.endswith("associations.\n\nFin.")
    assert all(len(c.text) <= chunker.max_chars for c in chunks)
    assert min(len(c.text) for c in chunker.split(gfmd)) >= 100
