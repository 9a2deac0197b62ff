"""Search the live index: BM25, dense, or language-aware hybrid fusion; filters by language and document."""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arrival.errors import IndexOpenError
from arrival.index.embed import Embedder
from arrival.index.keyword import fold
from arrival.index.store import IndexStore, Snapshot
from arrival.index.vectors import search_vectors
from arrival.ingest.lang import detect_query
from arrival.settings import Settings
from arrival.types import Hit

log = logging.getLogger(__name__)

MODES = ("bm25", "dense", "hybrid")
KNOWN_NAME_COS = 0.75
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FIGURE = re.compile(r"\d+")


def _figures(text: str) -> set[str]:
    return set(_FIGURE.findall(text))


@dataclass(frozen=True)
class Filters:
    langs: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()  # globs on the source path, file name, or title

    def __bool__(self) -> bool:
        return bool(self.langs or self.docs)


@dataclass(frozen=True)
class FusionWeights:
    """Hybrid score = dense cosine + weighted keyword evidence (each channel scaled to [0, 1] per query).

    same_lang: BM25 of the query on chunks in the query's language; translated: BM25 of the query mapped
    through the corpus lexicon, on chunks in the other language; cross_lang: BM25 of the untranslated query
    on other-language chunks (names, cognates); question_penalty: taken off passages made mostly of questions
    (lists of guiding questions look like every question); context: weight of the mean vector of the passages
    just before and after (same document) in a passage's dense score, so a passage that continues a case
    study is found by what the case study is about. Defaults chosen with `arrival eval` (README).
    """

    same_lang: float = 0.3
    translated: float = 0.3
    cross_lang: float = 0.1
    question_penalty: float = 0.1
    per_doc_cap: int = 0
    context: float = 0.6


@dataclass
class Live:
    """One generation and the per-chunk columns computed from it (row-aligned)."""

    pointer: str
    snap: Snapshot
    langs: np.ndarray
    doc_ids: np.ndarray
    question_lists: np.ndarray
    neighbours: np.ndarray  # (rows, 2): the row before and after in the same document, -1 for none
    _surface: tuple[frozenset[str], frozenset[str]] | None = None

    def surface(self) -> tuple[frozenset[str], frozenset[str]]:
        """Every folded word of the indexed text, and their five-letter prefixes (computed once)."""
        if self._surface is None:
            rows = self.snap.db.execute("SELECT text FROM chunks")
            found = {fold(w) for (text,) in rows for w in _WORD.findall(text)}
            self._surface = (frozenset(found), frozenset(w[:5] for w in found if len(w) >= 5))
        return self._surface


class Retriever:
    """`search(query, k) -> list[Hit]` over whatever generation is live; reloads when an ingest lands."""

    def __init__(self, home: Path, embedder: Embedder, candidates: int = 100,
                 weights: FusionWeights | None = None, duplicate_cosine: float = 0.95,
                 translation_cosine: float = 0.0) -> None:
        self.store = IndexStore(home)
        self.embedder = embedder
        self.candidates = candidates
        self.weights = weights or FusionWeights()
        self.duplicate_cosine = duplicate_cosine
        self.translation_cosine = translation_cosine
        self._live: Live | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> Retriever:
        from arrival.index.embed import load_embedder

        emb = embedder or load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)
        weights = FusionWeights(settings.keyword_weight_same, settings.keyword_weight_translated,
                                settings.keyword_weight_cross, settings.question_list_penalty, settings.per_doc_cap,
                                settings.context_weight)
        return cls(settings.home, emb, settings.candidates, weights, settings.duplicate_cosine)

    def snapshot(self) -> Snapshot:
        """The live generation, reopened if CURRENT moved since the last call."""
        return self.live().snap

    def live(self) -> Live:
        """The live generation with its per-chunk columns, as one consistent object: a search holds on to
        the Live it started with, so an ingest landing mid-search cannot mix two generations."""
        with self._lock:
            pointer = self.store.pointer()
            if pointer is None:
                raise IndexOpenError(f"{self.store.home}: no index yet; run 'arrival ingest PATH...' first")
            if self._live is None or pointer != self._live.pointer:
                snap = self.store.open(expected_embedder=self.embedder.id)
                if snap is None:
                    raise IndexOpenError(f"{self.store.home}: no index yet; run 'arrival ingest PATH...' first")
                self._live = Live(pointer, snap, snap.all_langs(), snap.all_doc_ids(), question_lists(snap),
                                  neighbours(snap))
            return self._live

    def knows(self, term: str) -> bool:
        """Whether a name occurs in the indexed text: as a word, by its first five letters (Vienne/Vienna,
        Taiwanese/Taiwan), or as a close neighbour of a corpus word in embedding space (Norwegian/Norway)."""
        live = self.live()
        snap = live.snap
        words, prefixes = live.surface()
        folded = fold(term)
        if folded in words or (len(folded) >= 5 and folded[:5] in prefixes):
            return True
        if folded.isdigit():  # years glued to note markers ("2050i")
            return any(w.startswith(folded) for w in words)
        lex = snap.lexicon
        if not lex.languages:
            return False
        vec = self.embedder.embed_passages([term])[0]
        return any(len(lex.vectors[lang]) and float((lex.vectors[lang] @ vec).max()) >= KNOWN_NAME_COS
                   for lang in lex.languages)

    @staticmethod
    def _allowed(live: Live, filters: Filters) -> np.ndarray | None:
        if not filters:
            return None
        snap, langs, doc_ids = live.snap, live.langs, live.doc_ids
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
               query_lang: str | None = None, per_doc: int | None = None) -> list[Hit]:
        """Top-k passages. `per_doc` caps the passages of one document (default: the per_doc_cap setting)."""
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}: choose from {', '.join(MODES)}")
        query = " ".join(query.split())
        if not query or k <= 0:
            return []
        live = self.live()
        snap = live.snap
        if snap.manifest.chunks == 0:
            return []
        qlang = query_lang or detect_query(query)
        mask = self._allowed(live, filters or Filters())
        n = max(self.candidates, k)
        if mode == "bm25":
            rows, bm = snap.keyword.search(query, qlang, n if mask is None else snap.keyword.size)
            if mask is not None:
                keep = mask[rows]
                rows, bm = rows[keep][:n], bm[keep][:n]
            scores = {int(r): {"bm25": float(b)} for r, b in zip(rows, bm, strict=True)}
            return self._hits(live, [int(r) for r in rows], scores, "bm25", k, per_doc)
        qvec = self.embedder.embed_queries([query])[0]
        rows, sims = self._dense(snap, qvec, n, mask)
        if mode == "dense":
            scores = {int(r): {"dense": float(x)} for r, x in zip(rows, sims, strict=True)}
            return self._hits(live, [int(r) for r in rows], scores, "dense", k, per_doc)
        channels = self._keyword_channels(live, query, qlang, mask)
        w = self.weights
        keyword = (w.same_lang * channels["same"] + w.translated * channels["translated"]
                   + w.cross_lang * channels["cross"])
        top_kw = np.argsort(-keyword, kind="stable")[:n]
        cand = np.union1d(rows, top_kw[keyword[top_kw] > 0])
        own = np.asarray(snap.vectors[cand], dtype=np.float32)
        dense = own @ qvec
        in_context = context_scores(live, cand, own, qvec, w.context) if w.context > 0 else dense
        fused = in_context + keyword[cand] - w.question_penalty * live.question_lists[cand]
        order = np.argsort(-fused, kind="stable")
        fused_scores = {
            int(cand[i]): {"hybrid": float(fused[i]), "dense": float(dense[i]), "in_context": float(in_context[i]),
                           **{name: float(ch[cand[i]]) for name, ch in channels.items()}}
            for i in order
        }
        return self._hits(live, [int(cand[i]) for i in order], fused_scores, "hybrid", k, per_doc, qlang)

    def _keyword_channels(self, live: Live, query: str, qlang: str, mask: np.ndarray | None
                          ) -> dict[str, np.ndarray]:
        """Per-chunk keyword evidence in [0, 1]: same-language, translated, and untranslated cross-language."""
        snap, n = live.snap, len(live.langs)
        same = snap.keyword.scores(query, qlang)
        translated = np.zeros(n, dtype=np.float32)
        cross = np.zeros(n, dtype=np.float32)
        for other in snap.lexicon.languages:
            if other == qlang:
                continue
            text = snap.lexicon.translate(query, qlang, other, self.embedder)
            if text:
                translated += snap.keyword.scores(text, other)
            cross += snap.keyword.scores(query, other)
        channels = {"same": same, "translated": translated, "cross": cross}
        if mask is not None:
            for values in channels.values():
                values *= mask
        # Direct and translated matches share one scale, so a noisy translation match cannot outrank a
        # passage that matches the question's own words; untranslated cross-language matches have their own.
        joint = max(float(same.max(initial=0.0)), float(translated.max(initial=0.0)))
        top = {"same": joint, "translated": joint, "cross": float(cross.max(initial=0.0))}
        return {name: values / top[name] if top[name] > 0 else values for name, values in channels.items()}

    def _hits(self, live: Live, ranked: list[int], scores: dict[int, dict[str, float]], key: str, k: int,
              per_doc: int | None = None, qlang: str | None = None) -> list[Hit]:
        """The first k of `ranked` after folding duplicates and translations, and the per-document cap."""
        partners = self._partners(live, ranked, qlang) if qlang and self.translation_cosine > 0 else {}
        rows, also, trans, stand_in = self._select(live, ranked, k,
                                                   self.weights.per_doc_cap if per_doc is None else per_doc, partners)
        chunks = live.snap.chunks(rows + [r for folded in (*also.values(), *trans.values()) for r in folded])
        by_row = {c.row: c for c in chunks}
        hits = []
        for i, r in enumerate(rows):
            c = by_row[r]
            places = tuple(p for p in dict.fromkeys((by_row[f].source, by_row[f].page) for f in also.get(r, ()))
                           if p != (c.source, c.page))
            translated = tuple(dict.fromkeys((by_row[f].source, by_row[f].page, by_row[f].lang)
                                             for f in trans.get(r, ())))
            # a passage standing in for its better-ranked translation carries that translation's scores
            own = scores[stand_in.get(r, r)]
            hits.append(Hit(rank=i + 1, score=own[key], chunk_id=c.chunk_id, text=c.text, source=c.source,
                            title=c.title, page=c.page, page_end=c.page_end, lang=c.lang, heading=c.heading,
                            doc_id=c.doc_id, scores=own, also=places, start=c.start, translations=translated))
        return hits

    def _partners(self, live: Live, ranked: list[int], qlang: str, pool: int = 60) -> dict[int, int]:
        """For the passages of the other language among the first `pool` of the ranking, their translation in
        the question's language among the same passages: the closest by vector (cosine >= translation_cosine)
        that states every number the other one states (a translation keeps its figures)."""
        rows = ranked[:pool]
        mine = [r for r in rows if live.langs[r] == qlang]
        other = [r for r in rows if live.langs[r] != qlang]
        if not mine or not other:
            return {}
        vectors = live.snap.vectors
        sims = np.asarray(vectors[np.asarray(other)], dtype=np.float32) @ np.asarray(
            vectors[np.asarray(mine)], dtype=np.float32).T
        best = sims.argmax(axis=1)
        texts = {c.row: c.text for c in live.snap.chunks(rows)}
        out: dict[int, int] = {}
        for i, r in enumerate(other):
            j = int(best[i])
            if float(sims[i, j]) >= self.translation_cosine and _figures(texts[r]) <= _figures(texts[mine[j]]):
                out[r] = mine[j]
        return out

    def _select(self, live: Live, ranked: list[int], k: int, cap: int, partners: dict[int, int] | None = None
                ) -> tuple[list[int], dict[int, list[int]], dict[int, list[int]], dict[int, int]]:
        """Walk the ranking: a passage whose vector is within `duplicate_cosine` of a kept one is the same
        text in another file (the UN guidance ships each step as its own PDF and inside the full guide) and
        is folded into it instead of taking a place; a passage in the other language whose translation in the
        question's language was also retrieved (`partners`) gives its place to that translation and is folded
        under it, taking its place and its scores (`stand_in`: kept row -> the row whose place it took); then at
        most `cap` passages per document (0: no cap)."""
        limit = self.duplicate_cosine
        partners = partners or {}
        vectors, doc_ids = live.snap.vectors, live.doc_ids
        kept: list[int] = []
        kept_vecs = np.empty((0, vectors.shape[1]), dtype=np.float32)
        also: dict[int, list[int]] = {}
        trans: dict[int, list[int]] = {}
        stand_in: dict[int, int] = {}
        count: dict[str, int] = {}
        for r in ranked:
            if len(kept) == k:
                break
            partner = partners.get(r)
            if partner is not None:
                if partner in kept:
                    trans.setdefault(partner, []).append(r)
                    continue
                trans.setdefault(partner, []).append(r)
                stand_in[partner] = r
                r = partner
            elif r in trans:  # already placed as a better-ranked passage's translation
                continue
            if limit > 0 and kept:
                v = np.asarray(vectors[r], dtype=np.float32)
                sims = kept_vecs @ v
                best = int(np.argmax(sims))
                if float(sims[best]) >= limit:
                    also.setdefault(kept[best], []).append(r)
                    continue
            d = str(doc_ids[r])
            if cap > 0 and count.get(d, 0) >= cap:
                continue
            count[d] = count.get(d, 0) + 1
            kept.append(r)
            if limit > 0:
                kept_vecs = np.vstack([kept_vecs, np.asarray(vectors[r], dtype=np.float32)[None, :]])
        return kept, also, {r: trans[r] for r in kept if r in trans}, stand_in

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


def question_lists(snap: Snapshot) -> np.ndarray:
    """1.0 for chunks whose sentences are mostly questions (guiding-question lists), else 0.0."""
    from arrival.ingest.sentences import split_sentences

    out = []
    for (text,) in snap.db.execute("SELECT text FROM chunks ORDER BY row"):
        n = max(1, len(split_sentences(text, min_chars=15)))
        out.append(1.0 if text.count("?") / n > 0.5 else 0.0)
    return np.asarray(out, dtype=np.float32)


def neighbours(snap: Snapshot) -> np.ndarray:
    """(rows, 2) array: the chunk row just before and just after each chunk in its document, -1 at the ends."""
    out = np.full((snap.manifest.chunks, 2), -1, dtype=np.int64)
    prev_row, prev_doc = -1, None
    for row, doc in snap.db.execute("SELECT row, doc_id FROM chunks ORDER BY doc_id, page, start, row"):
        if doc == prev_doc:
            out[row, 0] = prev_row
            out[prev_row, 1] = row
        prev_row, prev_doc = row, doc
    return out


def context_scores(live: Live, rows: np.ndarray, own: np.ndarray, qvec: np.ndarray, weight: float) -> np.ndarray:
    """Cosine of the query with each passage's vector plus `weight` times the mean vector of its neighbours
    (renormalised): a passage inherits some of what the passages around it are about."""
    around = live.neighbours[rows]
    ctx = np.zeros_like(own)
    count = (around >= 0).sum(axis=1, keepdims=True).astype(np.float32)
    for side in (0, 1):
        has = around[:, side] >= 0
        if has.any():
            ctx[has] += np.asarray(live.snap.vectors[around[has, side]], dtype=np.float32)
    blended = own + weight * ctx / np.maximum(count, 1)
    norms = np.linalg.norm(blended, axis=1)
    return (blended @ qvec) / np.where(norms > 0, norms, 1)
