"""The PostgreSQL schema of an arrival index (pgvector), and what every connection to it needs.

Everything lives in one Postgres schema, ``arrival``, of the database ARRIVAL_DATABASE_URL names::

    state         one row: format version, generation (+1 at every committed ingest), embedders and their
                  dimensions, chunking, passage count
    documents     one row per indexed file (a document's identity is its resolved absolute path)
    pages         the cleaned text of every page (quotes are verified against it)
    passages      int8 id (from a sequence, stable for the passage's life), chunk_id (content hash), provenance,
                  language, the derived columns the ranker reads (question-list flag, neighbours, translation
                  partner, length, heading), and `tsv`: the text analysed by the text search configuration of its
                  language (`arrival.english`, `arrival.french`, ...: the stock Snowball configurations with
                  accents folded by `unaccent`, as arrival's own analyzer folds them), with `n_terms` its length
    vectors_dense one table per vector space: vector(512) for USE multilingual, vectors_e5 vector(384) for e5,
    vectors_e5    with the passage's language and document beside the vector so the filters run inside the HNSW
                  scan (iterative scans, pgvector >= 0.8); HNSW index with inner-product ops (unit vectors)
    terms         per-language document frequency of every lexeme; lang_stats: passages and lexemes per
    lang_stats    language (BM25 statistics of each language's passages, like one bm25s index per language)
    postings      (language, lexeme, passage) with the lexeme's BM25 weight in the passage before idf (its
                  "impact", computed with the language's mean length when the passage was written), indexed by
                  impact: a keyword search reads the best passages of each of its lexemes, not every match
    lexicon       the corpus's bilingual word table: per-language word counts, a vector for the vocabulary
    lexicon_best  each vocabulary word's best other-language words, stored at ingest (index.postgres_lexicon)
    surface       every folded word of the passages with the number of documents holding it (`View.knows`)

Full-text matching uses one partial GIN index on `tsv` per language (created when a language first appears).
"""

from __future__ import annotations

import hashlib
from typing import Any

FORMAT_VERSION = 2  # 2: postings
SCHEMA = "arrival"
LOCK_KEY = int.from_bytes(hashlib.sha256(b"arrival ingest").digest()[:8], "big", signed=True)
# arrival's stemmed languages -> PostgreSQL's Snowball configurations; any other language is analysed by `simple`
CONFIGS = {"en": "english", "fr": "french", "es": "spanish", "de": "german", "it": "italian", "pt": "portuguese",
           "nl": "dutch"}
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64
EF_SEARCH = 200  # candidates kept by an HNSW scan; the retriever asks for 100 per channel

EXTENSIONS = "CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS unaccent;"


def _configs_sql() -> str:
    parts = []
    for name in (*CONFIGS.values(), "simple"):
        dict_ = f"{name}_stem" if name != "simple" else "simple"
        parts.append(
            f"CREATE TEXT SEARCH CONFIGURATION {SCHEMA}.{name} (COPY = pg_catalog.{name});"
            f"ALTER TEXT SEARCH CONFIGURATION {SCHEMA}.{name} ALTER MAPPING FOR hword, hword_part, word, "
            f"asciiword, asciihword, hword_asciipart WITH unaccent, {dict_};")
    cases = " ".join(f"WHEN '{code}' THEN '{SCHEMA}.{name}'::regconfig" for code, name in CONFIGS.items())
    parts.append(
        f"CREATE FUNCTION {SCHEMA}.ts_config(lang text) RETURNS regconfig LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        f"AS $$ SELECT CASE lang {cases} ELSE '{SCHEMA}.simple'::regconfig END $$;")
    # an OR query of lexemes (already analysed), for the GIN match; quotes and backslashes escaped as tsquery wants
    parts.append(
        f"CREATE FUNCTION {SCHEMA}.any_of(words text[]) RETURNS tsquery LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ "
        "SELECT coalesce(string_agg('''' || replace(replace(w, '\\', '\\\\'), '''', '''''') || '''', ' | '), '')"
        "::tsquery FROM unnest(words) AS w $$;")
    return "\n".join(parts)


def tables_sql(dims: dict[str, int]) -> str:
    """DDL of a fresh index whose vector spaces have these dimensions ({"dense": 512, "e5": 384})."""
    vector_tables = "\n".join(f"""
CREATE TABLE {SCHEMA}.vectors_{space} (
    id bigint PRIMARY KEY REFERENCES {SCHEMA}.passages ON DELETE CASCADE,
    lang text NOT NULL, doc_id text NOT NULL, embedding vector({dim}) NOT NULL);
ALTER TABLE {SCHEMA}.vectors_{space} ALTER COLUMN embedding SET STORAGE PLAIN;
CREATE INDEX vectors_{space}_hnsw ON {SCHEMA}.vectors_{space} USING hnsw (embedding vector_ip_ops)
    WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});
CREATE INDEX vectors_{space}_doc ON {SCHEMA}.vectors_{space} (doc_id);""" for space, dim in dims.items())
    return f"""
CREATE SCHEMA {SCHEMA};
{_configs_sql()}
CREATE TABLE {SCHEMA}.state (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), format_version int NOT NULL, generation bigint NOT NULL,
    embedder text NOT NULL, dim int NOT NULL, e5_embedder text NOT NULL, e5_dim int NOT NULL,
    chunk_size int NOT NULL, chunk_overlap int NOT NULL, passages bigint NOT NULL, documents bigint NOT NULL,
    created double precision NOT NULL, updated double precision NOT NULL);
CREATE TABLE {SCHEMA}.documents (
    doc_id text PRIMARY KEY, path text UNIQUE NOT NULL, abspath text NOT NULL, sha256 text NOT NULL,
    title text NOT NULL, page_count int NOT NULL, languages text[] NOT NULL, size bigint NOT NULL,
    chunks int NOT NULL, ingested_at double precision NOT NULL);
CREATE TABLE {SCHEMA}.pages (
    doc_id text NOT NULL REFERENCES {SCHEMA}.documents ON DELETE CASCADE, number int NOT NULL, text text NOT NULL,
    PRIMARY KEY (doc_id, number));
CREATE SEQUENCE {SCHEMA}.passage_ids;
CREATE TABLE {SCHEMA}.passages (
    id bigint PRIMARY KEY, chunk_id text UNIQUE NOT NULL,
    doc_id text NOT NULL REFERENCES {SCHEMA}.documents ON DELETE CASCADE,
    text text NOT NULL, page int NOT NULL, page_end int NOT NULL, start int NOT NULL, "end" int NOT NULL,
    heading text NOT NULL, lang text NOT NULL, question_list real NOT NULL, prev bigint NOT NULL,
    next bigint NOT NULL, partner bigint NOT NULL DEFAULT -1, length int NOT NULL, tsv tsvector NOT NULL,
    n_terms int NOT NULL);
CREATE INDEX passages_doc ON {SCHEMA}.passages (doc_id);
CREATE INDEX passages_partner ON {SCHEMA}.passages (partner) WHERE partner >= 0;
{vector_tables}
CREATE TABLE {SCHEMA}.terms (lang text NOT NULL, term text NOT NULL, df int NOT NULL, PRIMARY KEY (lang, term));
CREATE TABLE {SCHEMA}.postings (lang text NOT NULL, term text NOT NULL, id bigint NOT NULL, impact real NOT NULL,
    PRIMARY KEY (lang, term, id));
CREATE INDEX postings_impact ON {SCHEMA}.postings (lang, term, impact DESC, id);
CREATE TABLE {SCHEMA}.lang_stats (lang text PRIMARY KEY, passages bigint NOT NULL, terms bigint NOT NULL);
CREATE TABLE {SCHEMA}.lexicon (
    lang text NOT NULL, word text NOT NULL, n bigint NOT NULL, vector vector({dims['dense']}),
    PRIMARY KEY (lang, word));
CREATE INDEX lexicon_rank ON {SCHEMA}.lexicon (lang, n DESC, word);
CREATE TABLE {SCHEMA}.surface (word text PRIMARY KEY, docs int NOT NULL);
CREATE INDEX surface_prefix ON {SCHEMA}.surface (word text_pattern_ops);
"""


def language_index_sql(lang: str) -> str:
    """The partial GIN index of one language's passages (`lang` is checked by the caller: [a-z]{2,3})."""
    return (f"CREATE INDEX IF NOT EXISTS passages_tsv_{lang} ON {SCHEMA}.passages USING gin (tsv) "
            f"WHERE lang = '{lang}'")


def safe_lang(lang: str) -> bool:
    """Language codes are written into SQL as literals (so the planner can use the partial indexes)."""
    return 2 <= len(lang) <= 3 and lang.isascii() and lang.isalpha() and lang.islower()


def session_settings(conn: Any) -> None:
    """Search settings of a connection: a wide enough HNSW candidate list, and iterative scans so that a language
    or document filter inside the vector search never leaves it with fewer rows than asked (pgvector >= 0.8)."""
    conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    conn.execute("SET jit = off")  # short queries: compiling them costs more than it saves


def register_vector(conn: Any) -> bool:
    """pgvector's adapters (numpy arrays <-> vector), when the extension exists in this database."""
    from pgvector.psycopg import register_vector as register

    try:
        register(conn)
    except Exception:  # psycopg.ProgrammingError: the vector type does not exist yet
        if not conn.autocommit:
            conn.rollback()
        return False
    return True
