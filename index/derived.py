"""Per-passage data computed once at ingest and stored with the index (never at query time), by every backend.

- `question_list`: 1.0 for a passage whose sentences are mostly questions (guiding-question lists look like every
  question, so the ranking takes a little off them).
- `neighbours`: the passages just before and after in the same document (a passage's dense score is read in the
  context of its neighbours).
- `partners`: a passage's translation in the other language. The UN guidance is published in both languages, as
  extracts and inside the full guide, so the same content often exists as a French and an English passage. A
  passage's partner is the other-language passage closest to it by vector (cosine >= `TRANSLATION_COSINE` with the
  primary multilingual embedder) that states every number it states (a translation keeps its figures). When both
  are retrieved, the one in the question's language is shown and the other is folded under it. Up to
  `EXACT_MAX` passages in the other languages the nearest are found exactly (a blocked matrix product); above, by
  an IVF index over them (`PARTNER_NPROBE` lists searched), which keeps a merge at a million passages in minutes
  rather than hours (the exact product is quadratic).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from arrival.ingest.sentences import split_sentences

TRANSLATION_COSINE = 0.7  # measured on the development sets (README): mutual nearest passages across languages
# at 0.7+ are translations of each other in 96% of the cases read
_FIGURE = re.compile(r"\d+")
BLOCK = 2048
EXACT_MAX = 20_000  # other-language passages up to which partners are searched exactly
PARTNER_NPROBE = 16
SEARCH_BLOCK = 16_384


def question_list(text: str) -> float:
    n = max(1, len(split_sentences(text, min_chars=15)))
    return 1.0 if text.count("?") / n > 0.5 else 0.0


def figures(text: str) -> frozenset[str]:
    return frozenset(_FIGURE.findall(text))


def neighbours(order: Sequence[tuple[str, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """prev/next ids from (doc_id, page, start, id) of every passage; -1 at a document's ends. Ids index the
    returned arrays, which have max(id) + 1 entries."""
    size = max((r[3] for r in order), default=-1) + 1
    prev = np.full(size, -1, dtype=np.int64)
    nxt = np.full(size, -1, dtype=np.int64)
    last_id, last_doc = -1, None
    for doc, _page, _start, i in sorted(order):
        if doc == last_doc:
            prev[i] = last_id
            nxt[last_id] = i
        last_id, last_doc = i, doc
    return prev, nxt


def partners(vectors: np.ndarray, langs: Sequence[str], texts: Sequence[str],
             threshold: float = TRANSLATION_COSINE) -> np.ndarray:
    """For every passage, the id (row) of its translation in another language, or -1 (see the module doc)."""
    n = len(langs)
    out = np.full(n, -1, dtype=np.int64)
    lang_arr = np.asarray(langs, dtype=object)
    figs = [figures(t) for t in texts]
    for lang in sorted(set(langs)):
        mine = np.flatnonzero(lang_arr == lang)
        other = np.flatnonzero(lang_arr != lang)
        if not len(mine) or not len(other):
            continue
        ov = np.ascontiguousarray(vectors[other], dtype=np.float32)
        for rows, cols, sims in _nearest3(vectors, mine, ov):
            for i, r in enumerate(rows):
                for j, sim in zip(cols[i], sims[i], strict=True):
                    if j < 0 or sim < threshold:
                        break
                    cand = int(other[j])
                    if figs[r] <= figs[cand]:
                        out[r] = cand
                        break
    return out


def _nearest3(vectors: np.ndarray, mine: np.ndarray, ov: np.ndarray
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, columns of `ov`, similarities) per block of `mine`: each row's 3 nearest of `ov`, best first (-1: no
    neighbour)."""
    if len(ov) <= EXACT_MAX:
        for start in range(0, len(mine), BLOCK):
            rows = mine[start:start + BLOCK]
            sims = np.asarray(vectors[rows], dtype=np.float32) @ ov.T
            order = np.argsort(-sims, axis=1)[:, :3]
            yield rows, order, np.take_along_axis(sims, order, axis=1)
        return
    from arrival.index.vectors import build_ivf, ivf_nlist

    index = build_ivf(ov, ivf_nlist(len(ov)), PARTNER_NPROBE)
    for start in range(0, len(mine), SEARCH_BLOCK):
        rows = mine[start:start + SEARCH_BLOCK]
        sims, cols = index.search(np.ascontiguousarray(vectors[rows], dtype=np.float32), 3)
        yield rows, cols, sims
