"""BM25 keyword index (bm25s) with per-language analysis: accent folding, French elision, stop words,
Snowball stemming chosen by each chunk's language."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

STEMMERS = {"en": "english", "fr": "french", "es": "spanish", "de": "german", "it": "italian",
            "pt": "portuguese", "nl": "dutch"}
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_ELISION = re.compile(r"\b(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu|quoiqu)['’ʼ]", re.IGNORECASE)


def fold(text: str) -> str:
    """Lower-case and strip accents (é -> e, ç -> c), after NFKC."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


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
    """Tokens for BM25: elision removed, folded, stop words dropped, stemmed in the text's language."""
    words = _TOKEN.findall(fold(_ELISION.sub(" ", text)))
    stop = stopwords(lang)
    kept = [w for w in words if w not in stop and (len(w) > 1 or w.isdigit())]
    return list(_stemmer(lang).stemWords(kept))


class KeywordIndex:
    """Wraps a bm25s.BM25 over chunk rows 0..N-1."""

    def __init__(self, bm25: object | None, size: int) -> None:
        self._bm25 = bm25
        self.size = size

    @classmethod
    def build(cls, texts: list[str], langs: list[str]) -> KeywordIndex:
        bm25s = _bm25s()
        if not texts:
            return cls(None, 0)
        tokens = [analyze(t, lang) or ["\u2205"] for t, lang in zip(texts, langs, strict=True)]
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
        return cls(bm25, len(texts))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "keyword.json").write_text(json.dumps({"size": self.size}))
        if self._bm25 is not None:
            self._bm25.save(str(folder), show_progress=False)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        bm25s = _bm25s()
        size = int(json.loads((folder / "keyword.json").read_text())["size"])
        if size == 0:
            return cls(None, 0)
        bm25 = bm25s.BM25.load(str(folder), load_corpus=False, mmap=False, allow_pickle=False,
                               show_progress=False)
        return cls(bm25, size)

    def scores(self, query: str, lang: str) -> np.ndarray:
        """BM25 score of every chunk row for the query analysed in `lang` (zeros when nothing matches)."""
        if self._bm25 is None:
            return np.zeros(self.size, dtype=np.float32)
        vocab = self._bm25.vocab_dict  # type: ignore[attr-defined]
        tokens = [t for t in dict.fromkeys(analyze(query, lang)) if t in vocab]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)  # type: ignore[attr-defined]

    def search(self, query: str, langs: tuple[str, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-n (rows, scores) for the query analysed in each of `langs` (tokens merged)."""
        if self._bm25 is None or n <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        tokens: list[str] = []
        for lang in langs:
            tokens.extend(t for t in analyze(query, lang) if t not in tokens)
        vocab = self._bm25.vocab_dict  # type: ignore[attr-defined]
        tokens = [t for t in tokens if t in vocab]
        if not tokens:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores = self._bm25.get_scores(tokens)  # type: ignore[attr-defined]
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        keep = scores[top] > 0
        return top[keep].astype(np.int64), scores[top][keep].astype(np.float32)
