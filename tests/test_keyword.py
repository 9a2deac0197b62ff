"""The BM25 keyword index: per-language analysis and per-language statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arrival.index.keyword import KeywordIndex, analyze

FR = ["Le guichet unique de la ville accueille les migrants.",
      "La mairie publie un guide pour les migrants nouveaux arrivants."]
EN = ["The one-stop shop welcomes migrants in the city.", "Cities publish guides for newcomers.",
      "UNICEF: housing and health services for migrants.", "The municipality trains its staff."]


def test_analysis_is_per_language() -> None:
    assert analyze("l'intégration des migrants", "fr") == ["integr", "migr"]
    assert analyze("The integration of migrants", "en") == ["integr", "migrant"]


def _scores(index: KeywordIndex, query: str, lang: str, target: str | None = None) -> np.ndarray:
    """BM25 score of every row for the query analysed in `lang` against the passages in `target` (0 elsewhere)."""
    out = np.zeros(index.size, dtype=np.float32)
    rows, scores = index.top(query, lang, target or lang, index.size)
    out[rows] = scores
    return out


def test_statistics_are_per_language() -> None:
    """A French word's score depends on the French passages only: adding English passages that contain the
    same token (a name, a cognate) must not change it. With one shared index it would (IDF over both)."""
    small = KeywordIndex.build(FR + EN[:1], ["fr", "fr", "en"])
    large = KeywordIndex.build(FR + EN, ["fr", "fr", "en", "en", "en", "en"])
    query = "guichet unique pour les migrants"
    assert np.allclose(_scores(small, query, "fr")[:2], _scores(large, query, "fr")[:2])
    assert _scores(small, query, "fr")[0] > _scores(small, query, "fr")[1] > 0
    # other-language rows score 0 in a language's channel, and a query can be scored against the other language
    assert not _scores(large, query, "fr")[2:].any()
    cross = _scores(large, "l'UNICEF", "fr", target="en")
    assert cross[4] > 0 and not np.delete(cross, 4).any()


def test_top_ranks_and_round_trips(tmp_path: Path) -> None:
    index = KeywordIndex.build(FR + EN, ["fr", "fr", "en", "en", "en", "en"])
    rows, scores = index.top("guichet unique migrants", "fr", "fr", 10)
    assert rows[0] == 0 and list(scores) == sorted(scores, reverse=True) and (scores > 0).all()
    index.save(tmp_path / "kw")
    again = KeywordIndex.load(tmp_path / "kw")
    assert again.languages == ("en", "fr") and again.size == 6
    assert np.array_equal(_scores(again, "guides newcomers", "en"), _scores(index, "guides newcomers", "en"))


def test_empty_index_and_mismatched_parts(tmp_path: Path) -> None:
    empty = KeywordIndex.build([], [])
    assert empty.size == 0 and not len(empty.top("x", "fr", "fr", 5)[0])
    empty.save(tmp_path / "empty")
    assert KeywordIndex.load(tmp_path / "empty").size == 0
    index = KeywordIndex.build(FR + EN, ["fr", "fr", "en", "en", "en", "en"])
    index.save(tmp_path / "kw")
    part = next(p for p in (tmp_path / "kw").iterdir() if p.is_dir())
    for bad in (np.arange(1, dtype=np.int64), np.zeros(4, dtype=np.float32), np.arange(10, 14, dtype=np.int64)):
        np.save(part / "rows.npy", bad, allow_pickle=False)
        with pytest.raises(ValueError, match="part-"):
            KeywordIndex.load(tmp_path / "kw")


@pytest.mark.parametrize("query", ["housing", "migrants housing city shop guide staff"])  # few / many postings
def test_top_is_the_full_scoring_ranked_ties_in_row_order_within_keep(query: str) -> None:
    """`top` scores over the query terms' postings only when they are few (and over every passage when they are
    not): both give bm25s's own scores for every passage, ranked best first with ties in row order."""
    rng = np.random.default_rng(4)
    words = ["housing", "migrants", "city", "shop", "guide", "staff", "health", "school", "work", "rights"]
    texts = [" ".join(rng.choice(words[1:], 6)) for i in range(600)]
    for i in range(1, 600, 50):  # a rare word: postings under 1/32 of the English passages
        texts[i] += " housing"
    texts[10] = texts[20] = texts[30]  # equal scores
    langs = ["en" if i % 3 else "fr" for i in range(600)]
    index = KeywordIndex.build(texts, langs)
    keep = rng.random(600) > 0.2
    full = np.zeros(600, dtype=np.float32)  # bm25s's own scores of every English passage
    rows, bm25 = index._parts["en"]
    full[rows] = bm25.get_scores([t for t in dict.fromkeys(analyze(query, "en")) if t in bm25.vocab_dict])
    full *= keep
    for n in (5, 50, 1000):
        rows, scores = index.top(query, "en", "en", n, keep, offset=7)
        hit = np.flatnonzero(full > 0)
        want = hit[np.lexsort((hit, -full[hit]))][:n]
        assert np.array_equal(rows, want + 7) and np.array_equal(scores, full[want]) and len(rows) == min(n, len(hit))
    assert len(hit) >= 5
    assert index.top("nothing known", "en", "en", 5)[0].size == 0 and index.top(query, "en", "de", 5)[0].size == 0
