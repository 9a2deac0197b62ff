"""The lexicon of a PostgreSQL index, with its translation table stored at ingest.

`lexicon` holds per-language word counts and a vector for each of the MAX_WORDS most frequent words of every
language (`index.postgres_writer`). The translation table, each such word's TOP best words in the other language
(`index.lexicon.best_matches`), is stored beside it in `lexicon_best` (one row per source word, the target words
and their cosines, best first; a word with none has empty arrays), so that a server opening a new generation reads
it instead of computing it at its first translated question (0.9 s for the shared corpus's 4,100 + 4,900 words, ~30
s at the 50,000-word cap, on every server after every ingest).

The writer updates the table at each commit at a cost that follows the words that changed: a word entering the
vocabulary is matched against the whole other-language vocabulary; every word already there only against the
other language's new words, unless one of its stored matches left the vocabulary (then its row is recomputed).
The result is what a table built over the new vocabulary gives, up to the order of equally similar words.

A database written before this table existed has none: its readers compute the table as before (`Lexicon.matches`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from arrival.index.lexicon import MAX_WORDS, TOP, Best, Lexicon, _pairs, _union, best_matches
from arrival.index.postgres_schema import SCHEMA

TABLE_SQL = (f"CREATE TABLE IF NOT EXISTS {SCHEMA}.lexicon_best (src text NOT NULL, tgt text NOT NULL, "
             "word text NOT NULL, targets text[] NOT NULL, sims real[] NOT NULL, PRIMARY KEY (src, tgt, word))")

Rows = dict[tuple[str, str], dict[str, tuple[list[str], list[float]]]]  # (src, tgt) -> word -> (targets, sims)


def _words_sql(with_vectors: bool) -> str:
    cols = "lang, word, vector" if with_vectors else "lang, word"
    return f"""
        SELECT {cols} FROM (
            SELECT lang, word, n, vector, row_number() OVER (PARTITION BY lang ORDER BY n DESC, word) AS r
            FROM {SCHEMA}.lexicon) x
        WHERE r <= {MAX_WORDS} AND vector IS NOT NULL ORDER BY lang, n DESC, word"""


def read_lexicon(sql: Callable[..., list[Any]], as_array: Callable[[Any], np.ndarray], table: bool = True
                 ) -> Lexicon:
    """The vocabulary (the view's order) with its vectors, and (`table`) the stored translation table where it
    covers it. `sql(query, binary=...)` runs one query in the caller's transaction."""
    lex = Lexicon()
    by_lang: dict[str, list[tuple[str, np.ndarray]]] = {}
    for lang, word, vec in sql(_words_sql(True), binary=True):
        by_lang.setdefault(str(lang), []).append((str(word), as_array(vec)))
    if len(by_lang) < 2:
        return lex  # nothing to translate between
    for lang, pairs in by_lang.items():
        lex.words[lang] = [w for w, _ in pairs]
        lex.vectors[lang] = np.stack([v for _, v in pairs])
    for key, found in (aligned(lex, read_rows(sql)) if table else {}).items():
        lex.best[key] = found
    return lex


def read_rows(sql: Callable[..., list[Any]]) -> Rows:
    """Every stored row, or nothing when the table does not exist (a database written before it)."""
    exists = sql(f"SELECT to_regclass('{SCHEMA}.lexicon_best') IS NOT NULL")[0][0]
    if not exists:
        return {}
    rows: Rows = {}
    for src, tgt, word, targets, sims in sql(f"SELECT src, tgt, word, targets, sims FROM {SCHEMA}.lexicon_best"):
        rows.setdefault((str(src), str(tgt)), {})[str(word)] = (list(targets), [float(s) for s in sims])
    return rows


def vocabulary_changed(sql: Callable[..., list[Any]], rows: Rows) -> bool:
    """Whether the vocabulary (words only, no vectors read) differs from the one the stored rows were made for."""
    now: dict[str, set[str]] = {}
    for lang, word in sql(_words_sql(False)):
        now.setdefault(str(lang), set()).add(str(word))
    if len(now) < 2:
        return bool(rows)  # no table: stale rows go
    return now != _vocabulary(rows)


def aligned(lex: Lexicon, rows: Rows) -> dict[tuple[str, str], Best]:
    """The stored rows as `Lexicon.best` arrays over `lex`'s vocabulary; a direction whose rows do not cover it
    exactly (every source word, every target in the vocabulary) is left out (computed when needed)."""
    out: dict[tuple[str, str], Best] = {}
    for src, tgt in _pairs(lex.languages):
        stored = rows.get((src, tgt))
        if stored is None or len(stored) != len(lex.words[src]):
            continue
        ids, sims, missing = _arrays(lex.words[src], lex.words[tgt], stored)
        if not missing:
            out[(src, tgt)] = (ids, sims)
    return out


def _arrays(words_s: list[str], words_t: list[str], stored: dict[str, tuple[list[str], list[float]]]
            ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The stored rows of `words_s` as (ids into `words_t`, cosines), and the source rows they cannot give (a word
    without a row, or a row naming a word no longer in `words_t`), left empty."""
    tid = {w: i for i, w in enumerate(words_t)}
    ids = np.full((len(words_s), TOP), -1, dtype=np.int32)
    sims = np.zeros((len(words_s), TOP), dtype=np.float32)
    missing: list[int] = []
    for i, w in enumerate(words_s):
        row = stored.get(w)
        if row is None or len(row[0]) > TOP or any(t not in tid for t in row[0]):
            missing.append(i)
            continue
        ids[i, :len(row[0])] = [tid[t] for t in row[0]]
        sims[i, :len(row[1])] = row[1]
    return ids, sims, missing


def _vocabulary(rows: Rows) -> dict[str, set[str]]:
    """The vocabulary the stored rows were made for: every word has a row in each direction it is the source of."""
    return {src: set(words) for (src, _), words in rows.items()}


def update_table(conn: Any, lex: Lexicon, rows: Rows) -> int:
    """Bring `lexicon_best` (whose rows are `rows`) to the vocabulary of `lex`; returns the rows written."""
    conn.execute(TABLE_SQL)
    vocab_before = _vocabulary(rows)
    pairs = _pairs(lex.languages)
    written = 0
    for src, tgt in pairs:
        stored = rows.get((src, tgt), {})
        now = as_rows(lex, src, tgt, updated(lex, src, tgt, stored, vocab_before.get(tgt, set())))
        upsert = [(w, targets, sims) for w, (targets, sims) in now.items()
                  if w not in stored or stored[w][0] != targets or not np.allclose(stored[w][1], sims, atol=1e-6)]
        gone = sorted(set(stored) - set(now))
        if gone:
            conn.execute(f"DELETE FROM {SCHEMA}.lexicon_best WHERE src = %s AND tgt = %s AND word = ANY(%s)",
                         (src, tgt, gone))
        _upsert(conn, src, tgt, upsert)
        written += len(upsert)
    for s, t in set(rows) - set(pairs):  # a language left the vocabulary (fewer than two languages: no table)
        conn.execute(f"DELETE FROM {SCHEMA}.lexicon_best WHERE src = %s AND tgt = %s", (s, t))
    return written


def as_rows(lex: Lexicon, src: str, tgt: str, found: Best) -> dict[str, tuple[list[str], list[float]]]:
    """`best_matches` arrays as the table's rows: source word -> (target words, cosines), best first."""
    words_t = lex.words[tgt]
    out = {}
    for w, ids, sims in zip(lex.words[src], found[0], found[1], strict=True):
        keep = ids >= 0
        out[w] = ([words_t[j] for j in ids[keep]], [float(x) for x in sims[keep]])
    return out


def updated(lex: Lexicon, src: str, tgt: str, stored: dict[str, tuple[list[str], list[float]]],
            tgt_before: set[str]) -> Best:
    """`best_matches` of src's vocabulary in tgt's, from the stored rows and the words that changed."""
    words_t = lex.words[tgt]
    a, b = lex.vectors[src], lex.vectors[tgt]
    added_t = np.array([i for i, w in enumerate(words_t) if w not in tgt_before], dtype=np.int64)
    ids, sims, redo = _arrays(lex.words[src], words_t, stored if tgt_before else {})
    redo_set = set(redo)  # a new word, or one of its matches left the vocabulary: matched against all
    kept = [i for i in range(len(ids)) if i not in redo_set]
    if redo:
        ids[redo], sims[redo] = best_matches(a[redo], b)
    if kept and len(added_t):
        new_ids, new_sims = best_matches(a[kept], b[added_t])
        new_ids = np.where(new_ids >= 0, added_t[np.maximum(new_ids, 0)], -1).astype(np.int32)
        ids[kept], sims[kept] = _union((ids[kept], sims[kept]), (new_ids, new_sims))
    return ids, sims


def _upsert(conn: Any, src: str, tgt: str, rows: Sequence[tuple[str, list[str], list[float]]]) -> None:
    if not rows:
        return
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS lexicon_best_new (word text, targets text[], sims real[]) "
                    "ON COMMIT DROP")
        cur.execute("TRUNCATE lexicon_best_new")
        with cur.copy("COPY lexicon_best_new FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(f"INSERT INTO {SCHEMA}.lexicon_best (src, tgt, word, targets, sims) "
                    "SELECT %s, %s, word, targets, sims FROM lexicon_best_new "
                    "ON CONFLICT (src, tgt, word) DO UPDATE SET targets = EXCLUDED.targets, sims = EXCLUDED.sims",
                    (src, tgt))
