"""The delta of a generation: the passages added since the last merge, kept beside the base so that an ingest of
a few documents writes those documents only (see `index.store` for when a delta is merged into the base).

A generation's folder holds its base at the top (`meta.sqlite`, `vectors.npy`, `faiss.index`, `keyword/`, ...;
hard links to the files of the generation that wrote the base, which never change) and, optionally::

    delta/            the same files for the delta's passages (rows continue the base's: B, B+1, ...)
    tombstones.json   doc_ids of base documents removed since the last merge (their rows stay, unseen)
    partner.npy       translation partners of every row (they change as documents come and go)

The delta's keyword index scores with the base's document frequencies and passage counts added to its own
(`KeywordIndex.use_statistics_with`), so its scores compare with the base's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import IndexOpenError
from arrival.index.keyword import KeywordIndex
from arrival.index.lexicon import Lexicon

DELTA = "delta"
TOMBSTONES = "tombstones.json"
PARTNER = "partner.npy"
REBUILD_HINT = "run 'arrival ingest --rebuild PATH...' to rebuild it"
COLUMNS = ("question_list", "prev", "next", "length")

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


@dataclass
class DeltaPart:
    """A delta opened for reading: rows offset..offset+rows-1."""

    offset: int
    rows: int
    vectors: dict[str, np.ndarray]
    faiss: Any
    bm25: KeywordIndex
    columns: dict[str, np.ndarray]
    surface: list[str]
    lexicon: Lexicon


def _fail(path: Path, exc: BaseException) -> IndexOpenError:
    first = (str(exc).strip().splitlines() or ["read error"])[0][:160]
    return IndexOpenError(f"{path}: unreadable ({first}); {REBUILD_HINT}")


def load_delta(folder: Path, offset: int, spaces: dict[str, int]) -> DeltaPart:
    """Open `folder` (a generation's delta/); `spaces` maps a vector space to its dimension."""
    import faiss

    try:
        db = sqlite3.connect(f"file:{folder / 'meta.sqlite'}?mode=ro&immutable=1", uri=True)
        try:
            rows, lo, hi = db.execute("SELECT count(*), min(row), max(row) FROM chunks").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise IndexOpenError(f"{folder / 'meta.sqlite'}: damaged SQLite database ({exc}); {REBUILD_HINT}") from None
    if rows and (lo, hi) != (offset, offset + rows - 1):
        raise IndexOpenError(f"{folder}: delta rows {lo}..{hi} do not follow the base's {offset}; {REBUILD_HINT}")
    vectors = {}
    for space, dim in spaces.items():
        path = folder / ("vectors.npy" if space == "dense" else f"vectors-{space}.npy")
        try:
            vectors[space] = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise _fail(path, exc) from None
        if vectors[space].shape != (rows, dim):
            raise IndexOpenError(f"{path}: {vectors[space].shape} does not match the delta; {REBUILD_HINT}")
    try:
        index = faiss.read_index(str(folder / "faiss.index"))
    except RuntimeError as exc:
        raise IndexOpenError(f"{folder / 'faiss.index'}: corrupt FAISS index ({str(exc)[:120]}); "
                             f"{REBUILD_HINT}") from None
    try:
        bm25 = KeywordIndex.load(folder / "keyword")
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise _fail(folder / "keyword", exc) from None
    try:
        columns = {c: np.load(folder / "columns" / f"{c}.npy", allow_pickle=False) for c in COLUMNS}
        surface = json.loads((folder / "surface.json").read_text(encoding="utf-8"))
        lexicon = Lexicon.load(folder / "lexicon")
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as exc:
        raise _fail(folder, exc) from None
    sizes = {"faiss": index.ntotal, "keyword": bm25.size, **{c: len(v) for c, v in columns.items()}}
    if any(v != rows for v in sizes.values()):
        raise IndexOpenError(f"{folder}: delta parts disagree on the row count ({rows}: {sizes}); {REBUILD_HINT}")
    return DeltaPart(offset, rows, vectors, index, bm25, columns, surface, lexicon)


def read_tombstones(gen_dir: Path) -> list[str]:
    path = gen_dir / TOMBSTONES
    if not path.exists():
        return []
    try:
        dead = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(dead, list) or not all(isinstance(d, str) for d in dead):
            raise ValueError("not a list of doc_ids")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, exc) from None
    return dead


def union_views(db: sqlite3.Connection, gen_dir: Path, has_delta: bool, dead: list[str]) -> None:
    """Make `documents`, `pages` and `chunks` on `db` (the base's connection) name the generation's live ones: the
    base's minus the tombstoned documents, plus the delta's (temporary views shadow the base's tables).
    `all_chunks` names every row, tombstoned ones included (row positions)."""
    if not has_delta and not dead:
        db.execute("CREATE TEMP VIEW all_chunks AS SELECT * FROM main.chunks")
        return
    db.execute("CREATE TEMP TABLE dead (doc_id TEXT PRIMARY KEY)")
    db.executemany("INSERT INTO temp.dead VALUES (?)", [(d,) for d in dead])
    live = "WHERE doc_id NOT IN (SELECT doc_id FROM temp.dead)"
    extra = {"documents": "", "pages": "", "chunks": ""}
    if has_delta:
        uri = f"file:{gen_dir / DELTA / 'meta.sqlite'}?mode=ro&immutable=1"
        db.execute("ATTACH DATABASE ? AS delta", (uri,))
        extra = {t: f" UNION ALL SELECT * FROM delta.{t}" for t in extra}
    db.execute(f"CREATE TEMP VIEW all_chunks AS SELECT * FROM main.chunks{extra['chunks']}")
    for table in ("documents", "pages", "chunks"):
        db.execute(f"CREATE TEMP VIEW {table} AS SELECT * FROM main.{table} {live}{extra[table]}")
