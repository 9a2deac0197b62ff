"""The index on disk: generations of (SQLite metadata, vectors, FAISS, BM25, manifest), switched atomically.

Layout under the index home::

    CURRENT            name of the live generation (replaced atomically)
    gen-000007/        one complete, immutable index
        meta.sqlite    documents, pages (cleaned text), chunks (row = vector position)
        vectors.npy    float32 unit vectors, one row per chunk
        faiss.index    FAISS index over vectors.npy
        keyword/       bm25s arrays and vocabulary (JSON + .npy, loaded without pickle)
        lexicon/       the corpus's bilingual word table (words JSON + word vectors .npy)
        manifest.json  the recipe: embedder, dimension, chunker settings, counts, format version
    ingest.lock        held (flock) by the one process writing

A writer builds the next generation in a temporary folder and only then points CURRENT at it, so a reader
(or a process killed mid-ingest) always sees a complete index. Old generations are deleted after the switch.
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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import IndexBuildError, IndexOpenError, LockedError
from arrival.index.embed import Embedder
from arrival.index.keyword import KeywordIndex
from arrival.index.lexicon import Lexicon, build_lexicon
from arrival.index.vectors import build_vector_index, index_kind
from arrival.types import Chunk, Document

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: one BM25 index per language
REBUILD_HINT = "run 'arrival ingest --rebuild PATH...' to rebuild it"
_GEN_NAME = re.compile(r"gen-[0-9]+")

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, path TEXT UNIQUE NOT NULL, abspath TEXT NOT NULL, sha256 TEXT NOT NULL,
    title TEXT NOT NULL, page_count INTEGER NOT NULL, languages TEXT NOT NULL, size INTEGER NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE TABLE pages (doc_id TEXT NOT NULL, number INTEGER NOT NULL, text TEXT NOT NULL,
                    PRIMARY KEY (doc_id, number));
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL, text TEXT NOT NULL,
    page INTEGER NOT NULL, page_end INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    heading TEXT NOT NULL, lang TEXT NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_id);
"""


@dataclass(frozen=True)
class Manifest:
    format_version: int
    embedder: str
    dim: int
    normalized: bool
    chunk_size: int
    chunk_overlap: int
    vector_index: str
    documents: int
    chunks: int
    created: float

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except FileNotFoundError:
            raise IndexOpenError(f"{path}: manifest missing; {REBUILD_HINT}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexOpenError(f"{path}: manifest unreadable ({exc}); {REBUILD_HINT}") from None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2))


@dataclass(frozen=True)
class DocInfo:
    doc_id: str
    path: str
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
    row: int
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


class Snapshot:
    """A read-only view of one generation. Safe to share between threads for reading."""

    def __init__(self, gen_dir: Path, expected_embedder: str | None = None) -> None:
        import faiss

        self.gen_dir = gen_dir
        self.manifest = Manifest.read(gen_dir / "manifest.json")
        m = self.manifest
        if m.format_version != FORMAT_VERSION:
            raise IndexOpenError(f"{gen_dir}: index format {m.format_version}, this arrival reads "
                                 f"{FORMAT_VERSION}; {REBUILD_HINT}")
        if expected_embedder is not None and m.embedder != expected_embedder:
            raise IndexOpenError(
                f"{gen_dir.parent}: index was built with embedder '{m.embedder}', not '{expected_embedder}': "
                f"use --model {m.embedder}, or rebuild with 'arrival ingest --rebuild --model "
                f"{expected_embedder} PATH...'"
            )
        db_path = gen_dir / "meta.sqlite"
        if not db_path.exists():
            raise IndexOpenError(f"{db_path}: missing; {REBUILD_HINT}")
        try:
            self.db = sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            status = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if status != "ok":
                raise sqlite3.DatabaseError(status)
            n_chunks = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexOpenError(f"{db_path}: damaged SQLite database ({exc}); {REBUILD_HINT}") from None
        try:
            self.vectors = np.load(gen_dir / "vectors.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: a 0-byte .npy
            raise IndexOpenError(f"{gen_dir / 'vectors.npy'}: unreadable ({exc}); {REBUILD_HINT}") from None
        faiss_path = gen_dir / "faiss.index"
        try:
            self.faiss = faiss.read_index(str(faiss_path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
            raise IndexOpenError(f"{faiss_path}: corrupt FAISS index ({first[:120]}); {REBUILD_HINT}") from None
        try:
            self.keyword = KeywordIndex.load(gen_dir / "keyword")
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexOpenError(f"{gen_dir / 'keyword'}: unreadable keyword index ({exc}); "
                                 f"{REBUILD_HINT}") from None
        try:
            self.lexicon = Lexicon.load(gen_dir / "lexicon")
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexOpenError(f"{gen_dir / 'lexicon'}: unreadable ({exc}); {REBUILD_HINT}") from None
        counts = {"manifest": m.chunks, "sqlite": n_chunks, "faiss": self.faiss.ntotal,
                  "vectors": len(self.vectors), "keyword": self.keyword.size}
        if len(set(counts.values())) != 1:
            raise IndexOpenError(f"{gen_dir}: index parts disagree on the chunk count {counts}; {REBUILD_HINT}")
        if m.chunks and (self.faiss.d != m.dim or self.vectors.shape[1] != m.dim):
            raise IndexOpenError(f"{gen_dir}: vector dimension does not match the manifest; {REBUILD_HINT}")
        self._doc_cache: dict[str, DocInfo] | None = None

    def close(self) -> None:
        self.db.close()

    # -- documents ------------------------------------------------------------------------------------
    def documents(self) -> dict[str, DocInfo]:
        if self._doc_cache is None:
            rows = self.db.execute(
                "SELECT d.doc_id, path, abspath, sha256, title, page_count, languages, size, "
                "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id), ingested_at FROM documents d ORDER BY path"
            ).fetchall()
            self._doc_cache = {
                r[0]: DocInfo(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8], r[9])
                for r in rows
            }
        return self._doc_cache

    def page_text(self, doc_id: str, number: int) -> str | None:
        row = self.db.execute("SELECT text FROM pages WHERE doc_id=? AND number=?", (doc_id, number)).fetchone()
        return None if row is None else str(row[0])

    # -- chunks ---------------------------------------------------------------------------------------
    def chunks(self, rows: list[int]) -> list[ChunkRow]:
        """ChunkRows in the order of `rows`."""
        if not rows:
            return []
        docs = self.documents()
        found: dict[int, ChunkRow] = {}
        for i in range(0, len(rows), 900):
            part = [int(r) for r in rows[i:i + 900]]
            marks = ",".join("?" * len(part))
            for r in self.db.execute(
                f'SELECT row, chunk_id, doc_id, text, page, page_end, start, "end", heading, lang '
                f"FROM chunks WHERE row IN ({marks})", part
            ):
                d = docs.get(r[2])
                found[r[0]] = ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                                       source=d.path if d else "", title=d.title if d else "")
        return [found[r] for r in rows if r in found]

    def all_langs(self) -> np.ndarray:
        rows = self.db.execute("SELECT lang FROM chunks ORDER BY row").fetchall()
        return np.array([r[0] for r in rows], dtype=object)

    def all_doc_ids(self) -> np.ndarray:
        rows = self.db.execute("SELECT doc_id FROM chunks ORDER BY row").fetchall()
        return np.array([r[0] for r in rows], dtype=object)

    def stats(self) -> dict[str, Any]:
        docs = self.documents()
        langs = dict(self.db.execute("SELECT lang, count(*) FROM chunks GROUP BY lang ORDER BY 2 DESC"))
        size = sum(p.stat().st_size for p in self.gen_dir.rglob("*") if p.is_file())
        return {
            "documents": len(docs),
            "pages": sum(d.page_count for d in docs.values()),
            "chunks": self.manifest.chunks,
            "languages": langs,
            "embedder": self.manifest.embedder,
            "dim": self.manifest.dim,
            "vector_index": self.manifest.vector_index,
            "chunk_size": self.manifest.chunk_size,
            "chunk_overlap": self.manifest.chunk_overlap,
            "index_bytes": size,
            "generation": self.gen_dir.name,
        }


class IndexStore:
    """Finds, opens, locks and writes the generations under one home folder."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

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
        gen = self.current()
        return None if gen is None else Snapshot(gen, expected_embedder)

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
        add: list[tuple[Document, tuple[str, ...], list[Chunk], np.ndarray]],
        embedder: Embedder,
        chunk_size: int,
        chunk_overlap: int,
    ) -> Path:
        """Write base minus `remove` (doc ids) plus `add` as a new generation and make it live."""
        dim = embedder.dim
        name = self._next_gen_name()
        tmp = self.home / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            db = sqlite3.connect(tmp / "meta.sqlite")
            db.executescript(SCHEMA)
            texts: list[str] = []
            langs: list[str] = []
            parts: list[np.ndarray] = []
            row = 0
            if base is not None:
                keep_docs = [d for d in base.documents().values() if d.doc_id not in remove]
                keep_ids = {d.doc_id for d in keep_docs}
                for d in keep_docs:
                    db.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                               (d.doc_id, d.path, d.abspath, d.sha256, d.title, d.page_count,
                                json.dumps(list(d.languages)), d.size, d.ingested_at))
                db.executemany("INSERT INTO pages VALUES (?,?,?)",
                               [r for r in base.db.execute("SELECT doc_id, number, text FROM pages")
                                if r[0] in keep_ids])
                old_rows: list[int] = []
                for r in base.db.execute(
                    'SELECT row, chunk_id, doc_id, text, page, page_end, start, "end", heading, lang '
                    "FROM chunks ORDER BY row"
                ):
                    if r[2] not in keep_ids:
                        continue
                    db.execute("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)", (row, *r[1:]))
                    texts.append(r[3])
                    langs.append(r[9])
                    old_rows.append(r[0])
                    row += 1
                if old_rows:
                    parts.append(np.asarray(base.vectors[np.asarray(old_rows)], dtype=np.float32))
            for doc, doc_langs, chunks, vecs in add:
                db.execute(
                    "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                    (doc.doc_id, doc.path, str(Path(doc.path).resolve()), doc.sha256, doc.title,
                     doc.page_count, json.dumps(list(doc_langs)), Path(doc.path).stat().st_size, time.time()),
                )
                db.executemany("INSERT INTO pages VALUES (?,?,?)",
                               [(doc.doc_id, p.number, p.text) for p in doc.pages])
                db.executemany(
                    "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(row + i, c.chunk_id, c.doc_id, c.text, c.page, c.page_end, c.start, c.end, c.heading,
                      c.lang) for i, c in enumerate(chunks)],
                )
                row += len(chunks)
                texts.extend(c.text for c in chunks)
                langs.extend(c.lang for c in chunks)
                parts.append(np.asarray(vecs, dtype=np.float32).reshape(len(chunks), dim))
            db.commit()
            n_docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
            db.close()
            vectors = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
            if len(vectors) != row:
                raise IndexBuildError(f"internal: {len(vectors)} vectors for {row} chunks")
            np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
            import faiss

            kind = index_kind(len(vectors))
            faiss.write_index(build_vector_index(vectors.reshape(-1, dim), kind), str(tmp / "faiss.index"))
            KeywordIndex.build(texts, langs).save(tmp / "keyword")
            previous = base.lexicon if base is not None else None
            build_lexicon(texts, langs, embedder, previous).save(tmp / "lexicon")
            Manifest(FORMAT_VERSION, embedder.id, dim, True, chunk_size, chunk_overlap, kind, n_docs, row,
                     time.time()).write(tmp / "manifest.json")
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
        """Remove generations other than `keep` and temporaries left by killed writers."""
        for p in self.home.iterdir():
            if p != keep and (p.name.startswith("gen-") or (p.name.startswith(".gen-") and p.name.endswith(".tmp"))):
                shutil.rmtree(p, ignore_errors=True)
