"""The PostgreSQL index's stored translation table, updated from the words that changed (index.postgres_lexicon):
the same best matches as a table computed over the new vocabulary. No database needed: the update rule alone (the
table's round trip through PostgreSQL is tests/test_postgres.py)."""

from __future__ import annotations

import numpy as np

from arrival.index.lexicon import Lexicon
from arrival.index.postgres_lexicon import as_rows, updated


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _sub(whole: Lexicon, keep: dict[str, np.ndarray]) -> Lexicon:
    return Lexicon(words={k: [whole.words[k][i] for i in keep[k]] for k in keep},
                   vectors={k: whole.vectors[k][keep[k]] for k in keep})


def test_an_updated_table_is_the_table_of_the_new_vocabulary() -> None:
    rng = np.random.default_rng(11)
    en = _unit(rng.standard_normal((600, 8)))
    fr = _unit(en[rng.integers(0, 600, 700)] + 0.35 * rng.standard_normal((700, 8)))  # near translations
    whole = Lexicon(words={"en": [f"e{i}" for i in range(600)], "fr": [f"f{j}" for j in range(700)]},
                    vectors={"en": en, "fr": fr})
    before = _sub(whole, {k: np.flatnonzero(rng.random(n) < 0.8) for k, n in (("en", 600), ("fr", 700))})
    after = _sub(whole, {k: np.flatnonzero(rng.random(n) < 0.8) for k, n in (("en", 600), ("fr", 700))})
    grew = 0
    for src, tgt in (("en", "fr"), ("fr", "en")):
        stored = as_rows(before, src, tgt, before.matches(src, tgt))
        got = as_rows(after, src, tgt, updated(after, src, tgt, stored, set(before.words[tgt])))
        want = as_rows(after, src, tgt, after.matches(src, tgt))
        assert got.keys() == want.keys() and sum(bool(t) for t, _ in want.values()) > 300
        for w, (targets, sims) in want.items():
            assert np.allclose(got[w][1], sims, atol=1e-6), w  # the same similarities picked (ties may swap)
            assert len(got[w][0]) == len(targets)
        # the update exercised every path: kept rows that gained a new word, rows whose match left, new words
        new_t = set(after.words[tgt]) - set(before.words[tgt])
        grew += sum(1 for w, (t, _) in got.items() if w in stored and set(t) & new_t and
                    all(x in set(after.words[tgt]) for x in stored[w][0]))
        assert any(w in stored and set(stored[w][0]) - set(after.words[tgt]) for w in got)
        assert set(got) - set(stored)
    assert grew > 20
