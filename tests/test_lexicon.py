"""The corpus lexicon's translation table: each word's best other-language words, as a full sort would give."""

from __future__ import annotations

import numpy as np

from arrival.index.lexicon import THRESHOLD, TOP, Lexicon


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_table_is_the_best_words_above_the_threshold_best_first_ties_by_vocabulary_order() -> None:
    rng = np.random.default_rng(3)
    src = _unit(rng.standard_normal((3000, 16)))  # more rows than one block of the table (2048)
    tgt = _unit(rng.standard_normal((700, 16)))
    tgt[10] = tgt[20] = tgt[30] = tgt[5]  # ties: equal vectors under different words
    src[7] = tgt[5]
    lex = Lexicon(words={"en": [f"e{i}" for i in range(len(src))], "fr": [f"f{j}" for j in range(len(tgt))]},
                  vectors={"en": src, "fr": tgt})
    table = lex.table("en", "fr")
    sims = src @ tgt.T
    want: dict[str, list[str]] = {}
    for i, row in enumerate(sims):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:TOP]
        keep = [f"f{j}" for j in order if row[j] >= THRESHOLD]
        if keep:
            want[f"e{i}"] = keep
    assert table == want and len(want) > 100
    assert table["e7"] == ["f5", "f10", "f20"]  # four equal best words: the first three in vocabulary order
    one = Lexicon(words={"en": ["a"], "fr": ["b"]}, vectors={"en": src[:1], "fr": src[:1]})
    assert one.table("en", "fr") == {"a": ["b"]}  # fewer target words than TOP
