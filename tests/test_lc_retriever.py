"""The LangChain retriever: Documents with the search metadata, usable inside a LangChain chain."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from arrival.index.lc_retriever import ArrivalRetriever


@pytest.fixture
def retriever(demo_retriever):
    return demo_retriever


def test_documents_carry_the_hits_metadata(retriever):
    lc = ArrivalRetriever(retriever=retriever, k=4)
    docs = lc.invoke("guichet unique Lisbonne")
    hits = retriever.search("guichet unique Lisbonne", k=4)
    assert all(isinstance(d, Document) for d in docs) and len(docs) == len(hits) == 4
    for d, h in zip(docs, hits, strict=True):
        assert d.page_content == h.text and d.id == h.chunk_id
        assert d.metadata["source"] == h.source and d.metadata["page"] == h.page
        assert d.metadata["rank"] == h.rank and d.metadata["lang"] == h.lang and d.metadata["doc_id"] == h.doc_id
        assert set(d.metadata["scores"]) >= {"hybrid", "dense"}
    assert docs[0].metadata["page"] == 6


def test_filters_and_modes_pass_through(retriever):
    fr_only = ArrivalRetriever(retriever=retriever, k=5, langs=("fr",)).invoke("migrants cities")
    assert fr_only and all(d.metadata["lang"] == "fr" for d in fr_only)
    assert ArrivalRetriever(retriever=retriever, docs=("nothing*",)).invoke("migrants") == []
    bm25 = ArrivalRetriever(retriever=retriever, k=3, mode="bm25").invoke("guichet unique Lisbonne")
    assert set(bm25[0].metadata["scores"]) == {"bm25"}
    with pytest.raises(ValueError, match="unknown retriever"):
        ArrivalRetriever(retriever=retriever, mode="magic").invoke("x")


def test_it_composes_in_a_chain(retriever):
    chain = ArrivalRetriever(retriever=retriever, k=2) | RunnableLambda(
        lambda docs: "\n".join(f"[{d.metadata['page']}] {d.page_content[:40]}" for d in docs))
    out = chain.invoke("guichet unique Lisbonne")
    assert out.startswith("[6] ") and out.count("\n") == 1
