"""The few value types that travel between stages: documents, chunks, hits, citations, answers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Page:
    """One PDF page: its 1-based number, the raw extracted text and the cleaned text."""

    number: int
    raw: str
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    path: str
    sha256: str
    title: str
    pages: tuple[Page, ...]
    page_count: int
    languages: tuple[str, ...] = ()

    @property
    def doc_id(self) -> str:
        return self.sha256[:16]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document. Offsets index the cleaned text of its start and end page."""

    doc_id: str
    source: str
    title: str
    text: str
    page: int
    page_end: int
    start: int
    end: int
    heading: str = ""
    lang: str = ""

    @property
    def chunk_id(self) -> str:
        return chunk_id(self.doc_id, self.page, self.start, self.text)


def chunk_id(doc_id: str, page: int, start: int, text: str) -> str:
    """Content hash: the same PDF chunked the same way always gives the same ids."""
    h = hashlib.sha256(f"{doc_id}\x00{page}\x00{start}\x00{text}".encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its score and rank (1-based)."""

    rank: int
    score: float
    chunk_id: str
    text: str
    source: str
    title: str
    page: int
    page_end: int
    lang: str
    heading: str = ""
    doc_id: str = ""
    scores: dict[str, float] = field(default_factory=dict, compare=False)
    also: tuple[tuple[str, int], ...] = ()  # (source, page) of the same passage in other places, folded in
    start: int = 0  # offset of the text in the cleaned text of `page`
    translations: tuple[tuple[str, int, str], ...] = ()  # (source, page, lang) of its translation, folded in

    def to_json(self) -> dict[str, object]:
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "text": self.text,
            "source": self.source,
            "title": self.title,
            "page": self.page,
            "page_end": self.page_end,
            "lang": self.lang,
            "heading": self.heading,
            "chunk_id": self.chunk_id,
            "also": [{"source": src, "page": page} for src, page in self.also],
            "translations": [{"source": src, "page": page, "lang": lang} for src, page, lang in self.translations],
        }


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    title: str
    source: str
    page: int
    quote: str
    passage: str
    lang: str
    chunk_id: str
    doc_id: str = ""
    page_end: int = 0  # the page the quote ends on, when it runs onto the next page (0: same page)
    also: tuple[tuple[str, int, str], ...] = ()  # (source, page, lang) of the same passage elsewhere

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "title": self.title,
            "source": self.source,
            "page": self.page,
            "page_end": self.page_end or self.page,
            "quote": self.quote,
            "lang": self.lang,
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "also": [{"source": src, "page": page, "lang": lang} for src, page, lang in self.also],
        }


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    answer: str
    lang: str
    refused: bool
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]
    mode: str = "extractive"
    reason: str = ""  # why it was refused: no-evidence, no-<kind of value asked for>, no-quote, ...
    generation: str = ""  # the state of the index the whole answer was read from

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "answer": self.answer,
            "lang": self.lang,
            "refused": self.refused,
            "mode": self.mode,
            "reason": self.reason,
            "generation": self.generation,
            "citations": [c.to_json() for c in self.citations],
            "passages": [p.to_json() for p in self.passages],
        }
