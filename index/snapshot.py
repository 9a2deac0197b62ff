"""One generation of the embedded index, read-only: the `View` of an index folder (see `index.view`).

Files of a generation (written by `index.store`)::

    meta.sqlite      documents, pages (cleaned text), chunks (row = id = position in the vector files)
    vectors.npy      the primary embedder's float32 unit vectors, one row per chunk; faiss.index over them (exact,
                     or above index.vectors.FLAT_MAX IVF with 8-bit codes whose candidates are rescored from here)
    vectors-e5.npy   the second encoder's (when the index has one); faiss-e5.index over them above the exact-search
                     size (index.vectors.FLAT_MAX); below it the second space is searched by an exact product
    columns/         per-chunk columns (.npy) computed at ingest: question-list flag, neighbours, translation partner;
                     each row's language, document and heading (codes + table, `save_labels`)
    keyword/         one bm25s index per language
    lexicon/         the corpus's bilingual word table
    manifest.json    the recipe: embedders, dimensions, chunker settings, counts, format version
    delta/ tombstones.json partner.npy   what changed since the base was written (see `index.delta`)
"""

from __future__ import annotations

import fnmatch
import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import IndexOpenError
from arrival.index.delta import DELTA, PARTNER, DeltaPart, load_delta, read_tombstones, union_views
from arrival.index.keyword import KeywordIndex, analyze, fold
from arrival.index.lexicon import Lexicon, merge_lexicons
from arrival.index.stored import RowFile, StoredLabels, check_pages, labels_of, load_labels, prefetch
from arrival.index.vectors import RESCORE_FETCH, approximate, bitmap_selector, read_vector_index, search_selected
from arrival.index.view import DENSE, E5, ChunkRow, DocInfo, Meta

FORMAT_VERSION = 3  # 3: stored per-chunk columns, optional second vector space, section chunking
E5_FAISS = "faiss-e5.index"
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
    base_rows: int = -1  # rows of the base (-1: all `chunks`, no delta and no tombstones)
    delta_rows: int = 0

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


# A vector file up to this size is read into memory at open (2,170 passages: 4.4 MB; 100,000: 205 MB for the
# 512-d space); a larger one is read row by row when needed (RowFile), which costs ~5 ms per question at a million
# passages (3,200 reads) and keeps the server's memory 2.8 GB smaller than a memory map did.
VECTORS_IN_MEMORY = 256 * 2**20


class Snapshot:
    """A read-only view of one generation; safe to share between threads for reading."""

    def __init__(self, gen_dir: Path, expected_embedder: str | None = None) -> None:
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
        self.delta: DeltaPart | None = None
        try:
            self.db = sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            check_pages(self.db, db_path)
            base_n = self.db.execute("SELECT count(*) FROM main.chunks").fetchone()[0]
            dead = read_tombstones(gen_dir)
            union_views(self.db, gen_dir, (gen_dir / DELTA).is_dir(), dead)
            n_chunks = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            dead_rows = [r for (r,) in self.db.execute(
                "SELECT row FROM main.chunks WHERE doc_id IN (SELECT doc_id FROM temp.dead)")] if dead else []
        except sqlite3.DatabaseError as exc:
            raise IndexOpenError(f"{db_path}: damaged SQLite database ({exc}); {REBUILD_HINT}") from None
        self._vectors = {DENSE: self._load_vectors("vectors.npy", m.dim)}
        if m.e5_embedder:
            self._vectors[E5] = self._load_vectors("vectors-e5.npy", m.e5_dim)
        faiss_path = gen_dir / "faiss.index"
        try:
            self.faiss = read_vector_index(str(faiss_path))  # the base's
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
            raise IndexOpenError(f"{faiss_path}: corrupt FAISS index ({first[:120]}); {REBUILD_HINT}") from None
        self.space_faiss: dict[str, Any] = {DENSE: self.faiss}
        if m.e5_embedder and (gen_dir / E5_FAISS).exists():  # written above the exact-search size only
            try:
                self.space_faiss[E5] = read_vector_index(str(gen_dir / E5_FAISS))
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
                raise IndexOpenError(f"{gen_dir / E5_FAISS}: corrupt FAISS index ({first[:120]}); "
                                     f"{REBUILD_HINT}") from None
        try:
            self.bm25 = KeywordIndex.load(gen_dir / "keyword")  # the base's
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexOpenError(f"{gen_dir / 'keyword'}: unreadable keyword index ({exc}); "
                                 f"{REBUILD_HINT}") from None
        try:
            self._lexicon = Lexicon.load(gen_dir / "lexicon")
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexOpenError(f"{gen_dir / 'lexicon'}: unreadable ({exc}); {REBUILD_HINT}") from None
        base_expected = m.chunks if m.base_rows < 0 else m.base_rows
        counts = {"manifest": base_expected, "sqlite": base_n, "keyword": self.bm25.size,
                  **{f"faiss {s}": ix.ntotal for s, ix in self.space_faiss.items()},
                  **{f"vectors {s}": len(v) for s, v in self._vectors.items()}}
        if len(set(counts.values())) != 1:
            raise IndexOpenError(f"{gen_dir}: index parts disagree on the chunk count {counts}; {REBUILD_HINT}")
        if m.chunks and self.faiss.d != m.dim:
            raise IndexOpenError(f"{gen_dir}: vector dimension does not match the manifest; {REBUILD_HINT}")
        if (gen_dir / DELTA).is_dir():
            self.delta = load_delta(gen_dir / DELTA, base_n, {s: len(v[0]) if len(v) else (
                m.dim if s == DENSE else m.e5_dim) for s, v in self._vectors.items()})
            self._lexicon = merge_lexicons(self._lexicon, self.delta.lexicon)
        delta_n = self.delta.rows if self.delta is not None else 0
        if delta_n != m.delta_rows or n_chunks != m.chunks:
            raise IndexOpenError(f"{gen_dir}: the manifest says {m.chunks} live chunks ({m.delta_rows} in the "
                                 f"delta), the parts hold {n_chunks} ({delta_n}); {REBUILD_HINT}")
        self.base_rows, self.total = base_n, base_n + delta_n
        self.alive = np.ones(self.total, dtype=bool)
        self.alive[np.asarray(dead_rows, dtype=np.int64)] = False
        self.has_dead = bool(dead_rows)
        self.columns = self._load_columns(self.total)
        self.columns.surface = self._load_surface()
        self._doc_cache: dict[str, DocInfo] | None = None
        self._selectors: dict[tuple[str, ...], tuple[np.ndarray, Any]] = {}

    def _load_vectors(self, name: str, dim: int) -> RowFile | np.ndarray:
        path = self.gen_dir / name
        try:
            vectors = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: a 0-byte .npy
            raise IndexOpenError(f"{path}: unreadable ({exc}); {REBUILD_HINT}") from None
        if vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != dim):
            raise IndexOpenError(f"{path}: vector dimension does not match the manifest; {REBUILD_HINT}")
        if vectors.nbytes <= VECTORS_IN_MEMORY:
            return np.ascontiguousarray(vectors, dtype=np.float32)  # read once: no system call per question
        if isinstance(vectors, np.memmap) and vectors.dtype == np.float32 and vectors.flags.c_contiguous:
            return RowFile(path, vectors.offset, vectors.shape)
        return vectors

    def _load_columns(self, n: int) -> _Columns:
        path = self.gen_dir / "columns"
        try:
            arrays = {k: np.load(path / f"{k}.npy", allow_pickle=False)
                      for k in ("question_list", "prev", "next", "partner", "length")}
            if (self.gen_dir / PARTNER).exists():
                arrays["partner"] = np.load(self.gen_dir / PARTNER, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexOpenError(f"{path}: unreadable ({exc}); {REBUILD_HINT}") from None
        if self.delta is not None:
            for k, v in self.delta.columns.items():
                arrays[k] = np.concatenate([arrays[k], v.astype(arrays[k].dtype)])
        if any(len(a) != n for a in arrays.values()):
            raise IndexOpenError(f"{path}: columns do not match the chunk count; {REBUILD_HINT}")
        try:
            stored = load_labels(path, self.base_rows)
        except (OSError, ValueError, EOFError, IndexError) as exc:
            raise IndexOpenError(f"{path}: unreadable labels ({exc}); {REBUILD_HINT}") from None
        self.labels: StoredLabels | None = stored
        if stored is None:  # an index written before the labels were stored: from its rows
            labels = labels_of(self.db.execute("SELECT lang, doc_id, heading FROM main.chunks ORDER BY row"))
        else:
            labels = stored.columns
        if self.delta is not None:
            more = labels_of(self.db.execute("SELECT lang, doc_id, heading FROM delta.chunks ORDER BY row"))
            labels = {k: np.concatenate([v, more[k]]) for k, v in labels.items()}
        return _Columns(labels["lang"], labels["doc"], heading=labels["heading"], **arrays)

    def _chunk_counts(self) -> dict[str, int]:
        """Live passages per document: from the stored document codes of the base's rows (a count over every
        row of SQLite took 0.5 s per open at a million passages), plus the delta's from SQLite."""
        if self.labels is None:
            return dict(self.db.execute("SELECT doc_id, count(*) FROM chunks GROUP BY doc_id").fetchall())
        table = self.labels.doc_table
        counts = np.bincount(self.labels.doc_codes[self.alive[: self.base_rows]], minlength=len(table))
        out = {str(table[i]): int(counts[i]) for i in np.flatnonzero(counts)}
        if self.delta is not None:
            out.update(self.db.execute("SELECT doc_id, count(*) FROM delta.chunks GROUP BY doc_id").fetchall())
        return out

    def _allowed(self, langs: Sequence[str]) -> tuple[np.ndarray, Any]:
        """Rows that are live and in `langs` (all languages when empty), and a FAISS selector of the base's among
        them (None when it admits every base row); cached per language set."""
        key = tuple(sorted(langs))
        if key not in self._selectors:
            allowed = self.alive.copy()
            if key:
                allowed &= np.isin(self.columns.lang, list(key))
            base = allowed[: self.base_rows]
            self._selectors[key] = (allowed, None if base.all() else bitmap_selector(base))
        return self._selectors[key]

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
        if self.delta is None:
            return self.bm25.languages
        return tuple(sorted(set(self.bm25.languages) | set(self.delta.bm25.languages)))

    @property
    def lexicon(self) -> Lexicon:
        return self._lexicon

    def count(self) -> int:
        return self.manifest.chunks

    def _doc_rows(self, docs: frozenset[str], langs: Sequence[str]) -> np.ndarray:
        """The live rows of the documents `docs` in `langs` (all when empty), through the chunks_doc index."""
        wanted = sorted(docs)
        rows: list[int] = []
        for i in range(0, len(wanted), 900):
            part = wanted[i:i + 900]
            rows += [r for (r,) in self.db.execute(
                f"SELECT row FROM chunks WHERE doc_id IN ({','.join('?' * len(part))})", part)]
        ids = np.asarray(sorted(rows), dtype=np.int64)
        if langs and len(ids):
            ids = ids[np.isin(self.columns.lang[ids], list(langs))]
        return ids

    def dense(self, space: str, qvec: np.ndarray, n: int, langs: Sequence[str] = (),
              docs: frozenset[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
        if n <= 0 or not self.total:
            return empty
        qvec = np.asarray(qvec, dtype=np.float32)
        if docs is not None:  # a few documents: their passages, compared one by one
            return _top(self._doc_rows(docs, langs), lambda ids: self.vectors(space, ids) @ qvec, n)
        allowed, sel = self._allowed(langs)
        index = self.space_faiss.get(space)
        if index is None:  # the second space of a small index has no FAISS index: an exact product
            return _top(np.flatnonzero(allowed) if not allowed.all() else np.arange(self.total),
                        lambda ids: self.vectors(space, ids) @ qvec, n)
        if approximate(self.manifest.vector_index):  # 8-bit codes: more candidates, rescored exactly
            ids, _ = search_selected(index, qvec, n * RESCORE_FETCH, sel)
            ids, sims = _top(ids, lambda ids: self.vectors(space, ids) @ qvec, n)
        else:
            ids, sims = search_selected(index, qvec, n, sel)
        if self.delta is not None:
            d_ids = self.base_rows + np.flatnonzero(allowed[self.base_rows:])
            more_ids, more_sims = _top(d_ids, lambda ids: self.delta_vectors(space, ids) @ qvec, n)
            ids, sims = _top_of(np.concatenate([ids, more_ids]), np.concatenate([sims, more_sims]), n)
        return ids, sims

    def delta_vectors(self, space: str, ids: np.ndarray) -> np.ndarray:
        assert self.delta is not None
        return self.delta.vectors[space][np.asarray(ids, dtype=np.int64) - self.base_rows]

    def vectors(self, space: str, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self.delta is None or not len(ids) or ids.max() < self.base_rows:
            return np.asarray(self._vectors[space][ids], dtype=np.float32)
        out = np.empty((len(ids), self.delta.vectors[space].shape[1]), dtype=np.float32)
        in_base = ids < self.base_rows
        out[in_base] = self._vectors[space][ids[in_base]]
        out[~in_base] = self.delta_vectors(space, ids[~in_base])
        return out

    def keyword(self, text: str, target: str, n: int, docs: frozenset[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        keep = self.alive if self.has_dead else None
        if docs is not None:
            keep = np.zeros(self.total, dtype=bool)
            keep[self._doc_rows(docs, ())] = True
        rows, scores = self.bm25.top(text, target, target, n, keep)
        if self.delta is not None:
            more = self.delta.bm25.top(text, target, target, n, None if keep is None else keep[self.base_rows:],
                                       self.base_rows)
            rows, scores = np.concatenate([rows, more[0]]), np.concatenate([scores, more[1]])
            best = np.argsort(-scores, kind="stable")[:n]  # rows ascend within each part and the delta's follow
            rows, scores = rows[best], scores[best]
        return rows, scores

    def idf(self, words: Sequence[str], lang: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for w in words:
            tokens = analyze(w, lang)
            out[w] = max(self._idf(tokens, lang).values(), default=0.0) if tokens else 0.0
        return out

    def _idf(self, tokens: list[str], lang: str) -> dict[str, float]:
        if self.delta is None:
            return self.bm25.idf(tokens, lang)
        n_base, df_base = self.bm25.doc_freqs(tokens, lang)
        n_delta, df_delta = self.delta.bm25.doc_freqs(tokens, lang)
        n = max(n_base + n_delta, 1)
        return {t: float(np.log(1.0 + (n - df_base[t] - df_delta[t] + 0.5) / (df_base[t] + df_delta[t] + 0.5)))
                for t in tokens}

    def meta(self, ids: np.ndarray) -> Meta:
        ids = np.asarray(ids, dtype=np.int64)
        c = self.columns
        return Meta(ids, c.lang[ids], c.doc[ids], c.question_list[ids], c.prev[ids], c.next[ids], c.partner[ids],
                    c.length[ids], c.heading[ids])

    def documents(self) -> dict[str, DocInfo]:
        if self._doc_cache is None:
            counts = self._chunk_counts()
            rows = self.db.execute(
                "SELECT doc_id, path, abspath, sha256, title, page_count, languages, size, ingested_at "
                "FROM documents ORDER BY path"
            ).fetchall()
            self._doc_cache = {
                r[0]: DocInfo(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7],
                              int(counts.get(r[0], 0)), r[8])
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
        if self.delta is not None:
            words = [*words, *self.delta.surface]
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
            "base_chunks": self.base_rows,
            "delta_chunks": self.total - self.base_rows,
            "tombstoned_chunks": int((~self.alive).sum()),
            "chunk_size": self.manifest.chunk_size,
            "chunk_overlap": self.manifest.chunk_overlap,
            "index_bytes": size,
            "generation": self.gen_dir.name,
        }

    def prefetch(self) -> threading.Thread:
        """Ask the kernel to read this generation's search files (FAISS, vectors read by row, BM25 postings) into
        its page cache, in a background thread (posix_fadvise WILLNEED; nothing is read into this process).
        They are memory-mapped or read by row: without this, a server started on a cold cache reads them from
        disk a few pages at a time for its first questions (hybrid p50/p95 over the first 200 questions at a million
        passages: 81/173 ms without it, 51/123 ms with it). Files already cached cost nothing."""
        paths = [self.gen_dir / "faiss.index", self.gen_dir / E5_FAISS]
        paths += [v.path for v in self._vectors.values() if isinstance(v, RowFile)]
        paths += sorted((self.gen_dir / "keyword").glob("*/*.npy"))
        return prefetch(paths, f"prefetch-{self.gen_dir.name}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # a generation's files stay until the store collects them; nothing per request to release


def surface_words(texts: Sequence[str]) -> list[str]:
    """Every folded word of the texts, for `Snapshot.knows` (computed at ingest)."""
    return sorted({fold(w) for w in {w for text in texts for w in _WORD.findall(text)}})


def _top_of(ids: np.ndarray, sims: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best (ids, sims), best first, ties in id order."""
    if len(ids) > n:
        part = np.argpartition(-sims, n - 1)[:n]
        ids, sims = ids[part], sims[part]
    order = np.lexsort((ids, -sims))
    return ids[order].astype(np.int64), sims[order].astype(np.float32)


def _top(ids: np.ndarray, score: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best of `ids` by `score(ids)` (cosines), best first."""
    if not len(ids) or n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    return _top_of(ids.astype(np.int64), np.asarray(score(ids), dtype=np.float32), n)
