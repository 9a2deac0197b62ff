"""Incremental generations: an ingest that changes a few documents writes those documents only.

The next generation keeps the current one's base (hard links to its files, which never change), rewrites the
small delta (the current delta's surviving documents plus the new ones), lists the removed base documents as
tombstones, and carries the translation partners over, recomputing only those the change can affect. When the
delta would hold more than MERGE_RATIO of the base's rows, or the tombstones more than TOMBSTONE_RATIO, the
store writes a complete generation instead (the merge: `IndexStore.write_generation`'s full path).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from arrival.index.delta import DELTA, PARTNER, SCHEMA, TOMBSTONES, read_tombstones
from arrival.index.derived import TRANSLATION_COSINE, figures, neighbours, question_list
from arrival.index.embed import Embedder
from arrival.index.keyword import KeywordIndex
from arrival.index.lexicon import Lexicon, extend_lexicon, merge_lexicons
from arrival.index.snapshot import FORMAT_VERSION, Manifest, Snapshot, surface_words
from arrival.index.vectors import build_vector_index
from arrival.index.view import DENSE, E5

if TYPE_CHECKING:
    from arrival.index.store import NewDocument

MERGE_RATIO = 0.25  # the delta is merged into the base once it would hold more rows than this share of the base
TOMBSTONE_RATIO = 0.25  # ... or once removed documents hold more than this share of the base's rows
REVERSE = 16  # a new passage is checked as a possible partner of its REVERSE nearest other-language passages
_OWN = {DELTA, TOMBSTONES, PARTNER, "manifest.json", "retired"}


def fits(base: Snapshot, remove: set[str], add: Sequence[NewDocument], moves: dict[str, str]) -> bool:
    """Whether this change can be written incrementally (otherwise the store merges: a complete generation)."""
    if moves or base.base_rows == 0:
        return False
    docs = base.documents()
    removed_rows = {d: docs[d].chunks for d in remove if d in docs}
    in_delta = set(_delta_docs(base))
    delta = (base.total - base.base_rows) - sum(n for d, n in removed_rows.items() if d in in_delta)
    delta += sum(len(new.chunks) for new in add)
    dead = int((~base.alive).sum()) + sum(n for d, n in removed_rows.items() if d not in in_delta)
    return delta <= MERGE_RATIO * base.base_rows and dead <= TOMBSTONE_RATIO * base.base_rows


def _delta_docs(base: Snapshot) -> list[str]:
    if base.delta is None:
        return []
    return [d for (d,) in base.db.execute("SELECT doc_id FROM delta.documents ORDER BY path")]


def _link_tree(src: Path, dst: Path, top: bool = True) -> None:
    """`dst` as a copy of `src` made of hard links (the base's files are never written again); at the top, the
    generation's own files (delta, tombstones, partners, manifest) are left out."""
    dst.mkdir(exist_ok=True)
    for p in src.iterdir():
        if top and p.name in _OWN:
            continue
        if p.is_dir():
            _link_tree(p, dst / p.name, top=False)
        else:
            try:
                os.link(p, dst / p.name)
            except OSError:  # a file system without hard links: a copy (the same content, more bytes written)
                shutil.copy2(p, dst / p.name)


def write_incremental(tmp: Path, base: Snapshot, remove: set[str], add: Sequence[NewDocument],
                      embedders: dict[str, Embedder], chunk_size: int, chunk_overlap: int) -> None:
    """Fill `tmp` (an empty folder) with the next generation: base linked, delta rewritten, partners updated."""
    embedder = embedders[DENSE]
    spaces = [sp for sp in (DENSE, E5) if sp in embedders]
    b = base.base_rows
    _link_tree(base.gen_dir, tmp)
    base_docs = {d for (d,) in base.db.execute("SELECT doc_id FROM main.documents")}
    dead = sorted(set(read_tombstones(base.gen_dir)) | (remove & base_docs))
    kept = [d for d in _delta_docs(base) if d not in remove]
    folder = tmp / DELTA
    folder.mkdir()
    db = sqlite3.connect(folder / "meta.sqlite")
    db.executescript(SCHEMA)
    texts: list[str] = []
    langs: list[str] = []
    order: list[tuple[str, int, int, int]] = []
    parts: dict[str, list[np.ndarray]] = {sp: [] for sp in spaces}
    qlist: list[float] = []
    idmap = np.full(base.total, -1, dtype=np.int64)
    gone = frozenset(dead)
    if base.labels is not None:
        removed = base.labels.rows_of(gone)
    else:  # an index written before the labels were stored (np.isin over objects sorts them)
        removed = np.frompyfunc(gone.__contains__, 1, 1)(base.columns.doc[:b]).astype(bool)
    idmap[:b] = np.where(base.alive[:b] & ~removed, np.arange(b), -1)
    row = b
    if kept:
        marks = ",".join("?" * len(kept))
        db.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)", base.db.execute(
            f"SELECT * FROM delta.documents WHERE doc_id IN ({marks})", kept).fetchall())
        db.executemany("INSERT INTO pages VALUES (?,?,?)", base.db.execute(
            f"SELECT * FROM delta.pages WHERE doc_id IN ({marks})", kept).fetchall())
        old = base.db.execute(f"SELECT * FROM delta.chunks WHERE doc_id IN ({marks}) ORDER BY row", kept).fetchall()
        old_ids = np.asarray([r[0] for r in old], dtype=np.int64)
        db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                       [(b + i, *r[1:]) for i, r in enumerate(old)])
        idmap[old_ids] = b + np.arange(len(old))
        texts += [r[3] for r in old]
        langs += [r[9] for r in old]
        order += [(r[2], r[4], r[6], b + i) for i, r in enumerate(old)]
        for sp in spaces:
            parts[sp].append(base.vectors(sp, old_ids))
        qlist += base.columns.question_list[old_ids].tolist()
        row += len(old)
    first_new = row
    for new in add:
        doc, chunks = new.doc, new.chunks
        db.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                   (doc.doc_id, doc.path, str(Path(doc.path).resolve()), doc.sha256, doc.title, doc.page_count,
                    json.dumps(list(new.langs)), Path(doc.path).stat().st_size, time.time()))
        db.executemany("INSERT INTO pages VALUES (?,?,?)", [(doc.doc_id, p.number, p.text) for p in doc.pages])
        db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                       [(row + i, c.chunk_id, c.doc_id, c.text, c.page, c.page_end, c.start, c.end, c.heading,
                         c.lang) for i, c in enumerate(chunks)])
        order += [(c.doc_id, c.page, c.start, row + i) for i, c in enumerate(chunks)]
        texts += [c.text for c in chunks]
        langs += [c.lang for c in chunks]
        qlist += [question_list(c.text) for c in chunks]
        for sp in spaces:
            parts[sp].append(np.asarray(new.vectors[sp], dtype=np.float32).reshape(len(chunks), embedders[sp].dim))
        row += len(chunks)
    db.commit()
    n_docs = db.execute("SELECT count(*) FROM documents").fetchone()[0] + len(base_docs - set(dead))
    db.close()
    d = row - b
    vectors = {sp: np.concatenate(parts[sp]) if parts[sp] else np.zeros((0, embedders[sp].dim), np.float32)
               for sp in spaces}
    if d:
        _write_delta(folder, base, texts, langs, order, qlist, vectors, embedder)
    else:  # every delta document removed
        shutil.rmtree(folder)
    if dead:
        (tmp / TOMBSTONES).write_text(json.dumps(dead))
    # partners: carried over through the id map; those pointing at a removed passage are recomputed
    old_partner = base.columns.partner
    partner = np.full(row, -1, dtype=np.int64)
    carried = np.flatnonzero(idmap >= 0)
    target = old_partner[carried]
    ok = target >= 0
    partner[idmap[carried[ok]]] = np.where(idmap[target[ok]] >= 0, idmap[target[ok]], -2)
    np.save(tmp / PARTNER, np.maximum(partner, -1), allow_pickle=False)
    m = base.manifest
    live = int((idmap[:b] >= 0).sum()) + d
    Manifest(FORMAT_VERSION, embedder.id, m.dim, True, chunk_size, chunk_overlap, m.vector_index, n_docs, live,
             time.time(), m.e5_embedder, m.e5_dim, base_rows=b, delta_rows=d).write(tmp / "manifest.json")
    view = Snapshot(tmp)
    try:
        recheck = set(np.flatnonzero(partner == -2).tolist())
        fresh = list(range(first_new, row))
        for r in fresh:  # a new passage may be the nearest translation of passages already there
            others = [lang for lang in view.languages if lang != langs[r - b]]
            if others:
                ids, sims = view.dense(DENSE, vectors[DENSE][r - b], REVERSE, others)
                recheck.update(int(i) for i in ids[sims >= TRANSLATION_COSINE] if i < first_new)
        for r in sorted(recheck.union(fresh)):
            partner[r] = _partner(view, r)
    finally:
        view.close()
    np.save(tmp / PARTNER, np.maximum(partner, -1), allow_pickle=False)


def _write_delta(folder: Path, base: Snapshot, texts: list[str], langs: list[str],
                 order: list[tuple[str, int, int, int]], qlist: list[float], vectors: dict[str, np.ndarray],
                 embedder: Embedder) -> None:
    """The delta's files beside its meta.sqlite: vectors, FAISS, keyword index, columns, surface words, lexicon."""
    b, d = base.base_rows, len(texts)
    for sp in vectors:
        np.save(folder / ("vectors.npy" if sp == DENSE else f"vectors-{sp}.npy"), vectors[sp], allow_pickle=False)
    import faiss

    faiss.write_index(build_vector_index(vectors[DENSE], "flat"), str(folder / "faiss.index"))
    keyword = KeywordIndex.build(texts, langs)
    keyword.use_statistics_with(base.bm25)
    keyword.save(folder / "keyword")
    prev, nxt = neighbours(order)
    (folder / "columns").mkdir()
    columns = {"question_list": np.asarray(qlist, dtype=np.float32), "prev": _fit(prev[b:], d),
               "next": _fit(nxt[b:], d), "length": np.asarray([len(t) for t in texts], dtype=np.int32)}
    for name, values in columns.items():
        np.save(folder / "columns" / f"{name}.npy", values, allow_pickle=False)
    (folder / "surface.json").write_text(json.dumps(surface_words(texts), ensure_ascii=False))
    base_lexicon = Lexicon.load(base.gen_dir / "lexicon")
    reuse = base.delta.lexicon if base.delta is not None else None
    lexicon = extend_lexicon(texts, langs, embedder, base_lexicon, reuse)
    if lexicon.words:  # the translation table over the base's words and these, for the readers to load
        lexicon.merged = merge_lexicons(base_lexicon, lexicon).best
    lexicon.save(folder / "lexicon")


def _partner(view: Snapshot, r: int) -> int:
    """As `derived.partners` for one passage: the first of its 3 nearest other-language passages (cosine >=
    TRANSLATION_COSINE) that states every number it states, or -1."""
    lang = str(view.columns.lang[r])
    others = [x for x in view.languages if x != lang]
    if not others:
        return -1
    ids, sims = view.dense(DENSE, view.vectors(DENSE, np.asarray([r]))[0], 3, others)
    rows = {c.id: c.text for c in view.chunks([r, *ids.tolist()])}
    own = figures(rows.get(r, ""))
    for cand, sim in zip(ids.tolist(), sims.tolist(), strict=True):
        if sim < TRANSLATION_COSINE:
            break
        if own <= figures(rows.get(cand, "")):
            return int(cand)
    return -1


def _fit(ids: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -1, dtype=np.int64)
    out[: min(n, len(ids))] = ids[:n]
    return out
