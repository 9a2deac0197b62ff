"""Chunk provenance on the real GFMD paper: offsets, page numbers, headings, languages, stable ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.chunk import Chunker, join_pages
from ingest.clean import normalize_for_match
from ingest.pdf import PdfLoader

from .conftest import DEMO


@pytest.fixture(scope="module")
def gfmd():
    return PdfLoader().load(DEMO)


def test_offsets_point_at_the_chunk_text(gfmd):
    chunks = Chunker(800, 120).split(gfmd)
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
        assert len(c.text) <= 800


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
