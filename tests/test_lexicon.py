"""The corpus lexicon's translation table: each word's best other-language words, as a full sort would give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arrival.index.lexicon import THRESHOLD, TOP, Lexicon, merge_lexicons


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


def _pair(rng: np.random.Generator, n_en: int, n_fr: int) -> Lexicon:
    en = _unit(rng.standard_normal((n_en, 8)))
    fr = _unit(en[rng.integers(0, n_en, n_fr)] + 0.35 * rng.standard_normal((n_fr, 8)))  # near translations
    fr[:6] = fr[6]  # ties across the split below
    return Lexicon(words={"en": [f"e{i}" for i in range(n_en)], "fr": [f"f{j}" for j in range(n_fr)]},
                   vectors={"en": en, "fr": fr})


def test_a_merged_lexicon_matches_as_one_built_over_both_vocabularies() -> None:
    whole = _pair(np.random.default_rng(5), 900, 1100)
    first, second = Lexicon(), Lexicon()
    for lang, cut in (("en", 800), ("fr", 3)):  # the delta's new French words tie with the base's
        first.words[lang], second.words[lang] = whole.words[lang][:cut], whole.words[lang][cut:]
        first.vectors[lang], second.vectors[lang] = whole.vectors[lang][:cut], whole.vectors[lang][cut:]
    merged = merge_lexicons(first, second)
    for src, tgt in (("en", "fr"), ("fr", "en")):
        want, got = whole.table(src, tgt), merged.table(src, tgt)
        assert got.keys() == want.keys() and len(want) > 300
        # the same words, but where two are equally similar: the products computed in parts may differ in the
        # last bit, which can swap equal words (the planted ties); the similarities picked are the same
        same = sum(got[w] == want[w] for w in want)
        assert same >= 0.98 * len(want), (same, len(want))
        a, b = whole.vectors[src], whole.vectors[tgt]
        index = {w: i for i, w in enumerate(whole.words[tgt])}
        for i, w in enumerate(whole.words[src]):
            if w in want:
                picked = [float(a[i] @ b[index[t]]) for t in got[w]]
                assert np.allclose(picked, [float(a[i] @ b[index[t]]) for t in want[w]], atol=1e-6), w
        # what a delta stores at ingest is what the readers use
        stored = Lexicon(words=second.words, vectors=second.vectors, merged=merged.best)
        assert merge_lexicons(first, stored).table(src, tgt) == got


def test_the_best_matches_are_stored_and_a_damaged_table_is_refused(tmp_path: Path) -> None:
    lex = _pair(np.random.default_rng(6), 300, 200)
    lex.save(tmp_path)
    back = Lexicon.load(tmp_path)
    assert set(back.best) == {("en", "fr"), ("fr", "en")}
    assert back.table("en", "fr") == lex.table("en", "fr") and back.translations("en", "fr", "nope") == []
    np.save(tmp_path / "best.en-fr.ids.npy", np.zeros((299, TOP), dtype=np.int32))
    with pytest.raises(ValueError, match="en-fr"):
        Lexicon.load(tmp_path)
