"""A bilingual lexicon induced from the corpus itself, for cross-language keyword search.

Keyword search is strong within a language and blind across languages. At index time every frequent word
of each language's chunks is embedded with the (multilingual) embedder; a word's translations are its
nearest words in the other language's vocabulary above a similarity threshold ("commune" -> municipality,
communities; "housing" -> logement, logements). At query time the question's words are mapped through this
table and the result is searched with BM25 in the other language. No dictionary, no network: it works for
any language pair the embedder aligns, and its vocabulary is the corpus's own.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arrival.index.embed import Embedder
from arrival.index.keyword import fold, stopwords

WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
MIN_COUNT = 1  # rare words carry names; measured +0.005 R@5, +0.012 MRR over 2
MAX_WORDS = 50_000  # per language, most frequent first
THRESHOLD = 0.72
TOP = 3


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass
class Lexicon:
    words: dict[str, list[str]] = field(default_factory=dict)  # lang -> vocabulary
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # lang -> (n, dim)
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    _table: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict, repr=False)

    @property
    def languages(self) -> list[str]:
        return sorted(self.words)

    def vector(self, lang: str, word: str) -> np.ndarray | None:
        idx = self._index.get(lang)
        if idx is None:
            idx = self._index[lang] = {w: i for i, w in enumerate(self.words.get(lang, []))}
        i = idx.get(word)
        return None if i is None else self.vectors[lang][i]

    def table(self, src: str, tgt: str) -> dict[str, list[str]]:
        """word in src -> up to TOP words in tgt with similarity >= THRESHOLD (computed once)."""
        key = (src, tgt)
        if key not in self._table:
            out: dict[str, list[str]] = {}
            a, b = self.vectors.get(src), self.vectors.get(tgt)
            if a is not None and b is not None and len(a) and len(b):
                wb = self.words[tgt]
                k = min(TOP, len(b))
                for start in range(0, len(a), 2048):
                    sims = a[start:start + 2048] @ b.T
                    # each row's k-th best similarity (a partition, not a sort of the whole vocabulary: 0.29 ->
                    # 0.15 s for the shared corpus's 4,000 x 5,000 words, more at 50,000); its words at or above
                    # that and the threshold, best first, ties in vocabulary order (a sort left them arbitrary)
                    kth = np.partition(sims, len(b) - k, axis=1)[:, len(b) - k]
                    for i, row in enumerate(sims):
                        cand = np.flatnonzero(row >= max(float(kth[i]), THRESHOLD))
                        if len(cand):
                            best = cand[np.lexsort((cand, -row[cand]))][:k]
                            out[self.words[src][start + i]] = [wb[j] for j in best]
            self._table[key] = out
        return self._table[key]

    def translate(self, query: str, src: str, tgt: str, embedder: Embedder | None = None) -> str:
        """The query's content words mapped into `tgt` words (unknown words embedded on the fly)."""
        stop = stopwords(src)
        words = [w for w in dict.fromkeys(words_of(query)) if fold(w) not in stop]
        if not words or tgt not in self.words:
            return ""
        table = self.table(src, tgt)
        out: list[str] = []
        unknown = []
        for w in words:
            if w in table:
                out.extend(table[w])
            elif self.vector(src, w) is None:
                unknown.append(w)
        if unknown and embedder is not None and len(self.vectors[tgt]):
            sims = embedder.embed_passages(unknown) @ self.vectors[tgt].T
            for row in sims:
                top = np.argsort(-row)[:TOP]
                out.extend(self.words[tgt][j] for j in top if row[j] >= THRESHOLD)
        return " ".join(dict.fromkeys(out))

    def nearest(self, vector: np.ndarray) -> float:
        """The highest cosine between `vector` and any word of the table (0 when empty)."""
        best = 0.0
        for lang in self.languages:
            if len(self.vectors[lang]):
                best = max(best, float((self.vectors[lang] @ vector).max()))
        return best

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lexicon.json").write_text(json.dumps({"languages": self.languages}, ensure_ascii=False))
        for lang in self.languages:
            (folder / f"words.{lang}.json").write_text(json.dumps(self.words[lang], ensure_ascii=False))
            np.save(folder / f"vectors.{lang}.npy", self.vectors[lang].astype(np.float32), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> Lexicon:
        if not (folder / "lexicon.json").exists():
            return cls()
        langs = json.loads((folder / "lexicon.json").read_text())["languages"]
        lex = cls()
        for lang in langs:
            lex.words[lang] = json.loads((folder / f"words.{lang}.json").read_text())
            lex.vectors[lang] = np.load(folder / f"vectors.{lang}.npy", allow_pickle=False)
            if len(lex.vectors[lang]) != len(lex.words[lang]):
                raise ValueError(f"lexicon for {lang}: {len(lex.words[lang])} words, {len(lex.vectors[lang])} vectors")
        return lex


def build_lexicon(texts: list[str], langs: list[str], embedder: Embedder, previous: Lexicon | None = None,
                  languages: tuple[str, ...] = ("en", "fr")) -> Lexicon:
    """Embed each language's frequent words, reusing vectors the previous generation already computed."""
    counts: dict[str, Counter[str]] = {lang: Counter() for lang in languages}
    for text, lang in zip(texts, langs, strict=True):
        if lang in counts:
            counts[lang].update(words_of(text))
    lex = Lexicon()
    present = [lang for lang in languages if counts[lang]]
    if len(present) < 2:
        return lex  # nothing to translate between
    for lang in present:
        stop = stopwords(lang)
        vocab = [w for w, n in counts[lang].most_common(MAX_WORDS) if n >= MIN_COUNT and fold(w) not in stop]
        lex.words[lang], lex.vectors[lang] = vocab, _embed_words(vocab, lang, embedder, previous)
    return lex


def _embed_words(vocab: list[str], lang: str, embedder: Embedder, reuse: Lexicon | None) -> np.ndarray:
    """The vectors of `vocab`: taken from `reuse` where it has them (same dimension), embedded otherwise."""
    vecs = np.zeros((len(vocab), embedder.dim), dtype=np.float32)
    missing = []
    for i, w in enumerate(vocab):
        v = reuse.vector(lang, w) if reuse is not None else None
        if v is not None and len(v) == embedder.dim:
            vecs[i] = v
        else:
            missing.append(i)
    if missing:
        vecs[missing] = embedder.embed_passages([vocab[i] for i in missing])
    return vecs


def extend_lexicon(texts: list[str], langs: list[str], embedder: Embedder, known: Lexicon,
                   reuse: Lexicon | None = None, languages: tuple[str, ...] = ("en", "fr")) -> Lexicon:
    """The words of `texts` that `known` lacks, embedded (vectors `reuse` has are taken from it): a delta's part
    of the lexicon (see `merge_lexicons`)."""
    counts: dict[str, Counter[str]] = {lang: Counter() for lang in languages}
    for text, lang in zip(texts, langs, strict=True):
        if lang in counts:
            counts[lang].update(words_of(text))
    lex = Lexicon()
    for lang in languages:
        stop = stopwords(lang)
        have = set(known.words.get(lang, []))
        vocab = [w for w, n in counts[lang].most_common(MAX_WORDS)
                 if n >= MIN_COUNT and fold(w) not in stop and w not in have]
        if vocab:
            lex.words[lang], lex.vectors[lang] = vocab, _embed_words(vocab, lang, embedder, reuse)
    return lex


def merge_lexicons(first: Lexicon, second: Lexicon) -> Lexicon:
    """One table with the words of both (a word `first` has keeps its vector there)."""
    if not second.words:
        return first
    out = Lexicon()
    for lang in sorted(set(first.words) | set(second.words)):
        words = list(first.words.get(lang, []))
        have = set(words)
        extra = [i for i, w in enumerate(second.words.get(lang, [])) if w not in have]
        parts = [v for v in (first.vectors.get(lang), ) if v is not None and len(v)]
        if extra:
            words += [second.words[lang][i] for i in extra]
            parts.append(second.vectors[lang][extra])
        out.words[lang] = words
        dim = next((v.shape[1] for v in [*first.vectors.values(), *second.vectors.values()] if v.ndim == 2), 0)
        out.vectors[lang] = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    return out
