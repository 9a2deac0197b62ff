"""Where an index lives: the `Backend` contract, and the choice between the embedded folder and PostgreSQL.

A backend gives the current `View` (index.view), pins one for a request, and gives the one `Writer` allowed at a
time. The Indexer (index/build.py) parses, chunks and embeds, then writes through a Writer; everything it writes in
one ingest becomes visible at once, at `commit`, or not at all (a killed ingest leaves the index as it was).

- embedded (default): an index folder on this machine (`index.store`, `index.snapshot`), ARRIVAL_HOME;
- postgres: PostgreSQL with pgvector shared by several servers, ARRIVAL_DATABASE_URL=postgresql://...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from arrival.errors import IndexOpenError

if TYPE_CHECKING:
    from arrival.index.embed import Embedder
    from arrival.index.snapshot import Snapshot
    from arrival.index.store import NewDocument
    from arrival.index.view import DocInfo, View
    from arrival.settings import Settings


class Writer(Protocol):
    """The one writer of an index (holds the backend's write lock until its context ends)."""

    def documents(self) -> dict[str, DocInfo]:
        """The documents as the write started (empty for a rebuild)."""
        ...

    def add(self, new: NewDocument) -> None: ...

    def remove(self, doc_id: str) -> None: ...

    def move(self, doc_id: str, path: str) -> None:
        """The same file (same content) now lives at `path` (a resolved absolute path): no re-embedding."""
        ...

    def commit(self) -> None:
        """Make everything added, removed and moved visible at once (computing what is stored with it)."""
        ...


class Backend(Protocol):
    @property
    def location(self) -> str:
        """Where the index is, for messages (a folder, or a database URL without its password)."""
        ...

    def view(self) -> View:
        """The current state; IndexOpenError when there is no index yet."""
        ...

    def has_index(self) -> bool: ...

    def pinned(self) -> contextlib.AbstractContextManager[View]:
        """The current state, held for the length of a request."""
        ...

    def writer(self, embedders: dict[str, Embedder], chunk_size: int, chunk_overlap: int, wait: float = 0.0,
               rebuild: bool = False) -> contextlib.AbstractContextManager[Writer]:
        """The exclusive writer. Refuses (IndexOpenError) an index made with other embedders or chunking, unless
        `rebuild`; LockedError when another writer holds the index and `wait` seconds pass."""
        ...


class EmbeddedBackend:
    """The index folder (`index.store` generations)."""

    def __init__(self, home: Path, expected_embedder: str | None = None) -> None:
        from arrival.index.store import IndexStore

        self.store = IndexStore(Path(home))
        self.expected_embedder = expected_embedder
        self._view: Snapshot | None = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.store.home)

    def has_index(self) -> bool:
        return self.store.pointer() is not None

    def view(self) -> Snapshot:
        """CURRENT is read once; the generation it names is opened (or the cached one reused)."""
        with self._lock:
            pointer = self.store.pointer()
            if pointer is None:
                raise IndexOpenError(f"{self.store.home}: no index yet; run 'arrival ingest PATH...' first")
            if self._view is None or pointer != self._view.generation:
                self._view = self.store.open_generation(pointer, expected_embedder=self.expected_embedder)
                self._view.prefetch()  # a reader's generation: its search files into the page cache
            return self._view

    @contextlib.contextmanager
    def pinned(self) -> Iterator[View]:
        view = self.view()
        with self.store.reading(view.generation):
            yield view

    @contextlib.contextmanager
    def writer(self, embedders: dict[str, Embedder], chunk_size: int, chunk_overlap: int, wait: float = 0.0,
               rebuild: bool = False) -> Iterator[Writer]:
        from arrival.index.store import GenerationWriter

        with self.store.lock(wait=wait):
            self.store.remove_temporaries()  # left by an ingest that was killed while writing
            writer = GenerationWriter(self.store, embedders, chunk_size, chunk_overlap, rebuild)
            try:
                yield writer
            finally:
                writer.close()


def open_backend(settings: Settings, expected_embedder: str | None = None) -> Backend:
    """The backend the settings select: PostgreSQL when `database_url` is set, else the index folder."""
    url = getattr(settings, "database_url", "")
    if url:
        from arrival.index.postgres import PostgresBackend  # type: ignore[import-not-found]

        return PostgresBackend(url, expected_embedder)  # type: ignore[no-any-return]
    return EmbeddedBackend(settings.home, expected_embedder)
