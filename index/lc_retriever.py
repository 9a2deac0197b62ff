"""The index as a LangChain retriever: `ArrivalRetriever(...).invoke(question) -> list[Document]`.

Each Document carries the passage text and the same metadata as `arrival search --json` (source, title,
page, page_end, lang, heading, rank, score, other places of the same passage), so arrival's index plugs into
any LangChain chain.

    from arrival.index.lc_retriever import ArrivalRetriever
    retriever = ArrivalRetriever.from_settings(load_settings(), k=5)
    docs = retriever.invoke("Quels mécanismes de coordination entre villes et États sont recommandés ?")
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
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

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun
                                ) -> list[Document]:
        if self.mode not in MODES:
            raise ValueError(f"unknown retriever {self.mode!r}: choose from {', '.join(MODES)}")
        hits = self.retriever.search(query, k=self.k, mode=self.mode, filters=Filters(self.langs, self.docs))
        return [hit_to_document(h) for h in hits]
