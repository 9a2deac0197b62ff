"""Search the live index: BM25, dense, or language-aware hybrid fusion; filters by language and document."""

from __future__ import annotations

import fnmatch
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embed import Embedder
from index.store import IndexStore, Snapshot
from index.vectors import search_vectors
from ingest.errors import IndexOpenError
from ingest.lang import detect_query
from ingest.settings import Settings
from ingest.types import Hit

log = logging.getLogger(__name__)

MODES = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class Filters:
    langs: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()  # globs on the source path, file name, or title

    def __bool__(self) -> bool:
        return bool(self.langs or self.docs)


@dataclass(frozen=True)
class FusionWeights:
    same_lang: float = 0.3
    cross_lang: float = 0.1
    per_doc_cap: int = 0


class Retriever:
    """`search(query, k) -> list[Hit]` over whatever generation is live; reloads when an ingest lands."""

    def __init__(self, home: Path, embedder: Embedder, candidates: int = 100,
                 weights: FusionWeights | None = None) -> None:
        self.store = IndexStore(home)
        self.embedder = embedder
        self.candidates = candidates
        self.weights = weights or FusionWeights()
        self._snap: Snapshot | None = None
        self._pointer: str | None = None
        self._lock = threading.Lock()
        self._cols: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> Retriever:
        from index.embed import load_embedder

        emb = embedder or load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)
        weights = FusionWeights(settings.keyword_weight_same, settings.keyword_weight_cross, settings.per_doc_cap)
        return cls(settings.home, emb, settings.candidates, weights)

    def snapshot(self) -> Snapshot:
        """The live generation, reopened if CURRENT moved since the last call."""
        try:
            pointer = self.store.current_file.read_text().strip()
        except FileNotFoundError:
            raise IndexOpenError(f"{self.store.home}: no index yet; run 'arrival ingest PATH...' first") from None
        with self._lock:
            if self._snap is None or pointer != self._pointer:
                snap = self.store.open(expected_embedder=self.embedder.id)
                if snap is None:
                    raise IndexOpenError(f"{self.store.home}: no index yet; run 'arrival ingest PATH...' first")
                self._snap, self._pointer = snap, pointer
                self._cols = (snap.all_langs(), snap.all_doc_ids())
            return self._snap

    def _allowed(self, snap: Snapshot, filters: Filters) -> np.ndarray | None:
        if not filters:
            return None
        assert self._cols is not None
        langs, doc_ids = self._cols
        mask = np.ones(len(langs), dtype=bool)
        if filters.langs:
            mask &= np.isin(langs, list(filters.langs))
        if filters.docs:
            ok = {d.doc_id for d in snap.documents().values()
                  if any(fnmatch.fnmatch(d.path, g) or fnmatch.fnmatch(Path(d.path).name, g)
                         or fnmatch.fnmatch(d.title, g) or fnmatch.fnmatch(d.path, f"*{g}*") for g in filters.docs)}
            mask &= np.isin(doc_ids, list(ok))
        return mask

    def search(self, query: str, k: int = 5, mode: str = "hybrid", filters: Filters | None = None,
               query_lang: str | None = None) -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}: choose from {', '.join(MODES)}")
        query = " ".join(query.split())
        if not query or k <= 0:
            return []
        snap = self.snapshot()
        if snap.manifest.chunks == 0:
            return []
        qlang = query_lang or detect_query(query)
        mask = self._allowed(snap, filters or Filters())
        n = max(self.candidates, k)
        scores: dict[int, dict[str, float]] = {}
        if mode in ("dense", "hybrid"):
            qvec = self.embedder.embed_queries([query])[0]
            for r, s in zip(*self._dense(snap, qvec, n, mask), strict=True):
                scores.setdefault(int(r), {})["dense"] = float(s)
        if mode in ("bm25", "hybrid"):
            rows, bm = snap.keyword.search(query, (qlang,), n if mask is None else snap.keyword.size)
            if mask is not None:
                keep = mask[rows]
                rows, bm = rows[keep][:n], bm[keep][:n]
            top = float(bm[0]) if len(bm) else 1.0
            for r, s in zip(rows, bm, strict=True):
                scores.setdefault(int(r), {})["bm25"] = float(s)
                scores[int(r)]["bm25_norm"] = float(s) / top if top > 0 else 0.0
        if not scores:
            return []
        rows_all = list(scores)
        if mode == "hybrid":
            missing = [r for r in rows_all if "dense" not in scores[r]]
            if missing:
                sims = np.asarray(snap.vectors[np.asarray(missing)], dtype=np.float32) @ qvec
                for r, s in zip(missing, sims, strict=True):
                    scores[r]["dense"] = float(s)
            langs = self._cols[0] if self._cols is not None else None
            for r in rows_all:
                same = langs is not None and langs[r] == qlang
                w = self.weights.same_lang if same else self.weights.cross_lang
                scores[r]["hybrid"] = scores[r]["dense"] + w * scores[r].get("bm25_norm", 0.0)
        key = {"dense": "dense", "bm25": "bm25", "hybrid": "hybrid"}[mode]
        ranked = sorted(rows_all, key=lambda r: -scores[r][key])
        ranked = self._cap_per_doc(ranked, k)
        chunk_rows = snap.chunks(ranked)
        return [
            Hit(rank=i + 1, score=scores[c.row][key], chunk_id=c.chunk_id, text=c.text, source=c.source,
                title=c.title, page=c.page, page_end=c.page_end, lang=c.lang, heading=c.heading,
                doc_id=c.doc_id, scores=scores[c.row])
            for i, c in enumerate(chunk_rows)
        ]

    def _cap_per_doc(self, ranked: list[int], k: int) -> list[int]:
        cap = self.weights.per_doc_cap
        if cap <= 0 or self._cols is None:
            return ranked[:k]
        doc_ids = self._cols[1]
        count: dict[str, int] = {}
        out = []
        for r in ranked:
            d = doc_ids[r]
            if count.get(d, 0) < cap:
                out.append(r)
                count[d] = count.get(d, 0) + 1
            if len(out) == k:
                break
        return out

    def _dense(self, snap: Snapshot, qvec: np.ndarray, n: int, mask: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        if mask is None:
            return search_vectors(snap.faiss, qvec, n)
        allowed = np.flatnonzero(mask)
        if not len(allowed):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        sims = np.asarray(snap.vectors[allowed], dtype=np.float32) @ qvec
        top = np.argsort(-sims, kind="stable")[:n]
        return allowed[top], sims[top]
