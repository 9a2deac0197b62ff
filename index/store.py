"""The index on disk: generations of (SQLite metadata, vectors, FAISS, BM25, manifest), switched atomically.

Layout under the index home::

    CURRENT            name of the live generation (replaced atomically)
    gen-000007/        one complete, immutable index (files: see `index.snapshot`)
    ingest.lock        held (flock) by the one process writing

A writer builds the next generation in a temporary folder and only then points CURRENT at it, so a reader
(or a process killed mid-ingest) always sees a complete index. A generation that stopped being live is removed
once no request of this process holds it and GRACE_SECONDS have passed (other processes' requests are shorter).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arrival.errors import IndexBuildError, IndexOpenError, LockedError
from arrival.index.delta import SCHEMA
from arrival.index.derived import neighbours, partners, question_list
from arrival.index.embed import Embedder
from arrival.index.incremental import fits, write_incremental
from arrival.index.keyword import KeywordIndex
from arrival.index.lexicon import build_lexicon
from arrival.index.snapshot import (
    E5_FAISS,
    FORMAT_VERSION,
    REBUILD_HINT,
    Manifest,
    Snapshot,
    surface_words,
)
from arrival.index.stored import save_labels
from arrival.index.vectors import build_vector_index, index_kind
from arrival.index.view import DENSE, E5, DocInfo
from arrival.types import Chunk, Document

log = logging.getLogger(__name__)

_GEN_NAME = re.compile(r"gen-[0-9]+")
GRACE_SECONDS = 120.0  # a generation is removed this long after it stops being live, when no reader holds it
# (ARRIVAL_GC_GRACE_SECONDS overrides it)
_READERS: dict[tuple[str, str], int] = {}  # (home, generation) -> requests of this process reading it
_READERS_LOCK = threading.Lock()



@dataclass(frozen=True)
class NewDocument:
    """A parsed, chunked and embedded document, ready to be written."""

    doc: Document
    langs: tuple[str, ...]
    chunks: list[Chunk]
    vectors: dict[str, np.ndarray]  # vector space -> (len(chunks), dim)


def _fit(ids: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -1, dtype=np.int64)
    out[: min(n, len(ids))] = ids[:n]
    return out


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


class GenerationWriter:
    """The embedded backend's `Writer`: collects an ingest's changes and writes them as one new generation."""

    def __init__(self, store: IndexStore, embedders: dict[str, Embedder], chunk_size: int, chunk_overlap: int,
                 rebuild: bool) -> None:
        self.store = store
        self.embedders = embedders
        self.chunking = (chunk_size, chunk_overlap)
        self.rebuild = rebuild
        self.base = None if rebuild else store.open(expected_embedder=embedders[DENSE].id)
        self._add: list[NewDocument] = []
        self._remove: set[str] = set()
        self._moves: dict[str, str] = {}
        m = self.base.manifest if self.base is not None else None
        if m is not None and m.chunks and (m.chunk_size, m.chunk_overlap) != self.chunking:
            self.close()
            raise IndexOpenError(f"{store.home}: index was built with chunk size {m.chunk_size}/overlap "
                                 f"{m.chunk_overlap}; rebuild with 'arrival ingest --rebuild PATH...' to change it")
        if self.base is not None and set(self.base.embedders) != set(embedders):
            have, want = sorted(self.base.embedders), sorted(embedders)
            self.close()
            raise IndexOpenError(f"{store.home}: the index has vector spaces {have}, these settings embed {want}; "
                                 f"{REBUILD_HINT}")

    def documents(self) -> dict[str, DocInfo]:
        return self.base.documents() if self.base is not None else {}

    def add(self, new: NewDocument) -> None:
        self._add.append(new)

    def remove(self, doc_id: str) -> None:
        self._remove.add(doc_id)

    def move(self, doc_id: str, path: str) -> None:
        self._moves[doc_id] = path

    def commit(self) -> None:
        if self._add or self._remove or self._moves or self.rebuild or self.base is None:
            self.store.write_generation(self.base, self._remove, self._add, self.embedders, *self.chunking,
                                        moves=self._moves)

    def close(self) -> None:
        if self.base is not None:
            self.base.close()


class IndexStore:
    """Finds, opens, locks and writes the generations under one home folder."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        try:
            self.grace = float(os.environ.get("ARRIVAL_GC_GRACE_SECONDS", GRACE_SECONDS))
        except ValueError:
            self.grace = GRACE_SECONDS

    def _check_home(self) -> None:
        if self.home.exists() and not self.home.is_dir():
            raise IndexOpenError(f"{self.home}: not a folder; the index home (--home, ARRIVAL_HOME) must be a folder")

    @property
    def current_file(self) -> Path:
        return self.home / "CURRENT"

    def pointer(self) -> str | None:
        """The live generation's name as CURRENT says ("gen-000007"); None when there is no index yet.

        Anything else in CURRENT (binary garbage, a path, an empty file) is an IndexOpenError, never a
        UnicodeDecodeError or a path outside the home.
        """
        self._check_home()
        try:
            raw = self.current_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexOpenError(f"{self.current_file}: unreadable pointer file ({exc.strerror or exc}); "
                                 f"{REBUILD_HINT}") from None
        name = raw.decode("ascii", errors="replace").strip()
        if not _GEN_NAME.fullmatch(name):
            raise IndexOpenError(f"{self.current_file}: damaged pointer file; {REBUILD_HINT}")
        return name

    def current(self) -> Path | None:
        name = self.pointer()
        if name is None:
            return None
        gen = self.home / name
        if not gen.is_dir():
            raise IndexOpenError(f"{gen}: live index folder is missing; {REBUILD_HINT}")
        return gen

    def open(self, expected_embedder: str | None = None) -> Snapshot | None:
        name = self.pointer()
        return None if name is None else self.open_generation(name, expected_embedder)

    def open_generation(self, name: str, expected_embedder: str | None = None) -> Snapshot:
        """Open the generation `name` (as CURRENT named it when it was read, once)."""
        gen = self.home / name
        if not gen.is_dir():
            raise IndexOpenError(f"{gen}: live index folder is missing; {REBUILD_HINT}")
        return Snapshot(gen, expected_embedder)

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """Hold generation `name` for the length of a request: it is not removed while held in this process,
        and another process's generations are kept for GRACE_SECONDS after they stop being live."""
        key = (str(self.home.resolve()), name)
        with _READERS_LOCK:
            _READERS[key] = _READERS.get(key, 0) + 1
        try:
            yield
        finally:
            with _READERS_LOCK:
                _READERS[key] -= 1
                if not _READERS[key]:
                    del _READERS[key]

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Exclusive write lock (flock: released by the OS if the holder dies, so it never goes stale)."""
        self._check_home()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexOpenError(f"{self.home}: cannot create the index folder ({exc.strerror or exc})") from None
        path = self.home / "ingest.lock"
        fh = path.open("a+")
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        fh.seek(0)
                        holder = fh.read().strip() or "unknown"
                        raise LockedError(
                            f"{self.home}: another ingest is running (pid {holder}); wait for it or use --wait"
                        ) from None
                    time.sleep(0.2)
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    def _next_gen_name(self) -> str:
        nums = [int(p.name[4:]) for p in self.home.glob("gen-*") if p.name[4:].isdigit()]
        return f"gen-{max(nums, default=0) + 1:06d}"

    def write_generation(
        self,
        base: Snapshot | None,
        remove: set[str],
        add: list[NewDocument],
        embedders: dict[str, Embedder],
        chunk_size: int,
        chunk_overlap: int,
        moves: dict[str, str] | None = None,
    ) -> Path:
        """Write base minus `remove` (doc ids) plus `add` as a new generation and make it live. `embedders` maps
        vector spaces to embedders: DENSE (required) and E5 (optional, when the index has a second encoder).
        A small change is written incrementally (`index.incremental`), anything else as a complete generation."""
        name = self._next_gen_name()
        tmp = self.home / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            if base is not None and fits(base, remove, add, moves or {}):
                write_incremental(tmp, base, remove, add, embedders, chunk_size, chunk_overlap)
            else:
                self._write_full(tmp, base, remove, add, embedders, chunk_size, chunk_overlap, moves)
            for p in tmp.rglob("*"):
                if p.is_file():
                    _fsync_file(p)
            _fsync_dir(tmp)
            final = self.home / name
            os.replace(tmp, final)
            pointer = self.home / ".CURRENT.tmp"
            pointer.write_text(name)
            _fsync_file(pointer)
            os.replace(pointer, self.current_file)
            _fsync_dir(self.home)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise IndexBuildError(f"{self.home}: cannot write the index: {exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.collect_garbage(keep=final)
        return final

    def _write_full(self, tmp: Path, base: Snapshot | None, remove: set[str], add: list[NewDocument],
                    embedders: dict[str, Embedder], chunk_size: int, chunk_overlap: int,
                    moves: dict[str, str] | None) -> None:
        """A complete generation in `tmp`: base minus `remove` plus `add`, every part rebuilt (the merge)."""
        embedder = embedders[DENSE]
        spaces = [sp for sp in (DENSE, E5) if sp in embedders]
        dims = {sp: embedders[sp].dim for sp in spaces}
        db = sqlite3.connect(tmp / "meta.sqlite")
        db.executescript(SCHEMA)
        texts: list[str] = []
        langs: list[str] = []
        headings: list[str | None] = []
        order: list[tuple[str, int, int, int]] = []
        parts: dict[str, list[np.ndarray]] = {sp: [] for sp in spaces}
        qlist: list[float] = []
        row = 0
        if base is not None:
            keep_docs = [d for d in base.documents().values() if d.doc_id not in remove]
            keep_ids = {d.doc_id for d in keep_docs}
            for d in keep_docs:
                path = (moves or {}).get(d.doc_id, d.path)
                db.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                           (d.doc_id, path, path if d.doc_id in (moves or {}) else d.abspath, d.sha256, d.title,
                            d.page_count, json.dumps(list(d.languages)), d.size, d.ingested_at))
            db.executemany("INSERT INTO pages VALUES (?,?,?)",
                           [r for r in base.iter_pages() if r[0] in keep_ids])
            old_rows: list[int] = []
            for c in base.iter_chunks():
                if c.doc_id not in keep_ids:
                    continue
                db.execute("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                           (row, c.chunk_id, c.doc_id, c.text, c.page, c.page_end, c.start, c.end, c.heading,
                            c.lang))
                texts.append(c.text)
                langs.append(c.lang)
                headings.append(c.heading)
                order.append((c.doc_id, c.page, c.start, row))
                old_rows.append(c.id)
                row += 1
            if old_rows:
                ids = np.asarray(old_rows)
                for sp in spaces:
                    parts[sp].append(base.vectors(sp, ids))
                qlist.extend(base.columns.question_list[ids].tolist())
        for new in add:
            doc, chunks = new.doc, new.chunks
            db.execute(
                "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                (doc.doc_id, doc.path, str(Path(doc.path).resolve()), doc.sha256, doc.title,
                 doc.page_count, json.dumps(list(new.langs)), Path(doc.path).stat().st_size, time.time()),
            )
            db.executemany("INSERT INTO pages VALUES (?,?,?)",
                           [(doc.doc_id, p.number, p.text) for p in doc.pages])
            db.executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(row + i, c.chunk_id, c.doc_id, c.text, c.page, c.page_end, c.start, c.end, c.heading,
                  c.lang) for i, c in enumerate(chunks)],
            )
            order.extend((c.doc_id, c.page, c.start, row + i) for i, c in enumerate(chunks))
            row += len(chunks)
            texts.extend(c.text for c in chunks)
            langs.extend(c.lang for c in chunks)
            headings.extend(c.heading for c in chunks)
            qlist.extend(question_list(c.text) for c in chunks)
            for sp in spaces:
                parts[sp].append(np.asarray(new.vectors[sp], dtype=np.float32).reshape(len(chunks), dims[sp]))
        db.commit()
        n_docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        db.close()
        vectors: dict[str, np.ndarray] = {}
        for sp in spaces:
            vectors[sp] = np.concatenate(parts[sp]) if parts[sp] else np.zeros((0, dims[sp]), dtype=np.float32)
            if len(vectors[sp]) != row:
                raise IndexBuildError(f"internal: {len(vectors[sp])} {sp} vectors for {row} chunks")
            np.save(tmp / ("vectors.npy" if sp == DENSE else f"vectors-{sp}.npy"), vectors[sp],
                    allow_pickle=False)
        import faiss

        kind = index_kind(row)
        faiss.write_index(build_vector_index(vectors[DENSE], kind), str(tmp / "faiss.index"))
        if E5 in vectors and kind != "flat":  # above the exact-search size the second space gets its own index
            faiss.write_index(build_vector_index(vectors[E5], kind), str(tmp / E5_FAISS))
        prev, nxt = neighbours(order)
        columns = {"question_list": np.asarray(qlist, dtype=np.float32), "prev": _fit(prev, row),
                   "next": _fit(nxt, row), "partner": partners(vectors[DENSE], langs, texts),
                   "length": np.asarray([len(t) for t in texts], dtype=np.int32)}
        (tmp / "columns").mkdir()
        for col, values in columns.items():
            np.save(tmp / "columns" / f"{col}.npy", values, allow_pickle=False)
        save_labels(tmp / "columns", langs, [o[0] for o in order], headings)
        (tmp / "surface.json").write_text(json.dumps(surface_words(texts), ensure_ascii=False))
        KeywordIndex.build(texts, langs).save(tmp / "keyword")
        previous = base.lexicon if base is not None else None
        build_lexicon(texts, langs, embedder, previous).save(tmp / "lexicon")
        Manifest(FORMAT_VERSION, embedder.id, dims[DENSE], True, chunk_size, chunk_overlap, kind, n_docs, row,
                 time.time(), embedders[E5].id if E5 in embedders else "", dims.get(E5, 0)
                 ).write(tmp / "manifest.json")

    def remove_temporaries(self) -> None:
        """Delete what a killed writer left half-written (call with the lock held)."""
        if not self.home.is_dir():
            return
        for p in self.home.iterdir():
            if p.name.startswith(".gen-") and p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
            elif p.name == ".CURRENT.tmp":
                with contextlib.suppress(OSError):
                    p.unlink()

    def collect_garbage(self, keep: Path) -> None:
        """Remove generations other than `keep` that no reader of this process holds and that stopped being live
        more than GRACE_SECONDS ago (longer than any request, so another process's readers are safe too), and the
        temporaries left by killed writers."""
        now = time.time()
        home = str(self.home.resolve())
        for p in self.home.iterdir():
            if p.name.startswith(".gen-") and p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
                continue
            if p == keep or not _GEN_NAME.fullmatch(p.name):
                continue
            retired = p / "retired"
            if not retired.exists():
                with contextlib.suppress(OSError):
                    retired.write_text(str(now))
                if self.grace > 0:
                    continue
            with _READERS_LOCK:
                held = _READERS.get((home, p.name), 0) > 0
            try:
                since = float(retired.read_text() or now)
            except (OSError, ValueError):
                since = now
            if not held and now - since >= self.grace:
                shutil.rmtree(p, ignore_errors=True)
