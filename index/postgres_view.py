"""One consistent state of a PostgreSQL index: the `View` contract (index.view) on a REPEATABLE READ, READ ONLY
transaction, held from the View's opening to its closing (see `index.postgres`).

- `dense`: an HNSW scan (inner product of unit vectors = cosine) with the language and document filters in the
  same statement; iterative scans (pgvector >= 0.8) go on through the graph until enough rows pass the filter,
  and the planner takes the document index instead when a filter keeps only a few documents.
- `keyword`: BM25 computed in SQL over the passages of the target language, from `postings`: each lexeme of the
  question (analysed by the language's text search configuration) weighs idf (from its document frequency and
  the language's passage count in `terms`/`lang_stats`: statistics per language, as in the embedded index) times
  its stored impact in the passage (its saturated, length-normalised frequency, bm25s's "lucene" formula, k1 1.5,
  b 0.75, computed with the language's mean length when the passage was written); only the TERM_DEPTH postings of
  highest impact of each lexeme are read (an index-only range scan each), so the scores are exact for every
  lexeme held by at most TERM_DEPTH passages (nearly all of them at the shared corpus's size) and leave out the
  smallest contributions of the commonest words beyond. A search filtered to documents scores their matching
  passages from their own `tsv` (the language's partial GIN index), exactly.
- Caches: the per-passage columns and the passage rows a search reads are kept per generation of the index (they
  change only at a commit), vectors per process (`index.postgres.VectorCache`): a server's working set is read
  from the database once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from arrival.errors import IndexOpenError
from arrival.index.keyword import fold
from arrival.index.lexicon import Lexicon
from arrival.index.postgres_lexicon import read_lexicon
from arrival.index.postgres_schema import FORMAT_VERSION, SCHEMA, safe_lang
from arrival.index.view import DENSE, E5, ChunkRow, DocInfo, Meta

if TYPE_CHECKING:
    from arrival.index.postgres import PostgresBackend

K1, B = 1.5, 0.75
TERM_DEPTH = 1000  # postings read per lexeme of a question, best impact first (exact while its df <= this)
REBUILD_HINT = "run 'arrival ingest --rebuild PATH...' to rebuild it"
_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
META_ROWS, CHUNK_ROWS = 500_000, 50_000  # cached per generation and process (a few hundred MB at most)
_STATE = ("format_version, generation, embedder, dim, e5_embedder, e5_dim, chunk_size, chunk_overlap, passages, "
          "documents, created")


def as_array(value: Any) -> np.ndarray:
    """A pgvector value (binary results come as `pgvector.Vector`) as a float32 array."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def read_state(conn: Any, location: str) -> dict[str, Any] | None:
    """The index's state row, or None when the database holds no arrival index yet (one statement: every request
    reads it first)."""
    import psycopg

    try:
        row = conn.execute(f"SELECT {_STATE} FROM {SCHEMA}.state").fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    if row is None:
        return None
    state = dict(zip(_STATE.split(", "), row, strict=True))
    if state["format_version"] != FORMAT_VERSION:
        raise IndexOpenError(f"{location}: index format {state['format_version']}, this arrival reads "
                             f"{FORMAT_VERSION}; {REBUILD_HINT}")
    return state


class PgView:
    """A View on one snapshot of the database; give it back with `close()` (or use it as a context manager)."""

    def __init__(self, backend: PostgresBackend, conn: Any) -> None:
        self.backend = backend
        self.pool = backend.pool
        self.conn: Any = conn
        state = read_state(conn, backend.location)
        if state is None:
            raise IndexOpenError(f"{backend.location}: no index yet; run 'arrival ingest PATH...' first")
        self.state = state
        if backend.expected_embedder is not None and state["embedder"] != backend.expected_embedder:
            raise IndexOpenError(
                f"{backend.location}: index was built with embedder '{state['embedder']}', not "
                f"'{backend.expected_embedder}': use --model {state['embedder']}, or rebuild with "
                f"'arrival ingest --rebuild --model {backend.expected_embedder} PATH...'")
        if not getattr(conn, "info_vector", False):
            from arrival.index.postgres_schema import register_vector

            conn.info_vector = register_vector(conn)
        # per-passage columns and rows change only at a commit: shared by the views of one generation
        self._meta: dict[int, tuple[Any, ...]] = self._cached("meta", dict)
        self._chunks: dict[int, ChunkRow] = self._cached("chunks", dict)

    # -- lifetime ------------------------------------------------------------------------------------------
    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool.put(conn)

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> PgView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, query: str, params: Sequence[Any] | dict[str, Any] = (), binary: bool = False) -> list[Any]:
        if self.conn is None:
            raise IndexOpenError(f"{self.backend.location}: this view of the index was closed")
        with self.conn.cursor(binary=binary) as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    def _cached(self, key: str, make: Any) -> Any:
        return self.pool.cached((float(self.state["created"]), int(self.state["generation"])), key, make)

    # -- the View contract ---------------------------------------------------------------------------------
    @property
    def generation(self) -> str:
        return f"pg-{int(self.state['generation']):06d}"

    @property
    def embedders(self) -> dict[str, str]:
        out = {DENSE: str(self.state["embedder"])}
        if self.state["e5_embedder"]:
            out[E5] = str(self.state["e5_embedder"])
        return out

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._cached("languages", lambda: [r[0] for r in self._sql(
            f"SELECT lang FROM {SCHEMA}.lang_stats WHERE passages > 0 ORDER BY lang")]))

    def count(self) -> int:
        return int(self.state["passages"])

    def _space(self, space: str) -> str:
        if space not in self.embedders:
            raise KeyError(f"the index has no vector space {space!r}")
        return space

    def _dense_sql(self, space: str, qvec: np.ndarray, n: int, langs: Sequence[str],
                   docs: frozenset[str] | None) -> tuple[str, list[Any]] | None:
        if n <= 0 or (docs is not None and not docs):
            return None
        where: list[str] = []
        params: list[Any] = [np.asarray(qvec, dtype=np.float32)]
        if langs:
            where.append("lang = ANY(%s)")
            params.append(list(langs))
        if docs is not None:
            where.append("doc_id = ANY(%s)")
            params.append(sorted(docs))
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        return (f"WITH c AS MATERIALIZED (SELECT id, embedding <#> %s::vector AS d FROM {SCHEMA}.vectors_"
                f"{self._space(space)} {cond} ORDER BY d LIMIT %s) SELECT id, -d FROM c ORDER BY d, id",
                [*params, n])

    def _keyword_sql(self, text: str, target: str, n: int, docs: frozenset[str] | None
                     ) -> tuple[str, list[Any]] | None:
        if n <= 0 or not safe_lang(target) or target not in self.languages or (docs is not None and not docs):
            return None
        lang = f"'{target}'"
        weights = f"""
            WITH q AS MATERIALIZED (
                SELECT DISTINCT lexeme AS term FROM unnest(to_tsvector({SCHEMA}.ts_config({lang}), %s))),
            w AS MATERIALIZED (
                SELECT q.term, ln(1 + (s.passages - t.df + 0.5) / (t.df + 0.5)) AS idf,
                       s.terms::float8 / greatest(s.passages, 1) AS avgdl
                FROM q JOIN {SCHEMA}.terms t ON t.lang = {lang} AND t.term = q.term
                JOIN {SCHEMA}.lang_stats s ON s.lang = {lang})"""
        if docs is None:  # each lexeme's best passages by impact, read from the index alone
            return f"""{weights}
            SELECT x.id, sum(w.idf * x.impact)::float4 AS score FROM w CROSS JOIN LATERAL (
                SELECT po.id, po.impact FROM {SCHEMA}.postings po WHERE po.lang = {lang} AND po.term = w.term
                ORDER BY po.impact DESC LIMIT {max(TERM_DEPTH, 4 * int(n))}) x
            GROUP BY x.id ORDER BY score DESC, x.id LIMIT {int(n)}""", [text]
        # a few documents: every passage of theirs that matches, scored from its own text
        return f"""{weights},
            a AS MATERIALIZED (SELECT array_agg(term) AS terms, {SCHEMA}.any_of(array_agg(term)) AS tsq FROM w)
            SELECT p.id, sum(w.idf * u.tf / (u.tf + {K1} * (1 - {B} + {B} * p.n_terms / w.avgdl)))::float4 AS score
            FROM {SCHEMA}.passages p CROSS JOIN a
            CROSS JOIN LATERAL (SELECT lexeme, array_length(positions, 1) AS tf
                                FROM unnest(ts_filter(setweight(p.tsv, 'A', a.terms), '{{a}}'))) u
            JOIN w ON w.term = u.lexeme
            WHERE p.lang = {lang} AND p.tsv @@ a.tsq AND p.doc_id = ANY(%s)
            GROUP BY p.id ORDER BY score DESC, p.id LIMIT {int(n)}""", [text, sorted(docs)]

    def _results(self, stmts: Sequence[tuple[str, list[Any]] | None]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ids, scores) of each statement, sent to the server together (psycopg's pipeline mode: one round
        trip for all of them, not one each); None gives nothing."""
        if self.conn is None:
            raise IndexOpenError(f"{self.backend.location}: this view of the index was closed")
        cursors: list[Any] = []
        if sum(st is not None for st in stmts) > 1:
            with self.conn.pipeline():
                for st in stmts:
                    cursors.append(None if st is None else self.conn.execute(*st))
        else:
            cursors = [None if st is None else self.conn.execute(*st) for st in stmts]
        out = []
        for cur in cursors:
            rows = cur.fetchall() if cur is not None else []
            out.append(_EMPTY if not rows else (
                np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                np.fromiter((r[1] for r in rows), dtype=np.float32, count=len(rows))))
        return out

    def dense(self, space: str, qvec: np.ndarray, n: int, langs: Sequence[str] = (),
              docs: frozenset[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self._results([self._dense_sql(space, qvec, n, langs, docs)])[0]

    def keyword(self, text: str, target: str, n: int, docs: frozenset[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        return self._results([self._keyword_sql(text, target, n, docs)])[0]

    def search_channels(self, dense: Sequence[tuple[str, np.ndarray]], keyword: Sequence[tuple[str, str]], n: int,
                        langs: Sequence[str] = (), docs: frozenset[str] | None = None
                        ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
        """Every vector-space and keyword search of one question in one round trip (see `view.search_channels`)."""
        found = self._results([*(self._dense_sql(sp, v, n, langs, docs) for sp, v in dense),
                               *(self._keyword_sql(t, g, n, docs) for t, g in keyword)])
        return found[:len(dense)], found[len(dense):]

    def vectors(self, space: str, ids: np.ndarray) -> np.ndarray:
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        dim = int(self.state["dim"] if space == DENSE else self.state["e5_dim"])
        if not wanted:
            return np.zeros((0, dim), dtype=np.float32)
        index = float(self.state["created"])  # ids restart only in a new schema, created at another time
        cache = self.pool.vectors
        found, missing = cache.take(index, space, wanted)
        if found is not None:
            return found
        fetched = self._fetch_vectors(space, sorted(set(missing)))
        cache.put(index, space, fetched)
        found, missing = cache.take(index, space, wanted)
        if found is not None:
            return found
        fetched.update(self._fetch_vectors(space, sorted(set(missing))))  # the cache was emptied meanwhile
        return np.stack([fetched[i] for i in wanted])

    def _fetch_vectors(self, space: str, ids: list[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        return {int(i): as_array(vec) for i, vec in self._sql(
            f"SELECT id, embedding FROM {SCHEMA}.vectors_{self._space(space)} WHERE id = ANY(%s)", [ids],
            binary=True)}

    def idf(self, words: Sequence[str], lang: str) -> dict[str, float]:
        out = dict.fromkeys(words, 0.0)
        if not words or not safe_lang(lang) or lang not in self.languages:
            return out
        rows = self._sql(f"""
            SELECT w.word, max(ln(1 + (s.passages - coalesce(t.df, 0) + 0.5) / (coalesce(t.df, 0) + 0.5)))
            FROM unnest(%s::text[]) AS w(word)
            CROSS JOIN LATERAL unnest(to_tsvector({SCHEMA}.ts_config('{lang}'), w.word)) AS u
            JOIN {SCHEMA}.lang_stats s ON s.lang = '{lang}'
            LEFT JOIN {SCHEMA}.terms t ON t.lang = '{lang}' AND t.term = u.lexeme
            GROUP BY w.word""", [list(words)])
        out.update({str(w): float(v) for w, v in rows})
        return out

    def _lookup(self, cache: dict[int, Any], ids: Sequence[int], fetch: Any, limit: int) -> dict[int, Any]:
        """What `cache` (shared by the views of one generation) has of `ids`, the rest from `fetch(missing)`."""
        got: dict[int, Any] = {}
        missing = []
        for i in dict.fromkeys(ids):
            row = cache.get(i)
            if row is None:
                missing.append(i)
            else:
                got[i] = row
        if missing:
            fetched = fetch(sorted(missing))
            got.update(fetched)
            if len(cache) + len(fetched) > limit:
                cache.clear()
            cache.update(fetched)
        return got

    def meta(self, ids: np.ndarray) -> Meta:
        ids = np.asarray(ids, dtype=np.int64)
        found = self._lookup(self._meta, [int(i) for i in ids], lambda missing: {int(r[0]): r[1:] for r in self._sql(
            "SELECT id, lang, doc_id, question_list, prev, next, partner, length, heading "
            f"FROM {SCHEMA}.passages WHERE id = ANY(%s)", [missing])}, META_ROWS)
        rows = [found[int(i)] for i in ids]

        def col(j: int, dtype: Any) -> np.ndarray:
            return np.array([r[j] for r in rows], dtype=dtype) if rows else np.empty(0, dtype=dtype)

        return Meta(ids, col(0, object), col(1, object), col(2, np.float32), col(3, np.int64), col(4, np.int64),
                    col(5, np.int64), col(6, np.int32), col(7, object))

    def _rows(self, where: str, params: Sequence[Any]) -> list[ChunkRow]:
        return [ChunkRow(*r) for r in self._sql(
            'SELECT p.id, p.chunk_id, p.doc_id, p.text, p.page, p.page_end, p.start, p."end", p.heading, p.lang, '
            f"d.path, d.title FROM {SCHEMA}.passages p JOIN {SCHEMA}.documents d ON d.doc_id = p.doc_id {where}",
            params)]

    def chunks(self, ids: Sequence[int] | np.ndarray) -> list[ChunkRow]:
        wanted = [int(i) for i in ids]
        if not wanted:
            return []
        found = self._lookup(self._chunks, wanted, lambda missing: {
            c.id: c for c in self._rows("WHERE p.id = ANY(%s)", [missing])}, CHUNK_ROWS)
        return [found[i] for i in wanted if i in found]

    def documents(self) -> dict[str, DocInfo]:
        def load() -> dict[str, DocInfo]:
            rows = self._sql("SELECT doc_id, path, abspath, sha256, title, page_count, languages, size, chunks, "
                             f"ingested_at FROM {SCHEMA}.documents ORDER BY path")
            return {r[0]: DocInfo(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6]), r[7], r[8], r[9]) for r in rows}

        return dict(self._cached("documents", load))

    def page_text(self, doc_id: str, number: int) -> str | None:
        rows = self._sql(f"SELECT text FROM {SCHEMA}.pages WHERE doc_id = %s AND number = %s", [doc_id, number])
        return str(rows[0][0]) if rows else None

    def _stream(self, query: str) -> Iterator[tuple[Any, ...]]:
        if self.conn is None:
            raise IndexOpenError(f"{self.backend.location}: this view of the index was closed")
        with self.conn.cursor(name=f"arrival_scan_{id(self)}") as cur:
            cur.itersize = 2000
            cur.execute(query)
            yield from cur

    def iter_chunks(self) -> Iterator[ChunkRow]:
        for r in self._stream(
                'SELECT p.id, p.chunk_id, p.doc_id, p.text, p.page, p.page_end, p.start, p."end", p.heading, '
                f"p.lang, d.path, d.title FROM {SCHEMA}.passages p JOIN {SCHEMA}.documents d USING (doc_id) "
                "ORDER BY p.id"):
            yield ChunkRow(*r)

    def iter_pages(self) -> Iterator[tuple[str, int, str]]:
        for doc_id, number, text in self._stream(
                f"SELECT doc_id, number, text FROM {SCHEMA}.pages ORDER BY doc_id, number"):
            yield str(doc_id), int(number), str(text)

    @property
    def lexicon(self) -> Lexicon:
        def load() -> Lexicon:
            return read_lexicon(self._sql, as_array)  # with the translation table stored at ingest

        return self._cached("lexicon", load)  # type: ignore[no-any-return]

    def knows(self, word: str) -> bool:
        folded = fold(word)
        if not folded:
            return False
        def like(prefix: str) -> str:
            return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        exists = f"EXISTS (SELECT 1 FROM {SCHEMA}.surface WHERE word LIKE %s)"
        rows = self._sql(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.surface WHERE word = %s) "
                         f"OR (%s AND {exists}) OR (%s AND {exists})",
                         [folded, len(folded) >= 5, like(folded[:5]), folded.isdigit(), like(folded)])
        return bool(rows[0][0])  # a name by its first five letters; a year glued to a note marker

    def stats(self) -> dict[str, Any]:
        langs = dict(self._sql(f"SELECT lang, passages FROM {SCHEMA}.lang_stats WHERE passages > 0 "
                               "ORDER BY passages DESC, lang"))
        size = self._sql("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                         [SCHEMA])[0][0]
        version = self._sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        docs = self.documents()
        return {
            "documents": len(docs),
            "pages": sum(d.page_count for d in docs.values()),
            "chunks": self.count(),
            "languages": {str(k): int(v) for k, v in langs.items()},
            "embedder": self.state["embedder"],
            "second_embedder": self.state["e5_embedder"] or None,
            "dim": self.state["dim"],
            "vector_index": f"hnsw (pgvector {version[0][0] if version else '?'})",
            "chunk_size": self.state["chunk_size"],
            "chunk_overlap": self.state["chunk_overlap"],
            "index_bytes": int(size),
            "generation": self.generation,
            "backend": "postgres",
        }
