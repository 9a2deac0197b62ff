"""The LangChain retriever: Documents with the search metadata, usable inside a LangChain chain, per-call
arguments (`invoke(q, k=1)`), and LangChain's standard retriever tests (langchain-tests)."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import RetrieversIntegrationTests

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


def test_per_call_arguments_override_the_retrievers_own(retriever):
    lc = ArrivalRetriever(retriever=retriever, k=4)
    assert len(lc.invoke("guichet unique Lisbonne", k=1)) == 1
    assert len(lc.invoke("guichet unique Lisbonne")) == 4  # the call's k did not stick
    assert all(d.metadata["lang"] == "fr" for d in lc.invoke("migrants cities", langs=("fr",)))
    assert set(lc.invoke("guichet unique Lisbonne", mode="bm25")[0].metadata["scores"]) == {"bm25"}
    assert lc.invoke("migrants", docs=("nothing*",)) == []
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            lc.invoke("x", k=bad)


async def test_ainvoke_takes_the_same_arguments(retriever):
    docs = await ArrivalRetriever(retriever=retriever, k=4).ainvoke("guichet unique Lisbonne", k=2)
    assert len(docs) == 2 and docs[0].metadata["page"] == 6


class TestStandardRetriever(RetrieversIntegrationTests):
    """LangChain's standard retriever tests (langchain-tests) over the demo PDF, hash embedder."""

    @pytest.fixture(autouse=True)
    def _index(self, demo_retriever) -> None:
        self._retriever = demo_retriever

    @property
    def retriever_constructor(self) -> type[ArrivalRetriever]:
        return ArrivalRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retriever": self._retriever}

    @property
    def retriever_query_example(self) -> str:
        return "guichet unique Lisbonne pour les immigrants"
