"""One generation of the embedded index, read-only: the `View` of an index folder (see `index.view`).

Files of a generation (written by `index.store`)::

    meta.sqlite      documents, pages (cleaned text), chunks (row = id = position in the vector files)
    vectors.npy      the primary embedder's float32 unit vectors, one row per chunk; faiss.index over them
    vectors-e5.npy   the second encoder's (when the index has one)
    columns/         per-chunk columns (.npy) computed at ingest: question-list flag, neighbours, translation partner
    keyword/         one bm25s index per language
    lexicon/         the corpus's bilingual word table
    manifest.json    the recipe: embedders, dimensions, chunker settings, counts, format version
"""

from __future__ import annotations

import fnmatch
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import IndexOpenError
from arrival.index.keyword import KeywordIndex, analyze, fold
from arrival.index.lexicon import Lexicon
from arrival.index.vectors import search_vectors
from arrival.index.view import DENSE, E5, ChunkRow, DocInfo, Meta

FORMAT_VERSION = 3  # 3: stored per-chunk columns, optional second vector space, section chunking
REBUILD_HINT = "run 'arrival ingest --rebuild PATH...' to rebuild it"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


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
    e5_embedder: str = ""  # the second encoder's id, "" when the index has none
    e5_dim: int = 0

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            fields = cls.__dataclass_fields__
            return cls(**{k: data[k] for k in fields if k in data or fields[k].default is fields[k].default_factory})
        except FileNotFoundError:
            raise IndexOpenError(f"{path}: manifest missing; {REBUILD_HINT}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexOpenError(f"{path}: manifest unreadable ({exc}); {REBUILD_HINT}") from None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2))


def doc_glob_matches(d: DocInfo, globs: Sequence[str]) -> bool:
    """Whether a document answers to one of the `--doc` globs (path, file name, title, or part of the path)."""
    return any(fnmatch.fnmatch(d.path, g) or fnmatch.fnmatch(Path(d.path).name, g) or fnmatch.fnmatch(d.title, g)
               or fnmatch.fnmatch(d.path, f"*{g}*") for g in globs)


@dataclass
class _Columns:
    lang: np.ndarray
    doc: np.ndarray
    question_list: np.ndarray
    prev: np.ndarray
    next: np.ndarray
    partner: np.ndarray
    length: np.ndarray
    heading: np.ndarray
    surface: tuple[frozenset[str], frozenset[str]] | None = field(default=None)


class Snapshot:
    """A read-only view of one generation; safe to share between threads for reading."""

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
        self._vectors = {DENSE: self._load_vectors("vectors.npy", m.dim)}
        if m.e5_embedder:
            self._vectors[E5] = self._load_vectors("vectors-e5.npy", m.e5_dim)
        faiss_path = gen_dir / "faiss.index"
        try:
            self.faiss = faiss.read_index(str(faiss_path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
            raise IndexOpenError(f"{faiss_path}: corrupt FAISS index ({first[:120]}); {REBUILD_HINT}") from None
        try:
            self.bm25 = KeywordIndex.load(gen_dir / "keyword")
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexOpenError(f"{gen_dir / 'keyword'}: unreadable keyword index ({exc}); "
                                 f"{REBUILD_HINT}") from None
        try:
            self._lexicon = Lexicon.load(gen_dir / "lexicon")
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexOpenError(f"{gen_dir / 'lexicon'}: unreadable ({exc}); {REBUILD_HINT}") from None
        counts = {"manifest": m.chunks, "sqlite": n_chunks, "faiss": self.faiss.ntotal, "keyword": self.bm25.size,
                  **{f"vectors {s}": len(v) for s, v in self._vectors.items()}}
        if len(set(counts.values())) != 1:
            raise IndexOpenError(f"{gen_dir}: index parts disagree on the chunk count {counts}; {REBUILD_HINT}")
        if m.chunks and self.faiss.d != m.dim:
            raise IndexOpenError(f"{gen_dir}: vector dimension does not match the manifest; {REBUILD_HINT}")
        self.columns = self._load_columns(n_chunks)
        self.columns.surface = self._load_surface()
        self._doc_cache: dict[str, DocInfo] | None = None

    def _load_vectors(self, name: str, dim: int) -> np.ndarray:
        path = self.gen_dir / name
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: a 0-byte .npy
            raise IndexOpenError(f"{path}: unreadable ({exc}); {REBUILD_HINT}") from None
        if vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != dim):
            raise IndexOpenError(f"{path}: vector dimension does not match the manifest; {REBUILD_HINT}")
        return vectors

    def _load_columns(self, n: int) -> _Columns:
        path = self.gen_dir / "columns"
        try:
            arrays = {k: np.load(path / f"{k}.npy", allow_pickle=False)
                      for k in ("question_list", "prev", "next", "partner", "length")}
        except (OSError, ValueError, EOFError) as exc:
            raise IndexOpenError(f"{path}: unreadable ({exc}); {REBUILD_HINT}") from None
        if any(len(a) != n for a in arrays.values()):
            raise IndexOpenError(f"{path}: columns do not match the chunk count; {REBUILD_HINT}")
        rows = self.db.execute("SELECT lang, doc_id, heading FROM chunks ORDER BY row").fetchall()
        return _Columns(np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=object),
                        heading=np.array([r[2] for r in rows], dtype=object), **arrays)

    # -- the View contract ------------------------------------------------------------------------------
    @property
    def generation(self) -> str:
        return self.gen_dir.name

    @property
    def embedders(self) -> dict[str, str]:
        out = {DENSE: self.manifest.embedder}
        if self.manifest.e5_embedder:
            out[E5] = self.manifest.e5_embedder
        return out

    @property
    def languages(self) -> tuple[str, ...]:
        return self.bm25.languages

    @property
    def lexicon(self) -> Lexicon:
        return self._lexicon

    def count(self) -> int:
        return self.manifest.chunks

    def _mask(self, langs: Sequence[str], docs: frozenset[str] | None) -> np.ndarray | None:
        if not langs and docs is None:
            return None
        mask = np.ones(self.count(), dtype=bool)
        if langs:
            mask &= np.isin(self.columns.lang, list(langs))
        if docs is not None:
            mask &= np.isin(self.columns.doc, list(docs))
        return mask

    def dense(self, space: str, qvec: np.ndarray, n: int, langs: Sequence[str] = (),
              docs: frozenset[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        mask = self._mask(langs, docs)
        if space == DENSE and mask is None:
            return search_vectors(self.faiss, qvec, n)
        vectors = self._vectors[space]
        allowed = np.arange(len(vectors)) if mask is None else np.flatnonzero(mask)
        if not len(allowed) or n <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        sims = np.asarray(vectors[allowed], dtype=np.float32) @ qvec
        top = np.argpartition(-sims, min(n, len(sims)) - 1)[:n]
        top = top[np.argsort(-sims[top], kind="stable")]
        return allowed[top].astype(np.int64), sims[top]

    def vectors(self, space: str, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self._vectors[space][np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def keyword(self, text: str, target: str, n: int, docs: frozenset[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.bm25.scores(text, target)
        if docs is not None:
            scores *= np.isin(self.columns.doc, list(docs))
        hit = np.flatnonzero(scores > 0)
        if not len(hit) or n <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        top = hit[np.argsort(-scores[hit], kind="stable")[:n]]
        return top.astype(np.int64), scores[top]

    def idf(self, words: Sequence[str], lang: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for w in words:
            tokens = analyze(w, lang)
            out[w] = max(self.bm25.idf(tokens, lang).values(), default=0.0) if tokens else 0.0
        return out

    def meta(self, ids: np.ndarray) -> Meta:
        ids = np.asarray(ids, dtype=np.int64)
        c = self.columns
        return Meta(ids, c.lang[ids], c.doc[ids], c.question_list[ids], c.prev[ids], c.next[ids], c.partner[ids],
                    c.length[ids], c.heading[ids])

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

    def chunks(self, ids: Sequence[int] | np.ndarray) -> list[ChunkRow]:
        if not len(ids):
            return []
        wanted = [int(r) for r in ids]
        found: dict[int, ChunkRow] = {}
        for i in range(0, len(wanted), 900):
            part = wanted[i:i + 900]
            marks = ",".join("?" * len(part))
            for row in self._rows(f"WHERE row IN ({marks})", part):
                found[row.id] = row
        return [found[r] for r in wanted if r in found]

    def _rows(self, where: str = "", params: Sequence[Any] = ()) -> Iterator[ChunkRow]:
        docs = self.documents()
        for r in self.db.execute('SELECT row, chunk_id, doc_id, text, page, page_end, start, "end", heading, lang '
                                 f"FROM chunks {where} ORDER BY row", list(params)):
            d = docs.get(r[2])
            yield ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                           source=d.path if d else "", title=d.title if d else "")

    def iter_chunks(self) -> Iterator[ChunkRow]:
        return self._rows()

    def iter_pages(self) -> Iterator[tuple[str, int, str]]:
        for doc_id, number, text in self.db.execute("SELECT doc_id, number, text FROM pages ORDER BY doc_id, number"):
            yield str(doc_id), int(number), str(text)

    def knows(self, word: str) -> bool:
        words, prefixes = self._surface()
        folded = fold(word)
        if folded in words or (len(folded) >= 5 and folded[:5] in prefixes):
            return True
        return folded.isdigit() and any(w.startswith(folded) for w in words)  # years glued to note markers

    def _surface(self) -> tuple[frozenset[str], frozenset[str]]:
        assert self.columns.surface is not None
        return self.columns.surface

    def _load_surface(self) -> tuple[frozenset[str], frozenset[str]]:
        path = self.gen_dir / "surface.json"
        try:
            words = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError("not a list of words")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise IndexOpenError(f"{path}: unreadable ({exc}); {REBUILD_HINT}") from None
        found = frozenset(words)
        return found, frozenset(w[:5] for w in found if len(w) >= 5)

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
            "second_embedder": self.manifest.e5_embedder or None,
            "dim": self.manifest.dim,
            "vector_index": self.manifest.vector_index,
            "chunk_size": self.manifest.chunk_size,
            "chunk_overlap": self.manifest.chunk_overlap,
            "index_bytes": size,
            "generation": self.gen_dir.name,
        }

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # a generation's files stay until the store collects them; nothing per request to release


def surface_words(texts: Sequence[str]) -> list[str]:
    """Every folded word of the texts, for `Snapshot.knows` (computed at ingest)."""
    return sorted({fold(w) for text in texts for w in _WORD.findall(text)})
