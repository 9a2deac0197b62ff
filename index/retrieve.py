"""Search an index through its `View`: BM25, dense, hand-set fusion, or the learned hybrid ranking; filters by
language and document; duplicates and translations folded.

Candidates come from every channel the index has: the primary multilingual embedder ("dense"), the second encoder
("e5") when the index has it, and three keyword channels (BM25 of the question on passages in its language; of the
question translated through the corpus lexicon, on passages in the other language; of the untranslated question
on the other language, for names and cognates). `hybrid` orders them with the learned ranker (`index.ranker`)
when one is available for the index's vector spaces, else with the hand-set `fusion` (kept as the baseline in
`arrival eval --retriever all`).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arrival.index.backend import Backend, EmbeddedBackend, open_backend
from arrival.index.embed import Embedder
from arrival.index.keyword import fold
from arrival.index.snapshot import doc_glob_matches
from arrival.index.vectors import one_blas_thread
from arrival.index.view import DENSE, E5, View, search_channels
from arrival.ingest.lang import detect_query
from arrival.settings import Settings
from arrival.types import Hit

log = logging.getLogger(__name__)

MODES = ("bm25", "dense", "fusion", "hybrid")
KNOWN_NAME_COS = 0.75


@dataclass(frozen=True)
class Filters:
    langs: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()  # globs on the source path, file name, or title

    def __bool__(self) -> bool:
        return bool(self.langs or self.docs)


@dataclass(frozen=True)
class FusionWeights:
    """Hand-set fusion: dense cosine (in context) + weighted keyword evidence (each channel scaled to [0, 1] per
    query), minus a penalty for question lists. Defaults chosen with `arrival eval` (README)."""

    same_lang: float = 0.3
    translated: float = 0.3
    cross_lang: float = 0.1
    question_penalty: float = 0.1
    per_doc_cap: int = 0
    context: float = 0.6


@dataclass
class Candidates:
    """Every candidate of one query with its evidence, row-aligned."""

    ids: np.ndarray
    qlang: str
    channels: dict[str, np.ndarray] = field(default_factory=dict)  # name -> per-candidate score

    def scores_of(self, i: int) -> dict[str, float]:
        return {name: float(values[i]) for name, values in self.channels.items()}


class Retriever:
    """`search(query, k) -> list[Hit]` over the live index; `view()` pins one state of it for a request."""

    def __init__(self, index: Path | Backend, embedder: Embedder, candidates: int = 100,
                 weights: FusionWeights | None = None, duplicate_cosine: float = 0.95,
                 translations: bool = True, second: Embedder | None = None, ranker: object | None = None) -> None:
        self.backend: Backend = EmbeddedBackend(index, embedder.id) if isinstance(index, (str, Path)) else index
        self.embedder = embedder
        self.second = second
        self.candidates = candidates
        self.weights = weights or FusionWeights()
        self.duplicate_cosine = duplicate_cosine
        self.translations = translations
        self.ranker = ranker
        one_blas_thread()  # a question's products are small: one BLAS thread answers them faster

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None,
                      second: Embedder | None = None) -> Retriever:
        from arrival.index.embed import load_embedder
        from arrival.index.ranker import load_default_ranker
        from arrival.settings import second_model_spec

        emb = embedder or load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)
        spec = second_model_spec(settings.second_model, emb.id)
        if second is None and spec:
            second = load_embedder(spec, settings.cache, settings.threads, settings.batch_size)
        weights = FusionWeights(settings.keyword_weight_same, settings.keyword_weight_translated,
                                settings.keyword_weight_cross, settings.question_list_penalty, settings.per_doc_cap,
                                settings.context_weight)
        return cls(open_backend(settings, emb.id), emb, settings.candidates, weights, settings.duplicate_cosine,
                   settings.fold_translations, second, load_default_ranker() if settings.ranker else None)

    # -- the live view --------------------------------------------------------------------------------
    def view(self) -> View:
        """The live state of the index (reopened when an ingest has switched it)."""
        return self.backend.view()

    def snapshot(self) -> View:
        return self.view()

    def pinned(self) -> AbstractContextManager[View]:
        """One state of the index for a whole request (search, refusal checks, citations, page texts)."""
        return self.backend.pinned()

    def knows(self, term: str, view: View | None = None) -> bool:
        """Whether a name occurs in the indexed text: as a word, by its first five letters (Vienne/Vienna,
        Taiwanese/Taiwan), or as a close neighbour of a corpus word in embedding space (Norwegian/Norway)."""
        view = view or self.view()
        if view.knows(term):
            return True
        if fold(term).isdigit() or not view.lexicon.languages:
            return False
        return view.lexicon.nearest(self.embedder.embed_passages([term])[0]) >= KNOWN_NAME_COS

    # -- search ---------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, mode: str = "hybrid", filters: Filters | None = None,
               query_lang: str | None = None, per_doc: int | None = None, view: View | None = None) -> list[Hit]:
        """Top-k passages. `per_doc` caps the passages of one document (default: the per_doc_cap setting)."""
        if mode not in MODES:
            raise ValueError(f"unknown retriever {mode!r}: choose from {', '.join(MODES)}")
        query = " ".join(query.split())
        if not query or k <= 0:
            return []
        view = view or self.view()
        if view.count() == 0:
            return []
        qlang = query_lang or detect_query(query)
        filters = filters or Filters()
        docs = None
        if filters.docs:
            docs = frozenset(d.doc_id for d in view.documents().values() if doc_glob_matches(d, filters.docs))
        n = max(self.candidates, k)
        if mode == "bm25":
            ids, scores = self._keyword_all(view, query, qlang, n, filters.langs, docs)
            return self._hits(view, ids, {"bm25": scores}, "bm25", k, per_doc, None)
        qvec = self.embedder.embed_queries([query])[0]
        if mode == "dense":
            ids, sims = view.dense(DENSE, qvec, n, filters.langs, docs)
            return self._hits(view, ids, {"dense": sims}, "dense", k, per_doc, None)
        cand = self.candidates_for(view, query, qlang, qvec, n, filters.langs, docs)
        if not len(cand.ids):
            return []
        key = "fusion"
        order = cand.channels["fusion"]
        if mode == "hybrid" and self.ranker is not None and self._ranker_fits(view):
            from arrival.index.ranker import features

            order = cand.channels["hybrid"] = self.ranker.score(features(view, query, cand))  # type: ignore[attr-defined]
            key = "hybrid"
        elif mode == "hybrid":
            cand.channels["hybrid"] = order
            key = "hybrid"
        ranked = np.argsort(-order, kind="stable")
        return self._hits(view, cand.ids[ranked], {name: v[ranked] for name, v in cand.channels.items()}, key, k,
                          per_doc, qlang if self.translations else None)

    def _ranker_fits(self, view: View) -> bool:
        return E5 in view.embedders and self.second is not None and getattr(self.ranker, "needs_e5", True)

    def _keyword_all(self, view: View, query: str, qlang: str, n: int, langs: tuple[str, ...],
                     docs: frozenset[str] | None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 alone: the question analysed in its language, against the passages of every language (names and
        numbers match across languages), best first."""
        targets = [target for target in view.languages if not langs or target in langs]
        parts = search_channels(view, [], [(query, target) for target in targets], n, langs, docs)[1]
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        ids = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        top = np.argsort(-scores, kind="stable")[:n]
        return ids[top], scores[top]

    def candidates_for(self, view: View, query: str, qlang: str, qvec: np.ndarray, n: int,
                       langs: tuple[str, ...] = (), docs: frozenset[str] | None = None) -> Candidates:
        """The union of every channel's top-n, with each channel's score for every candidate and the fusion."""
        w = self.weights
        spaces = [(DENSE, qvec)]
        e5vec = None
        if self.second is not None and E5 in view.embedders:
            e5vec = self.second.embed_queries([query])[0]
            spaces.append((E5, e5vec))
        asked: list[tuple[str, str, str]] = []  # (keyword channel, text, target language)
        for target in (t for t in view.languages if not langs or t in langs):
            if target == qlang:
                asked.append(("same", query, target))
                continue
            translated = view.lexicon.translate(query, qlang, target, self.embedder)
            if translated:
                asked.append(("translated", translated, target))
            asked.append(("cross", query, target))
        found_dense, found_keyword = search_channels(view, spaces, [(t, g) for _, t, g in asked], n, langs, docs)
        pools = [ids for ids, _ in found_dense]
        keyword: dict[str, dict[int, float]] = {"same": {}, "translated": {}, "cross": {}}
        for (name, _, _), found in zip(asked, found_keyword, strict=True):
            _add(keyword[name], found)
        for scores in keyword.values():
            pools.append(np.fromiter(scores, dtype=np.int64, count=len(scores)))
        ids = np.unique(np.concatenate(pools)) if pools else np.empty(0, dtype=np.int64)
        cand = Candidates(ids, qlang)
        if not len(ids):
            return cand
        meta = view.meta(ids)
        own = view.vectors(DENSE, ids)
        cand.channels["dense"] = own @ qvec
        cand.channels["in_context"] = context_scores(view, DENSE, meta, own, qvec, w.context)
        if e5vec is not None:
            own5 = view.vectors(E5, ids)
            cand.channels["e5"] = own5 @ e5vec
            cand.channels["e5_in_context"] = context_scores(view, E5, meta, own5, e5vec, w.context)
        # Direct and translated matches share one scale, so a noisy translation match cannot outrank a passage
        # that matches the question's own words; untranslated cross-language matches have their own.
        joint = max(max(keyword["same"].values(), default=0.0), max(keyword["translated"].values(), default=0.0))
        tops = {"same": joint, "translated": joint, "cross": max(keyword["cross"].values(), default=0.0)}
        for name, scores in keyword.items():
            raw = np.fromiter((scores.get(int(i), 0.0) for i in ids), dtype=np.float32, count=len(ids))
            cand.channels[name] = raw / tops[name] if tops[name] > 0 else raw
        cand.channels["question_list"] = meta.question_list.astype(np.float32)
        cand.channels["fusion"] = (cand.channels["in_context"] + w.same_lang * cand.channels["same"]
                                   + w.translated * cand.channels["translated"] + w.cross_lang * cand.channels["cross"]
                                   - w.question_penalty * cand.channels["question_list"])
        return cand

    # -- from a ranking to hits -----------------------------------------------------------------------
    def _hits(self, view: View, ranked: np.ndarray, channels: dict[str, np.ndarray], key: str, k: int,
              per_doc: int | None, qlang: str | None) -> list[Hit]:
        """The first k of `ranked` after folding duplicates and translations, and the per-document cap."""
        ranked = np.asarray(ranked, dtype=np.int64)
        position = {int(r): i for i, r in enumerate(ranked)}
        rows, also, trans, stand_in = self._select(view, ranked, k,
                                                   self.weights.per_doc_cap if per_doc is None else per_doc, qlang)
        by_id = {c.id: c for c in view.chunks(rows + [r for f in (*also.values(), *trans.values()) for r in f])}
        hits = []
        for i, r in enumerate(rows):
            c = by_id[r]
            places = tuple(p for p in dict.fromkeys((by_id[f].source, by_id[f].page) for f in also.get(r, ()))
                           if p != (c.source, c.page))
            translated = tuple(dict.fromkeys((by_id[f].source, by_id[f].page, by_id[f].lang)
                                             for f in trans.get(r, ())))
            # a passage standing in for its better-ranked translation takes that translation's place and scores
            j = position[stand_in.get(r, r)]
            scores = {name: float(values[j]) for name, values in channels.items()}
            hits.append(Hit(rank=i + 1, score=scores[key], chunk_id=c.chunk_id, text=c.text, source=c.source,
                            title=c.title, page=c.page, page_end=c.page_end, lang=c.lang, heading=c.heading,
                            doc_id=c.doc_id, scores=scores, also=places, start=c.start, translations=translated))
        return hits

    def _select(self, view: View, ranked: np.ndarray, k: int, cap: int, qlang: str | None
                ) -> tuple[list[int], dict[int, list[int]], dict[int, list[int]], dict[int, int]]:
        """Walk the ranking: a passage whose vector is within `duplicate_cosine` of a kept one is the same text in
        another file (the UN guidance ships each step as its own PDF and inside the full guide) and is folded into
        it; a passage in another language than the question whose stored translation (`index.derived.partners`) in
        the question's language was also retrieved gives its place to that translation and is folded under it;
        then at most `cap` passages per document (0: no cap). Returns (kept ids, duplicates folded per kept id,
        translations folded per kept id, stand-ins: kept id -> the id whose place it took)."""
        limit = self.duplicate_cosine
        window = ranked[: max(4 * k, 60)]
        meta = view.meta(window)
        lang = {int(i): str(x) for i, x in zip(meta.ids, meta.lang, strict=True)}
        doc = {int(i): str(x) for i, x in zip(meta.ids, meta.doc, strict=True)}
        retrieved = set(lang)
        partner = {}
        if qlang is not None:
            partner = {int(i): int(p) for i, p in zip(meta.ids, meta.partner, strict=True)
                       if p >= 0 and lang[int(i)] != qlang and int(p) in retrieved and lang.get(int(p)) == qlang}
        vecs = {int(i): v for i, v in zip(window, view.vectors(DENSE, window), strict=True)} if limit > 0 else {}
        kept: list[int] = []
        kept_vecs: list[np.ndarray] = []
        also: dict[int, list[int]] = {}
        trans: dict[int, list[int]] = {}
        stand_in: dict[int, int] = {}
        placed: set[int] = set()
        count: dict[str, int] = {}
        for r in (int(x) for x in window):
            if len(kept) == k:
                break
            if r in placed:
                continue
            p = partner.get(r)
            if p is not None:
                trans.setdefault(p, []).append(r)
                placed.add(r)
                if p in placed:
                    continue
                stand_in[p] = r
                r = p
            if limit > 0 and kept_vecs:
                sims = np.stack(kept_vecs) @ vecs[r]
                best = int(np.argmax(sims))
                if float(sims[best]) >= limit:
                    also.setdefault(kept[best], []).append(r)
                    placed.add(r)
                    continue
            if cap > 0 and count.get(doc[r], 0) >= cap:
                continue
            count[doc[r]] = count.get(doc[r], 0) + 1
            kept.append(r)
            placed.add(r)
            if limit > 0:
                kept_vecs.append(vecs[r])
        return kept, also, {r: trans[r] for r in kept if r in trans}, stand_in


def _add(into: dict[int, float], found: tuple[np.ndarray, np.ndarray]) -> None:
    for i, s in zip(found[0], found[1], strict=True):
        into[int(i)] = into.get(int(i), 0.0) + float(s)


def context_scores(view: View, space: str, meta: object, own: np.ndarray, qvec: np.ndarray, weight: float
                   ) -> np.ndarray:
    """Cosine of the query with each passage's vector plus `weight` times the mean vector of its neighbours
    (renormalised): a passage inherits some of what the passages around it are about."""
    if weight <= 0:
        return own @ qvec
    ctx = np.zeros_like(own)
    count = np.zeros((len(own), 1), dtype=np.float32)
    for side in (meta.prev, meta.next):  # type: ignore[attr-defined]
        has = side >= 0
        if has.any():
            ctx[has] += view.vectors(space, side[has])
            count[has] += 1
    blended = own + weight * ctx / np.maximum(count, 1)
    norms = np.linalg.norm(blended, axis=1)
    return (blended @ qvec) / np.where(norms > 0, norms, 1)
