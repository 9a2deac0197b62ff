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


Best = tuple[np.ndarray, np.ndarray]  # per source word: up to TOP target-word ids (-1 pads), their cosines


def best_matches(a: np.ndarray, b: np.ndarray, offset: int = 0) -> Best:
    """For each row of `a`, its TOP most similar rows of `b` at or above THRESHOLD, best first, ties in row order
    (ids start at `offset`), as a full sort would give."""
    ids = np.full((len(a), TOP), -1, dtype=np.int32)
    sims = np.zeros((len(a), TOP), dtype=np.float32)
    if not len(a) or not len(b):
        return ids, sims
    k = min(TOP, len(b))
    for start in range(0, len(a), 2048):
        block = a[start:start + 2048] @ b.T
        # each row's k-th best similarity (a partition, not a sort of the whole vocabulary: 0.29 -> 0.15 s for the
        # shared corpus's 4,000 x 5,000 words); its words at or above that and the threshold, ties by row
        kth = np.partition(block, len(b) - k, axis=1)[:, len(b) - k]
        for i, row in enumerate(block):
            cand = np.flatnonzero(row >= max(float(kth[i]), THRESHOLD))
            if len(cand):
                best = cand[np.lexsort((cand, -row[cand]))][:k]
                ids[start + i, :len(best)] = best + offset
                sims[start + i, :len(best)] = row[best]
    return ids, sims


def _union(x: Best, y: Best) -> Best:
    """Row by row, the TOP best of two `best_matches` results over disjoint target ids (same order rule)."""
    ids = np.concatenate([x[0], y[0]], axis=1)
    sims = np.concatenate([x[1], y[1]], axis=1)
    order = np.lexsort((ids, np.where(ids >= 0, -sims, np.inf)), axis=1)[:, :TOP]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(sims, order, axis=1)


@dataclass
class Lexicon:
    words: dict[str, list[str]] = field(default_factory=dict)  # lang -> vocabulary
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # lang -> (n, dim)
    # (src, tgt) -> each src word's best tgt words: computed and stored at ingest (4.5 s per direction at 20,000
    # words per language, ~30 s at the 50,000 cap, which the first translated question of each generation waited for)
    best: dict[tuple[str, str], Best] = field(default_factory=dict, repr=False)
    # in a delta's lexicon: the same over the base's and the delta's words together (see `merge_lexicons`)
    merged: dict[tuple[str, str], Best] = field(default_factory=dict, repr=False)
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    @property
    def languages(self) -> list[str]:
        return sorted(self.words)

    def _row(self, lang: str, word: str) -> int | None:
        idx = self._index.get(lang)
        if idx is None:
            idx = self._index[lang] = {w: i for i, w in enumerate(self.words.get(lang, []))}
        return idx.get(word)

    def vector(self, lang: str, word: str) -> np.ndarray | None:
        i = self._row(lang, word)
        return None if i is None else self.vectors[lang][i]

    def matches(self, src: str, tgt: str) -> Best:
        """`best_matches` of the src vocabulary in the tgt vocabulary, as stored (computed once if not)."""
        key = (src, tgt)
        if key not in self.best:
            a, b = self.vectors.get(src), self.vectors.get(tgt)
            empty = np.zeros((0, 1), dtype=np.float32)
            self.best[key] = best_matches(a if a is not None else empty, b if b is not None else empty)
        return self.best[key]

    def translations(self, src: str, tgt: str, word: str) -> list[str]:
        """Up to TOP words in tgt with similarity >= THRESHOLD to `word` (a src vocabulary word), best first."""
        i = self._row(src, word)
        if i is None or tgt not in self.words:
            return []
        wb = self.words[tgt]
        return [wb[j] for j in self.matches(src, tgt)[0][i] if j >= 0]

    def table(self, src: str, tgt: str) -> dict[str, list[str]]:
        """word in src -> `translations` (words with none left out)."""
        ids = self.matches(src, tgt)[0]
        wa, wb = self.words.get(src, []), self.words.get(tgt, [])
        return {wa[i]: [wb[j] for j in row if j >= 0] for i, row in enumerate(ids) if row[0] >= 0}

    def translate(self, query: str, src: str, tgt: str, embedder: Embedder | None = None) -> str:
        """The query's content words mapped into `tgt` words (unknown words embedded on the fly)."""
        stop = stopwords(src)
        words = [w for w in dict.fromkeys(words_of(query)) if fold(w) not in stop]
        if not words or tgt not in self.words:
            return ""
        out: list[str] = []
        unknown = []
        for w in words:
            if self._row(src, w) is None:
                unknown.append(w)
            else:
                out.extend(self.translations(src, tgt, w))
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
        """Words, vectors, and the best matches of every language pair (computed here if not yet; a delta's
        lexicon stores them over the merged vocabulary instead, which is what its readers use)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lexicon.json").write_text(json.dumps({"languages": self.languages}, ensure_ascii=False))
        for lang in self.languages:
            (folder / f"words.{lang}.json").write_text(json.dumps(self.words[lang], ensure_ascii=False))
            np.save(folder / f"vectors.{lang}.npy", self.vectors[lang].astype(np.float32), allow_pickle=False)
        for src, tgt in _pairs(self.languages):
            if (src, tgt) not in self.merged:
                _save_best(folder, f"best.{src}-{tgt}", self.matches(src, tgt))
        for (src, tgt), found in self.merged.items():
            _save_best(folder, f"merged.{src}-{tgt}", found)

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
        for src, tgt in _pairs(langs):
            found = _load_best(folder, f"best.{src}-{tgt}")  # absent in an index written before they were stored
            if found is not None:
                lex.best[(src, tgt)] = _checked(found, len(lex.words[src]), len(lex.words[tgt]), f"{src}-{tgt}")
            found = _load_best(folder, f"merged.{src}-{tgt}")
            if found is not None:
                lex.merged[(src, tgt)] = found  # checked against the merged vocabulary by merge_lexicons
        return lex


def _pairs(langs: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in langs for b in langs if a != b]


def _save_best(folder: Path, name: str, found: Best) -> None:
    np.save(folder / f"{name}.ids.npy", found[0], allow_pickle=False)
    np.save(folder / f"{name}.sims.npy", found[1], allow_pickle=False)


def _load_best(folder: Path, name: str) -> Best | None:
    if not (folder / f"{name}.ids.npy").exists():
        return None
    return (np.load(folder / f"{name}.ids.npy", allow_pickle=False),
            np.load(folder / f"{name}.sims.npy", allow_pickle=False))


def _checked(found: Best, rows: int, targets: int, what: str) -> Best:
    ids, sims = found
    if ids.shape != (rows, TOP) or sims.shape != (rows, TOP) or (rows and int(ids.max()) >= targets):
        raise ValueError(f"lexicon matches {what}: shape {ids.shape} for {rows} words and {targets} targets")
    return found


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
    """One table with the words of both (a word `first` has keeps its vector there). The best matches over both
    vocabularies are `second.merged` when it holds them (stored with a delta at ingest), else derived from
    `first`'s: its words against `second`'s new words, and `second`'s new words against all, so that the cost
    follows the new words."""
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
    for src, tgt in _pairs(out.languages):
        rows, targets = len(out.words[src]), len(out.words[tgt])
        stored = second.merged.get((src, tgt))
        if stored is not None:
            out.best[(src, tgt)] = _checked(stored, rows, targets, f"{src}-{tgt} (merged)")
            continue
        old_s, old_t = len(first.words.get(src, [])), len(first.words.get(tgt, []))
        a, b = out.vectors[src], out.vectors[tgt]
        old = first.matches(src, tgt) if old_s else best_matches(a[:0], b)
        old = _union(old, best_matches(a[:old_s], b[old_t:], offset=old_t))
        new = best_matches(a[old_s:], b)
        out.best[(src, tgt)] = (np.concatenate([old[0], new[0]]), np.concatenate([old[1], new[1]]))
    return out
