"""The one writer of a PostgreSQL index: one transaction from the first change to `commit`.

`add` writes a document at once (documents, pages, passages with their text search vectors, vectors per space)
inside the open transaction, so a large ingest streams to the server instead of collecting in memory; nobody sees
any of it before `commit`. `commit` brings the derived data up to date, incrementally, then commits:

- BM25 statistics: document frequencies of the new passages' lexemes (`terms`) and each language's passage count
  and total length (`lang_stats`); removed passages were subtracted when they were removed;
- translation partners (`index.derived.partners`, the same rule): for the new passages, and for the old passages
  that a new or removed passage could displace (other-language passages within the translation cosine of it),
  from their three nearest other-language passages found by HNSW;
- the lexicon: word counts per language, and a vector for every word of the vocabulary that has none yet;
- the generation (+1), which tells every server that its cached documents and lexicon are stale.

Neighbours and the question-list flag depend on the passage's own document only and are written with it.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arrival.errors import IndexOpenError
from arrival.index.derived import TRANSLATION_COSINE, figures, neighbours, question_list
from arrival.index.keyword import fold, stopwords
from arrival.index.lexicon import MAX_WORDS, words_of
from arrival.index.postgres_lexicon import read_lexicon, read_rows, update_table, vocabulary_changed
from arrival.index.postgres_schema import (
    EXTENSIONS,
    FORMAT_VERSION,
    SCHEMA,
    language_index_sql,
    register_vector,
    safe_lang,
    session_settings,
    tables_sql,
)
from arrival.index.postgres_view import K1, REBUILD_HINT, B, as_array, read_state
from arrival.index.view import DENSE, E5, DocInfo

if TYPE_CHECKING:
    from arrival.index.embed import Embedder
    from arrival.index.postgres import PostgresBackend
    from arrival.index.store import NewDocument

log = logging.getLogger(__name__)

LEXICON_LANGUAGES = ("en", "fr")  # as index.lexicon.build_lexicon
REACH = 20  # other-language passages looked at around a new or removed passage for partners it may displace
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # as index.snapshot.surface_words


def _surface(texts: Sequence[str]) -> set[str]:
    return {fold(w) for t in texts for w in _WORD.findall(t)}


class PgWriter:
    """The PostgreSQL `Writer` (see the module doc); the backend holds its connection and advisory lock."""

    def __init__(self, backend: PostgresBackend, conn: Any, embedders: dict[str, Embedder], chunk_size: int,
                 chunk_overlap: int, rebuild: bool) -> None:
        self.backend = backend
        self.conn = conn
        self.embedders = embedders
        self.spaces = [sp for sp in (DENSE, E5) if sp in embedders]
        self.dims = {sp: embedders[sp].dim for sp in self.spaces}
        self.new_ids: list[int] = []
        self.displaced: set[int] = set()  # old passages whose partner may change
        self.changed = rebuild
        self.lexicon_counts: dict[tuple[str, str], int] = Counter()
        self.surface: dict[str, int] = Counter()
        have = {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}
        if not {"vector", "unaccent"} <= have:
            conn.execute(EXTENSIONS)
        conn.commit()
        try:
            state = read_state(conn, backend.location)
            old_format = False
        except IndexOpenError:  # an index of another format: only --rebuild may replace it
            if not rebuild:
                raise
            conn.rollback()
            state, old_format = None, True
        self.changed = rebuild or state is None
        if state is not None and not rebuild:
            self._check(state, chunk_size, chunk_overlap)
        if state is None or (rebuild and self._recipe(state) != self._wanted()):
            if state is not None or old_format:  # another embedder or format: new tables (readers wait for this
                conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")  # transaction)
            conn.execute(tables_sql(self.dims))
            conn.execute(f"INSERT INTO {SCHEMA}.state VALUES (true, %s, 0, %s, %s, %s, %s, %s, %s, 0, 0, %s, %s)",
                         (FORMAT_VERSION, embedders[DENSE].id, self.dims[DENSE],
                          embedders[E5].id if E5 in embedders else "", self.dims.get(E5, 0), chunk_size,
                          chunk_overlap, time.time(), time.time()))
        elif rebuild:  # same recipe: delete every row; readers keep the old state until the commit
            for table in ("documents", "terms", "postings", "lang_stats", "lexicon", "surface"):
                conn.execute(f"DELETE FROM {SCHEMA}.{table}")
        conn.execute(f"UPDATE {SCHEMA}.state SET chunk_size = %s, chunk_overlap = %s",
                     (chunk_size, chunk_overlap))
        register_vector(conn)
        session_settings(conn)
        self.chunking = (chunk_size, chunk_overlap)
        self._documents = self._read_documents()

    def _wanted(self) -> tuple[str, int, str, int]:
        e = self.embedders
        return (e[DENSE].id, self.dims[DENSE], e[E5].id if E5 in e else "", self.dims.get(E5, 0))

    @staticmethod
    def _recipe(state: dict[str, Any]) -> tuple[str, int, str, int]:
        return (state["embedder"], state["dim"], state["e5_embedder"], state["e5_dim"])

    def _check(self, state: dict[str, Any], chunk_size: int, chunk_overlap: int) -> None:
        where = self.backend.location
        if state["embedder"] != self.embedders[DENSE].id:
            raise IndexOpenError(
                f"{where}: index was built with embedder '{state['embedder']}', not '{self.embedders[DENSE].id}': "
                f"use --model {state['embedder']}, or rebuild with 'arrival ingest --rebuild --model "
                f"{self.embedders[DENSE].id} PATH...'")
        if state["passages"] and (state["chunk_size"], state["chunk_overlap"]) != (chunk_size, chunk_overlap):
            raise IndexOpenError(f"{where}: index was built with chunk size {state['chunk_size']}/overlap "
                                 f"{state['chunk_overlap']}; rebuild with 'arrival ingest --rebuild PATH...' to "
                                 "change it")
        have = sorted([DENSE] + ([E5] if state["e5_embedder"] else []))
        if have != sorted(self.spaces):
            raise IndexOpenError(f"{where}: the index has vector spaces {have}, these settings embed "
                                 f"{sorted(self.spaces)}; {REBUILD_HINT}")

    def _read_documents(self) -> dict[str, DocInfo]:
        rows = self.conn.execute("SELECT doc_id, path, abspath, sha256, title, page_count, languages, size, chunks, "
                                 f"ingested_at FROM {SCHEMA}.documents ORDER BY path").fetchall()
        return {r[0]: DocInfo(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6]), r[7], r[8], r[9]) for r in rows}

    # -- the Writer contract -------------------------------------------------------------------------------
    def documents(self) -> dict[str, DocInfo]:
        return dict(self._documents)

    def add(self, new: NewDocument) -> None:
        doc, chunks, conn = new.doc, new.chunks, self.conn
        conn.execute(f"INSERT INTO {SCHEMA}.documents VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                     (doc.doc_id, doc.path, str(Path(doc.path).resolve()), doc.sha256, doc.title, doc.page_count,
                      list(new.langs), Path(doc.path).stat().st_size, len(chunks), time.time()))
        with conn.cursor().copy(f"COPY {SCHEMA}.pages (doc_id, number, text) FROM STDIN") as copy:
            for p in doc.pages:
                copy.write_row((doc.doc_id, p.number, p.text))
        if not chunks:
            return
        ids = [r[0] for r in conn.execute(f"SELECT nextval('{SCHEMA}.passage_ids') FROM generate_series(1, %s)",
                                          (len(chunks),)).fetchall()]
        prev, nxt = neighbours([(c.doc_id, c.page, c.start, i) for i, c in enumerate(chunks)])
        link = [-1, *ids]  # local position -> id (-1 stays -1)
        conn.execute(f"""
            INSERT INTO {SCHEMA}.passages (id, chunk_id, doc_id, text, page, page_end, start, "end", heading, lang,
                                           question_list, prev, next, length, tsv, n_terms)
            SELECT r.id, r.chunk_id, %s, r.text, r.page, r.page_end, r.start, r.stop, r.heading, r.lang, r.ql,
                   r.prev, r.next, length(r.text), t.tsv,
                   (SELECT coalesce(sum(array_length(positions, 1)), 0) FROM unnest(t.tsv))
            FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::int[], %s::int[], %s::int[],
                        %s::text[], %s::text[], %s::real[], %s::bigint[], %s::bigint[])
                 AS r(id, chunk_id, text, page, page_end, start, stop, heading, lang, ql, prev, next)
            CROSS JOIN LATERAL (SELECT to_tsvector({SCHEMA}.ts_config(r.lang), r.text) AS tsv) t""",
                     (doc.doc_id, ids, [c.chunk_id for c in chunks], [c.text for c in chunks],
                      [c.page for c in chunks], [c.page_end for c in chunks], [c.start for c in chunks],
                      [c.end for c in chunks], [c.heading for c in chunks], [c.lang for c in chunks],
                      [question_list(c.text) for c in chunks], [link[int(p) + 1] for p in prev],
                      [link[int(n) + 1] for n in nxt]))
        for sp in self.spaces:
            vectors = np.asarray(new.vectors[sp], dtype=np.float32).reshape(len(chunks), self.dims[sp])
            with conn.cursor().copy(f"COPY {SCHEMA}.vectors_{sp} (id, lang, doc_id, embedding) FROM STDIN "
                                    "WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "text", "vector"])
                for i, c, v in zip(ids, chunks, vectors, strict=True):
                    copy.write_row((i, c.lang, doc.doc_id, v))
        self.new_ids.extend(ids)
        self._count([c.text for c in chunks], [c.lang for c in chunks], +1)

    def remove(self, doc_id: str) -> None:
        conn = self.conn
        rows = conn.execute(f"SELECT text, lang FROM {SCHEMA}.passages WHERE doc_id = %s", (doc_id,)).fetchall()
        conn.execute(f"""DELETE FROM {SCHEMA}.postings po USING {SCHEMA}.passages p, unnest(p.tsv) u
                         WHERE p.doc_id = %s AND po.lang = p.lang AND po.term = u.lexeme AND po.id = p.id""",
                     (doc_id,))
        self._count([r[0] for r in rows], [r[1] for r in rows], -1)
        self._bm25_statistics(f"doc_id = {_literal(conn, doc_id)}", -1)
        self.displaced |= self._near(f"a.doc_id = {_literal(conn, doc_id)}", f"b.doc_id <> {_literal(conn, doc_id)}")
        self.displaced |= {r[0] for r in conn.execute(
            f"SELECT id FROM {SCHEMA}.passages WHERE partner >= 0 AND partner IN "
            f"(SELECT id FROM {SCHEMA}.passages WHERE doc_id = %s) AND doc_id <> %s", (doc_id, doc_id))}
        conn.execute(f"DELETE FROM {SCHEMA}.documents WHERE doc_id = %s", (doc_id,))
        self.changed = True

    def move(self, doc_id: str, path: str) -> None:
        self.conn.execute(f"UPDATE {SCHEMA}.documents SET path = %s, abspath = %s WHERE doc_id = %s",
                          (path, path, doc_id))
        self.changed = True

    def commit(self) -> None:
        conn = self.conn
        new = self.new_ids
        if not (self.changed or new):
            conn.rollback()  # nothing to write: the generation stays
            return
        if new:
            self._bm25_statistics(f"id = ANY({_literal(conn, new)}::bigint[])", +1)
            self._postings(new)
            if len(new) < conn.execute(f"SELECT count(*) FROM {SCHEMA}.passages").fetchone()[0]:
                self.displaced |= self._near(f"a.id = ANY({_literal(conn, new)}::bigint[])", "true")
        self._partners(sorted(set(new) | self.displaced))
        self._lexicon()
        for lang, in conn.execute(f"SELECT lang FROM {SCHEMA}.lang_stats WHERE passages > 0").fetchall():
            if safe_lang(lang):
                conn.execute(language_index_sql(lang))
        conn.execute(f"""UPDATE {SCHEMA}.state SET generation = generation + 1, updated = %s,
                         passages = (SELECT count(*) FROM {SCHEMA}.passages),
                         documents = (SELECT count(*) FROM {SCHEMA}.documents)""", (time.time(),))
        conn.commit()
        self._refresh_statistics()

    def _refresh_statistics(self) -> None:
        """The planner's statistics and the visibility map of the tables an ingest changed, right after its commit
        (autovacuum would come later): without them a keyword search on freshly written postings took a bitmap
        heap scan of every posting of each lexeme (54 ms at 20k passages) instead of an index-only scan of the
        best ones (9 ms). HNSW-indexed tables are only analysed."""
        conn = self.conn
        conn.autocommit = True
        try:
            conn.execute(f"VACUUM (ANALYZE) {SCHEMA}.postings, {SCHEMA}.passages, {SCHEMA}.terms")
            conn.execute("ANALYZE " + ", ".join(f"{SCHEMA}.vectors_{sp}" for sp in self.spaces))
        except Exception as exc:  # the ingest is committed; only the next searches' plans may suffer
            log.warning("statistics not refreshed after the ingest: %s", str(exc).strip().splitlines()[0])
        finally:
            conn.autocommit = False

    # -- derived data --------------------------------------------------------------------------------------
    def _count(self, texts: Sequence[str], langs: Sequence[str], sign: int) -> None:
        """Lexicon word counts (occurrences per language) and surface words (documents holding each)."""
        for text, lang in zip(texts, langs, strict=True):
            if lang in LEXICON_LANGUAGES:
                stop = stopwords(lang)
                for w, n in Counter(words_of(text)).items():
                    if fold(w) not in stop:
                        self.lexicon_counts[(lang, w)] += sign * n
        for w in _surface(texts):
            self.surface[w] += sign

    def _bm25_statistics(self, where: str, sign: int) -> None:
        conn = self.conn
        conn.execute(f"""
            INSERT INTO {SCHEMA}.terms (lang, term, df)
            SELECT p.lang, u.lexeme, {sign} * count(*) FROM {SCHEMA}.passages p, unnest(p.tsv) u
            WHERE p.{where} GROUP BY 1, 2
            ON CONFLICT (lang, term) DO UPDATE SET df = {SCHEMA}.terms.df + EXCLUDED.df""")
        conn.execute(f"""
            INSERT INTO {SCHEMA}.lang_stats (lang, passages, terms)
            SELECT lang, {sign} * count(*), {sign} * sum(n_terms) FROM {SCHEMA}.passages WHERE {where} GROUP BY 1
            ON CONFLICT (lang) DO UPDATE SET passages = {SCHEMA}.lang_stats.passages + EXCLUDED.passages,
                                             terms = {SCHEMA}.lang_stats.terms + EXCLUDED.terms""")
        if sign < 0:
            conn.execute(f"DELETE FROM {SCHEMA}.terms WHERE df <= 0")

    def _postings(self, ids: list[int]) -> None:
        """The new passages' postings, weighted with the mean length of their language as it now stands."""
        self.conn.execute(f"""
            INSERT INTO {SCHEMA}.postings (lang, term, id, impact)
            SELECT p.lang, u.lexeme, p.id, (tf / (tf + {K1} * (1 - {B} + {B} * p.n_terms
                                                       / greatest(s.terms::float8 / greatest(s.passages, 1), 1))))
            FROM {SCHEMA}.passages p JOIN {SCHEMA}.lang_stats s ON s.lang = p.lang
            CROSS JOIN LATERAL (SELECT lexeme, array_length(positions, 1)::float8 AS tf FROM unnest(p.tsv)) u
            WHERE p.id = ANY(%s)""", (ids,))

    def _near(self, which: str, others: str) -> set[int]:
        """Other-language passages (matching `others`) within the translation cosine of a passage matching
        `which`, among its REACH nearest."""
        rows = self.conn.execute(f"""
            SELECT DISTINCT n.id FROM {SCHEMA}.vectors_dense a CROSS JOIN LATERAL (
                SELECT b.id, b.embedding <#> a.embedding AS d FROM {SCHEMA}.vectors_dense b
                WHERE b.lang <> a.lang AND {others} ORDER BY d LIMIT {REACH}) n
            WHERE {which} AND -n.d >= %s""", (TRANSLATION_COSINE,)).fetchall()
        return {int(r[0]) for r in rows}

    def _partners(self, ids: list[int]) -> None:
        """`index.derived.partners` for these passages: the first of its three nearest other-language passages, in
        order while the cosine stays at TRANSLATION_COSINE or above, that states every number it states."""
        if not ids:
            return
        conn = self.conn
        near = conn.execute(f"""
            SELECT a.id, n.id, -n.d FROM {SCHEMA}.vectors_dense a CROSS JOIN LATERAL (
                SELECT b.id, b.embedding <#> a.embedding AS d FROM {SCHEMA}.vectors_dense b
                WHERE b.lang <> a.lang ORDER BY d LIMIT 3) n
            WHERE a.id = ANY(%s) ORDER BY a.id, n.d, n.id""", (ids,)).fetchall()
        wanted = sorted({int(r[0]) for r in near} | {int(r[1]) for r in near})
        figs = {int(i): figures(t) for i, t in conn.execute(
            f"SELECT id, text FROM {SCHEMA}.passages WHERE id = ANY(%s)", (wanted,)).fetchall()}
        partner = dict.fromkeys(ids, -1)
        done: set[int] = set()
        for a, b, sim in near:
            if a in done:
                continue
            if sim < TRANSLATION_COSINE:
                done.add(a)
                continue
            if figs[a] <= figs[b]:
                partner[a] = int(b)
                done.add(a)
        conn.execute(f"UPDATE {SCHEMA}.passages p SET partner = u.partner FROM unnest(%s::bigint[], %s::bigint[]) "
                     "AS u(id, partner) WHERE p.id = u.id AND p.partner <> u.partner",
                     (list(partner), list(partner.values())))

    def _lexicon(self) -> None:
        conn = self.conn
        counts = [(lang, w, n) for (lang, w), n in self.lexicon_counts.items() if n]
        if counts:
            conn.execute(f"""
                INSERT INTO {SCHEMA}.lexicon (lang, word, n)
                SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])
                ON CONFLICT (lang, word) DO UPDATE SET n = {SCHEMA}.lexicon.n + EXCLUDED.n""",
                         ([c[0] for c in counts], [c[1] for c in counts], [c[2] for c in counts]))
            conn.execute(f"DELETE FROM {SCHEMA}.lexicon WHERE n <= 0")
        surface = [(w, n) for w, n in self.surface.items() if n]
        if surface:
            conn.execute(f"""
                INSERT INTO {SCHEMA}.surface (word, docs) SELECT * FROM unnest(%s::text[], %s::int[])
                ON CONFLICT (word) DO UPDATE SET docs = {SCHEMA}.surface.docs + EXCLUDED.docs""",
                         ([s[0] for s in surface], [s[1] for s in surface]))
            conn.execute(f"DELETE FROM {SCHEMA}.surface WHERE docs <= 0")
        missing = conn.execute(f"""
            SELECT lang, word FROM (
                SELECT lang, word, vector, row_number() OVER (PARTITION BY lang ORDER BY n DESC, word) AS r
                FROM {SCHEMA}.lexicon) x
            WHERE r <= {MAX_WORDS} AND vector IS NULL""").fetchall()
        if missing:
            vectors = self.embedders[DENSE].embed_passages([w for _, w in missing])
            with conn.cursor() as cur:
                cur.execute("CREATE TEMP TABLE lexicon_new (lang text, word text, vector vector) ON COMMIT DROP")
                with cur.copy("COPY lexicon_new FROM STDIN WITH (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "text", "vector"])
                    for (lang, w), v in zip(missing, vectors, strict=True):
                        copy.write_row((lang, w, np.asarray(v, dtype=np.float32)))
                cur.execute(f"UPDATE {SCHEMA}.lexicon l SET vector = n.vector FROM lexicon_new n "
                            "WHERE l.lang = n.lang AND l.word = n.word")
        # the translation table of the new vocabulary, stored so that no server computes it (index.postgres_lexicon)
        rows = read_rows(self._sql)
        if vocabulary_changed(self._sql, rows):  # else the stored table is the new vocabulary's already
            update_table(conn, read_lexicon(self._sql, as_array, table=False), rows)

    def _sql(self, query: str, params: Sequence[Any] = (), binary: bool = False) -> list[Any]:
        with self.conn.cursor(binary=binary) as cur:
            cur.execute(query, params)
            return list(cur.fetchall())


def _literal(conn: Any, value: Any) -> str:
    """A value as an SQL literal (for the statements assembled from a WHERE clause)."""
    from psycopg import sql

    return str(sql.Literal(value).as_string(conn))
