"""BM25 keyword index (bm25s) with per-language analysis: accent folding, French elision, stop words,
Snowball stemming chosen by each chunk's language."""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

STEMMERS = {"en": "english", "fr": "french", "es": "spanish", "de": "german", "it": "italian",
            "pt": "portuguese", "nl": "dutch"}
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_ELISION = re.compile(r"\b(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu|quoiqu)['’ʼ]", re.IGNORECASE)


def fold(text: str) -> str:
    """Lower-case and strip accents (é -> e, ç -> c), after NFKC."""
    if text.isascii():  # NFKC, NFKD and the combining marks leave ASCII as it is; casefold is lower there
        return text.lower()
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return text.translate(_combining())


@lru_cache(maxsize=1)
def _combining() -> dict[int, None]:
    """str.translate table deleting every combining character (unicodedata.combining != 0)."""
    return dict.fromkeys((cp for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))), None)


@lru_cache(maxsize=1)
def _bm25s():  # type: ignore[no-untyped-def]
    """Import bm25s, undoing the DEBUG level it forces on its logger at import time."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


@lru_cache(maxsize=16)
def stopwords(lang: str) -> frozenset[str]:
    sw = _bm25s().stopwords

    table = {"en": sw.STOPWORDS_EN_PLUS, "fr": sw.STOPWORDS_FRENCH, "es": sw.STOPWORDS_SPANISH,
             "de": sw.STOPWORDS_GERMAN, "it": sw.STOPWORDS_ITALIAN, "pt": sw.STOPWORDS_PORTUGUESE,
             "nl": sw.STOPWORDS_DUTCH}
    return frozenset(fold(w) for w in table.get(lang, sw.STOPWORDS_EN))


@lru_cache(maxsize=16)
def _stemmer(lang: str):  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer(STEMMERS.get(lang, "english"))


def analyze(text: str, lang: str) -> list[str]:
    """Tokens for BM25: elision removed, folded, stop words dropped, stemmed in the text's language. Short texts
    (queries, headings, words: analysed again and again at query time) come from a cache."""
    if len(text) <= _CACHED_CHARS:
        return list(_analyze_short(text, lang))
    return _analyze(text, lang)


_CACHED_CHARS = 300


@lru_cache(maxsize=50_000)
def _analyze_short(text: str, lang: str) -> tuple[str, ...]:
    return tuple(_analyze(text, lang))


def _analyze(text: str, lang: str) -> list[str]:
    words = _TOKEN.findall(fold(_ELISION.sub(" ", text)))
    stop = stopwords(lang)
    kept = [w for w in words if w not in stop and (len(w) > 1 or w.isdigit())]
    return list(_stemmer(lang).stemWords(kept))


class KeywordIndex:
    """One bm25s.BM25 per language over chunk rows 0..N-1 (each index holds its language's rows).

    Statistics are per language: a French word's IDF counts French passages only. In one shared index the
    smaller language's words look rarer than they are (their document frequency is divided by every passage
    of both languages), which inflates its scores against the other language's: French questions then found
    French passages where the answer was in English (README, "How it works").
    """

    def __init__(self, parts: dict[str, tuple[np.ndarray, object]], size: int) -> None:
        self._parts = parts  # lang -> (rows, bm25)
        self.size = size

    @classmethod
    def build(cls, texts: list[str], langs: list[str]) -> KeywordIndex:
        bm25s = _bm25s()
        parts: dict[str, tuple[np.ndarray, object]] = {}
        by_lang = np.asarray(langs, dtype=object)
        for lang in sorted(set(langs)):
            rows = np.flatnonzero(by_lang == lang).astype(np.int64)
            bm25 = bm25s.BM25()
            bm25.index([_analyze(texts[r], lang) or ["\u2205"] for r in rows], show_progress=False)
            parts[lang] = (rows, bm25)
        return cls(parts, len(texts))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        langs = sorted(self._parts)
        for i, lang in enumerate(langs):
            rows, bm25 = self._parts[lang]
            part = folder / f"part-{i}"
            bm25.save(str(part), show_progress=False)  # type: ignore[attr-defined]
            np.save(part / "rows.npy", rows, allow_pickle=False)
        (folder / "keyword.json").write_text(json.dumps({"size": self.size, "languages": langs}))

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        bm25s = _bm25s()
        meta = json.loads((folder / "keyword.json").read_text())
        size = int(meta["size"])
        parts: dict[str, tuple[np.ndarray, object]] = {}
        for i, lang in enumerate(meta["languages"]):
            part = folder / f"part-{i}"
            try:
                rows = np.load(part / "rows.npy", allow_pickle=False)
                # memory-mapped: opening reads nothing (it read 2.9 s of arrays at a million passages), a query
                # pages in its terms' postings, and processes on one generation share them
                bm25 = bm25s.BM25.load(str(part), load_corpus=False, mmap=True, allow_pickle=False,
                                       show_progress=False)
            except (OSError, ValueError, KeyError, EOFError) as exc:
                raise ValueError(f"{part}: {exc}") from None
            if (rows.ndim != 1 or rows.dtype.kind not in "iu" or int(bm25.scores["num_docs"]) != len(rows)
                    or (len(rows) and not 0 <= rows.min() <= rows.max() < size)):
                raise ValueError(f"{part}: rows.npy does not match its BM25 index")
            parts[str(lang)] = (rows, bm25)
        if sum(len(rows) for rows, _ in parts.values()) != size:
            raise ValueError(f"language parts hold {sum(len(r) for r, _ in parts.values())} rows, not {size}")
        return cls(parts, size)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._parts)

    def top(self, query: str, lang: str, target: str, n: int, keep: np.ndarray | None = None, offset: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
        """The n best (rows + offset, BM25 scores) of the passages in `target` for the query analysed in `lang`,
        best first, ties in row order; only rows where `keep` (by row, when given) is true. The work follows the
        query terms' postings: no array over the language's passages unless the postings cover a fair part of
        it (the same float32 sums, in the same order, as bm25s's `get_scores`)."""
        empty = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        part = self._parts.get(target)
        if part is None or n <= 0:
            return empty
        rows, bm25 = part
        vocab = bm25.vocab_dict  # type: ignore[attr-defined]
        ids = [vocab[t] for t in dict.fromkeys(analyze(query, lang)) if t in vocab]
        if not ids:
            return empty
        local, scores = _postings_scores(bm25, ids)
        if keep is not None:
            ok = keep[rows if local is None else rows[local]]
            scores = scores * ok
        hit = np.flatnonzero(scores > 0)
        if len(hit) > n:  # the n best without sorting every hit: those above the n-th score, then ties in row order
            nth = np.partition(scores[hit], len(hit) - n)[len(hit) - n]
            hit = np.concatenate([hit[scores[hit] > nth], hit[scores[hit] == nth][:n]])
        best = hit[np.argsort(-scores[hit], kind="stable")[:n]]
        return rows[best if local is None else local[best]].astype(np.int64) + offset, scores[best]

    def idf(self, tokens: list[str], lang: str) -> dict[str, float]:
        """BM25 (Lucene) inverse document frequency of analysed tokens among the passages in `lang`; a token
        no passage holds gets the rarest value."""
        part = self._parts.get(lang)
        if part is None:
            return dict.fromkeys(tokens, 0.0)
        rows, bm25 = part
        n = max(len(rows), 1)
        vocab = bm25.vocab_dict  # type: ignore[attr-defined]
        indptr = bm25.scores["indptr"]  # type: ignore[attr-defined]
        out: dict[str, float] = {}
        for t in tokens:
            i = vocab.get(t)
            df = 0 if i is None else int(indptr[i + 1] - indptr[i])
            out[t] = float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
        return out

    def doc_freqs(self, tokens: list[str], lang: str) -> tuple[int, dict[str, int]]:
        """(passages in `lang`, document frequency of each token among them)."""
        part = self._parts.get(lang)
        if part is None:
            return 0, dict.fromkeys(tokens, 0)
        rows, bm25 = part
        vocab = bm25.vocab_dict  # type: ignore[attr-defined]
        indptr = bm25.scores["indptr"]  # type: ignore[attr-defined]
        out = {}
        for t in tokens:
            i = vocab.get(t)
            out[t] = 0 if i is None else int(indptr[i + 1] - indptr[i])
        return len(rows), out

    def use_statistics_with(self, base: KeywordIndex) -> None:
        """Score this (small) index's passages with the document frequencies and passage counts of `base` and this
        index together, per language, so that its scores compare with `base`'s (a delta of a few passages would
        otherwise see every word as common). Lengths stay this index's own."""
        for lang, (rows, bm25) in self._parts.items():
            vocab = bm25.vocab_dict  # type: ignore[attr-defined]
            scores = bm25.scores  # type: ignore[attr-defined]
            indptr = scores["indptr"]
            # entries per term id (= its document frequency)
            counts: np.ndarray = np.diff(np.asarray(indptr, dtype=np.int64)).astype(np.int64)
            terms = [""] * len(counts)
            for t, i in vocab.items():
                if i < len(counts):
                    terms[i] = t
            df_local = counts.astype(np.float64)
            n_base, df_base = base.doc_freqs(terms, lang)
            df_all = df_local + np.asarray([df_base[t] for t in terms], dtype=np.float64)
            n_local, n_all = len(rows), len(rows) + n_base
            local = np.log(1.0 + (n_local - df_local + 0.5) / (df_local + 0.5))
            shared = np.log(1.0 + (n_all - df_all + 0.5) / (df_all + 0.5))
            factor = np.where(local > 0, shared / np.where(local > 0, local, 1.0), 1.0)
            data = np.asarray(scores["data"], dtype=np.float32) * np.repeat(factor, counts).astype(np.float32)
            scores["data"] = data


def _postings_scores(bm25: Any, ids: list[int]) -> tuple[np.ndarray | None, np.ndarray]:
    """The BM25 scores of the token ids: (local passage numbers in increasing order, their scores), or (None, the
    scores of every local passage). Each token's postings are added in token order, as bm25s does. When the
    postings are few (under 1/32 of the passages: rare words and names), over their union only; else over an
    array of every passage (a sort of the postings costs more than that array beyond; measured at 1M passages,
    where a question's terms have ~200,000 postings per language)."""
    csc = bm25.scores
    indptr, indices, data = csc["indptr"], csc["indices"], csc["data"]
    spans = [(int(indptr[t]), int(indptr[t + 1])) for t in ids]
    if bm25.nonoccurrence_array is not None or sum(e - b for b, e in spans) * 32 >= int(csc["num_docs"]):
        return None, bm25.get_scores(ids)  # a variant that scores absent terms too counts every passage
    local = np.unique(np.concatenate([indices[b:e] for b, e in spans]))
    scores = np.zeros(len(local), dtype=np.float32)
    for b, e in spans:
        scores[np.searchsorted(local, indices[b:e])] += data[b:e]  # a token's postings hold each passage once
    return local, scores
