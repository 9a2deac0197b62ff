"""The assistant's done-when checks, with the real embedder over the real shared corpus."""

from __future__ import annotations

import pytest

from arrival.assistant.answer import Assistant
from arrival.index.retrieve import Retriever
from arrival.ingest.clean import normalize_for_match

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assistant(real_index):
    settings, embedder = real_index
    return Assistant(Retriever.from_settings(settings, embedder))


def test_malaga_is_cited_on_page_6(assistant):
    a = assistant.ask("Which Spanish city lets migrants use its services without showing an identity document?")
    assert not a.refused and a.lang == "en"
    gfmd = [c for c in a.citations if c.source.endswith("gfmd-2019-rt3.1-villes-arrivee-fr.pdf")]
    assert any(c.page == 6 and "malaga" in normalize_for_match(c.quote) for c in gfmd), a.answer


def test_off_topic_question_is_refused(assistant):
    a = assistant.ask("What is the capital of Australia?")
    assert a.refused and a.answer == "I could not find this in the documents." and not a.citations
    assert a.passages  # the closest passages are still shown


def test_french_guiding_question_gets_a_multi_document_answer(assistant):
    q = ("Comment les réseaux et initiatives existants peuvent-ils favoriser la cohérence des politiques pour "
         "les villes d'arrivée ?")
    a = assistant.ask(q)
    assert not a.refused and a.lang == "fr" and a.answer.startswith("D'après les documents")
    assert len(a.citations) >= 3
    assert len({c.source for c in a.citations}) >= 2
    snap = assistant.retriever.snapshot()
    ids = {d.path: d.doc_id for d in snap.documents().values()}
    for c in a.citations:  # every quote is verbatim (normalised) on the page it names
        page = (snap.page_text(ids[c.source], c.page) or "") + " " + (snap.page_text(ids[c.source], c.page + 1) or "")
        assert normalize_for_match(c.quote) in normalize_for_match(page)
