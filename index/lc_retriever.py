"""The index as a LangChain retriever: `ArrivalRetriever(...).invoke(question) -> list[Document]`.

Each Document carries the passage text and the same metadata as `arrival search --json` (source, title,
page, page_end, lang, heading, rank, score, other places of the same passage), so arrival's index plugs into
any LangChain chain.

    from arrival.index.lc_retriever import ArrivalRetriever
    retriever = ArrivalRetriever.from_settings(load_settings(), k=5)
    docs = retriever.invoke("Quels mécanismes de coordination entre villes et États sont recommandés ?")
    docs = retriever.invoke("one-stop shop", k=2, langs=("en",))  # per call: k, mode, langs, docs

It passes LangChain's standard retriever tests (langchain-tests, in tests/test_lc_retriever.py).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from arrival.index.retrieve import MODES, Filters, Retriever
from arrival.settings import Settings
from arrival.types import Hit


def hit_to_document(hit: Hit) -> Document:
    """A LangChain Document for a hit: the passage as page_content, everything else as metadata."""
    meta = hit.to_json()
    text = str(meta.pop("text"))
    meta["doc_id"] = hit.doc_id
    meta["scores"] = dict(hit.scores)
    return Document(page_content=text, metadata=meta, id=hit.chunk_id)


class ArrivalRetriever(BaseRetriever):
    """LangChain `BaseRetriever` over arrival's live index (reloads when an ingest lands)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = Field(default=5, ge=1)
    mode: str = "hybrid"
    langs: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ArrivalRetriever:
        kwargs.setdefault("k", settings.k)
        kwargs.setdefault("mode", settings.retriever)
        return cls(retriever=Retriever.from_settings(settings), **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, mode: str | None = None, langs: tuple[str, ...] | None = None,
                                docs: tuple[str, ...] | None = None) -> list[Document]:
        """`invoke(query, k=..., mode=..., langs=..., docs=...)`: each one given overrides the retriever's own."""
        k = self.k if k is None else k
        mode = self.mode if mode is None else mode
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}: choose from {', '.join(MODES)}")
        filters = Filters(tuple(self.langs if langs is None else langs), tuple(self.docs if docs is None else docs))
        hits = self.retriever.search(query, k=k, mode=mode, filters=filters)
        return [hit_to_document(h) for h in hits]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, mode: str | None = None,
                                       langs: tuple[str, ...] | None = None, docs: tuple[str, ...] | None = None
                                       ) -> list[Document]:
        # the search is CPU-bound and synchronous: run it in a worker thread, as BaseRetriever's default does
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(),
                                     k=k, mode=mode, langs=langs, docs=docs)
