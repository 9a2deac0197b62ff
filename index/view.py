"""What retrieval and answering need from an index, whatever stores it: the `View` contract.

A View is one consistent state of the index (one generation), pinned for the length of a request: a search, the
refusal checks, the citations and the page texts of one answer all read the same View, so an ingest landing
meanwhile cannot mix two states. `Backend.view()` gives the current one; a View is cheap to hold and must be
closed (or used as a context manager) so that the storage it pins can be reclaimed.

Passages are addressed by integer ids, stable for the life of the passage (merges and other documents' changes
do not renumber them). The content-hash `chunk_id` stays the external key (citations, JSON).

Two implementations: the embedded index folder (default) and PostgreSQL with pgvector (`ARRIVAL_DATABASE_URL`).
Everything above this module (fusion, ranking, folding, answers, evaluation) is written against the contract
only, so both give the same results for the same data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

# vector spaces: the primary embedder's ("dense", USE multilingual by default) and the second encoder's ("e5")
DENSE = "dense"
E5 = "e5"


@dataclass(frozen=True)
class DocInfo:
    doc_id: str
    path: str  # the resolved absolute path: a document's identity
    abspath: str
    sha256: str
    title: str
    page_count: int
    languages: tuple[str, ...]
    size: int
    chunks: int
    ingested_at: float = 0.0  # seconds since the epoch, when this version of the file was indexed


@dataclass(frozen=True)
class ChunkRow:
    """A passage with its provenance (what a hit shows)."""

    id: int
    chunk_id: str
    doc_id: str
    text: str
    page: int
    page_end: int
    start: int
    end: int
    heading: str
    lang: str
    source: str
    title: str


@dataclass(frozen=True)
class Meta:
    """Per-passage columns for a set of ids, row-aligned with `ids`; computed at ingest and stored, never
    recomputed at query time."""

    ids: np.ndarray  # int64
    lang: np.ndarray  # object: language code
    doc: np.ndarray  # object: doc_id
    question_list: np.ndarray  # float32: 1.0 for a passage made mostly of questions (guiding-question lists)
    prev: np.ndarray  # int64: the passage just before in the same document, -1 for none
    next: np.ndarray  # int64: the passage just after, -1 for none
    partner: np.ndarray  # int64: its translation in the other language (see `index.pairs`), -1 for none
    length: np.ndarray  # int32: characters
    heading: np.ndarray  # object: the nearest heading before the passage ("" for none)


@runtime_checkable
class Lexicon(Protocol):
    """The corpus's own bilingual word table (see `index.lexicon`)."""

    @property
    def languages(self) -> list[str]: ...

    def translate(self, query: str, src: str, tgt: str, embedder: Any | None = None) -> str: ...

    def table(self, src: str, tgt: str) -> dict[str, list[str]]: ...

    def nearest(self, vector: np.ndarray) -> float:
        """The highest cosine between `vector` and any word of the table (0 when empty)."""
        ...


@runtime_checkable
class View(Protocol):
    @property
    def generation(self) -> str:
        """Changes whenever the index changes."""
        ...

    @property
    def embedders(self) -> dict[str, str]:
        """Vector space -> id of the embedder its vectors were made with."""
        ...

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages that have passages."""
        ...

    def count(self) -> int:
        """Live passages."""
        ...

    def dense(self, space: str, qvec: np.ndarray, n: int, langs: Sequence[str] = (),
              docs: frozenset[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-n (ids, cosines) in a vector space, restricted to passages in `langs` (all when empty) and of the
        documents `docs` (all when None). Filters are applied in the search, not after it."""
        ...

    def vectors(self, space: str, ids: np.ndarray) -> np.ndarray:
        """The exact float32 unit vectors of `ids` (shape (len(ids), dim))."""
        ...

    def keyword(self, text: str, target: str, n: int, docs: frozenset[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n (ids, BM25 scores) of `text` analysed in language `target`, over the passages in `target`, with
        statistics (document frequencies, lengths) of those passages only."""
        ...

    def idf(self, words: Sequence[str], lang: str) -> dict[str, float]:
        """BM25 inverse document frequency of each word (analysed in `lang`) among the passages in `lang`."""
        ...

    def meta(self, ids: np.ndarray) -> Meta: ...

    def chunks(self, ids: Sequence[int] | np.ndarray) -> list[ChunkRow]:
        """Passages in the order of `ids` (unknown ids are skipped)."""
        ...

    def documents(self) -> dict[str, DocInfo]: ...

    def page_text(self, doc_id: str, number: int) -> str | None: ...

    def iter_chunks(self) -> Iterator[ChunkRow]:
        """Every live passage (evaluation's coverage scan)."""
        ...

    def iter_pages(self) -> Iterator[tuple[str, int, str]]:
        """(doc_id, number, text) of every page of every document."""
        ...

    @property
    def lexicon(self) -> Lexicon: ...

    def knows(self, word: str) -> bool:
        """Whether a folded word occurs in the indexed text, as a word or (5+ letters) by its first five
        letters."""
        ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


Found = tuple[np.ndarray, np.ndarray]


def search_channels(view: View, dense: Sequence[tuple[str, np.ndarray]], keyword: Sequence[tuple[str, str]], n: int,
                    langs: Sequence[str] = (), docs: frozenset[str] | None = None
                    ) -> tuple[list[Found], list[Found]]:
    """`view.dense(space, qvec, ...)` for each (space, qvec) of `dense` and `view.keyword(text, target, ...)`
    for each (text, target) of `keyword`: the searches of one question, which do not depend on each other. A
    View that can run them together (PostgreSQL: one round trip) has its own `search_channels`."""
    batch = getattr(view, "search_channels", None)
    if batch is not None:
        return batch(dense, keyword, n, langs, docs)  # type: ignore[no-any-return]
    return ([view.dense(space, qvec, n, langs, docs) for space, qvec in dense],
            [view.keyword(text, target, n, docs) for text, target in keyword])
