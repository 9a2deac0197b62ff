"""Retrieval on the real shared corpus with the real embedder, real FAISS and real BM25."""

from __future__ import annotations

import pytest

from arrival.index.retrieve import Retriever

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def retriever(real_index):
    settings, embedder = real_index
    return Retriever.from_settings(settings, embedder)


def test_index_covers_the_whole_corpus(retriever):
    stats = retriever.snapshot().stats()
    assert stats["documents"] >= 100  # 102 PDFs, the GFMD paper once
    assert stats["pages"] > 900
    assert {"en", "fr"} <= set(stats["languages"])


def test_french_keywords_find_lisbon_one_stop_shop(retriever):
    hits = retriever.search("guichet unique Lisbonne", k=5)
    assert hits[0].source.endswith("gfmd-2019-rt3.1-villes-arrivee-fr.pdf") and hits[0].page == 6


def test_english_question_finds_the_french_passage(retriever):
    q = "Which city runs a one-stop shop that brings together all services for immigrants?"
    hits = retriever.search(q, k=3)
    assert any(h.source.endswith("gfmd-2019-rt3.1-villes-arrivee-fr.pdf") and h.page == 6 for h in hits), [
        (h.source, h.page) for h in hits]


def test_a_passage_printed_in_two_guidance_files_takes_one_place(retriever):
    """The French guidance prints step 4's first action both in 'STEP 4 - MISE EN CUVRE' and in
    'STEP 4 - ACTION': one result naming both files, and the freed places go to other passages."""
    hits = retriever.search("Existe-t-il une approche uniforme de la mise en œuvre du Pacte mondial ?", k=5)
    top = hits[0]
    assert "ACTION 1" in top.text and "approche uniforme" in top.text
    places = {top.source.rsplit("/", 1)[-1], *(src.rsplit("/", 1)[-1] for src, _ in top.also)}
    assert {"STEP 4 - MISE EN CUVRE.pdf", "STEP 4 - ACTION.pdf"} <= places, places
    assert len({h.text for h in hits}) == len(hits)
    unfolded = Retriever(retriever.backend, retriever.embedder, weights=retriever.weights, duplicate_cosine=0,
                          second=retriever.second, ranker=retriever.ranker)
    again = unfolded.search("Existe-t-il une approche uniforme de la mise en œuvre du Pacte mondial ?", k=5)
    assert again[0].text == again[1].text == top.text
