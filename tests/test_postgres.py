"""The PostgreSQL backend on a real PostgreSQL 18 + pgvector (tests/conftest.py `postgres_server`), hash embedder:
the same passages and results as the embedded index, snapshot isolation, transactional and serialised ingests,
incremental derived data equal to a fresh build."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from arrival.errors import IndexOpenError, LockedError
from arrival.index.backend import open_backend
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.postgres import PostgresBackend, close_pools
from arrival.index.retrieve import Retriever
from arrival.index.view import DENSE
from arrival.settings import load_settings

from .conftest import DEMO
from .pdfgen import good_pdf

EMB = HashEmbedder(256)
QUERIES = ["guichet unique Lisbonne services migrants", "coordination between cities and states",
           "réseaux de villes migration", "Malaga pièce d'identité services"]


def _demo(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir(exist_ok=True)
    shutil.copy(DEMO, d / "gfmd.pdf")
    return d


def _ingest(settings, *paths, **kw):  # type: ignore[no-untyped-def]
    return Indexer(settings, EMB).ingest([Path(p) for p in paths], **kw)


def test_same_passages_and_dense_results_as_the_embedded_index(pg_settings, hash_settings, tmp_path):
    docs = _demo(tmp_path)
    for s in (pg_settings, hash_settings):
        assert [f.status for f in _ingest(s, docs).files] == ["indexed"]
    pg, emb = (Retriever.from_settings(s, EMB) for s in (pg_settings, hash_settings))
    with pg.pinned() as a, emb.pinned() as b:
        rows_a, rows_b = list(a.iter_chunks()), list(b.iter_chunks())
        assert [(c.chunk_id, c.text, c.page, c.start, c.lang, c.heading, c.source) for c in rows_a] == \
               [(c.chunk_id, c.text, c.page, c.start, c.lang, c.heading, c.source) for c in rows_b]
        assert a.count() == b.count() and a.languages == b.languages
        assert {k: v.chunks for k, v in a.documents().items()} == {k: v.chunks for k, v in b.documents().items()}
        assert list(a.iter_pages()) == list(b.iter_pages())
        ids_a = np.array([c.id for c in rows_a])
        ids_b = np.array([c.id for c in rows_b])
        np.testing.assert_allclose(a.vectors(DENSE, ids_a), b.vectors(DENSE, ids_b), atol=1e-6)
        ma, mb = a.meta(ids_a), b.meta(ids_b)  # derived data: same neighbours, partners and flags (by position)
        pos_a = {int(i): k for k, i in enumerate(ids_a)}
        pos_b = {int(i): k for k, i in enumerate(ids_b)}
        for col in ("prev", "next", "partner"):
            assert [pos_a.get(int(x), -1) for x in getattr(ma, col)] == [pos_b.get(int(x), -1)
                                                                         for x in getattr(mb, col)]
        for col in ("question_list", "length", "lang", "heading"):
            assert list(getattr(ma, col)) == list(getattr(mb, col))
        assert a.knows("Lisbonne") and b.knows("Lisbonne") and not a.knows("Zanzibarx")
        assert a.knows("lisbo") == b.knows("lisbo") and a.knows("2019") == b.knows("2019")
        assert set(a.lexicon.languages) == set(b.lexicon.languages)
        ta, tb = a.lexicon.table("fr", "en"), b.lexicon.table("fr", "en")
        assert set(ta) == set(tb)  # the same words translated; among equally close words (the hash embedder
        # ties often) the vocabulary's order picks, which is by first occurrence in the embedded index
        assert sum(set(ta[w]) == set(tb[w]) for w in ta) >= 0.9 * len(ta)
    shared = {"bm25": 0, "hybrid": 0}
    for q in QUERIES:
        dense = [(h.chunk_id, round(h.score, 4)) for h in pg.search(q, k=10, mode="dense")]
        assert dense == [(h.chunk_id, round(h.score, 4)) for h in emb.search(q, k=10, mode="dense")]
        # BM25 analysed by PostgreSQL's Snowball configurations: close to arrival's analyzer, not identical (the
        # real PDFs and the development questions on both backends: tests/test_postgres_real.py)
        for mode in shared:
            got = {h.chunk_id for h in pg.search(q, k=10, mode=mode)}
            shared[mode] += len(got & {h.chunk_id for h in emb.search(q, k=10, mode=mode)})
    assert shared["bm25"] >= 0.7 * 10 * len(QUERIES) and shared["hybrid"] >= 0.6 * 10 * len(QUERIES), shared


def test_keyword_channel_is_bm25_per_language(pg_settings, tmp_path):
    _ingest(pg_settings, _demo(tmp_path))
    with Retriever.from_settings(pg_settings, EMB).pinned() as view:
        ids, scores = view.keyword("villes migrants Lisbonne", "fr", 10)
        assert len(ids) == 10 and np.all(np.diff(scores) <= 0) and scores[0] > 0
        assert set(view.meta(ids).lang) == {"fr"}
        assert all("lisbonne" in c.text.lower() or "ville" in c.text.lower() or "migrant" in c.text.lower()
                   for c in view.chunks(ids))
        accents = view.keyword("integration des refugies", "fr", 5)[0]  # accents folded like arrival's analyzer
        assert len(accents) and list(accents) == list(view.keyword("intégration des réfugiés", "fr", 5)[0])
        doc = next(iter(view.documents()))
        assert len(view.keyword("villes", "fr", 5, docs=frozenset({doc}))[0]) == 5
        assert len(view.keyword("villes", "fr", 5, docs=frozenset({"nope"}))[0]) == 0
        assert len(view.keyword("villes", "xx", 5)[0]) == 0
        idf = view.idf(["villes", "Lisbonne", "zzzyx"], "fr")
        assert idf["zzzyx"] > idf["Lisbonne"] > idf["villes"] > 0
        ids, sims = view.dense(DENSE, EMB.embed_queries(["villes"])[0], 7, langs=("en",))
        assert len(ids) == 7 and set(view.meta(ids).lang) == {"en"} and np.all(np.diff(sims) <= 1e-6)
        # one round trip for every channel of a question gives what the channels give one by one
        q = EMB.embed_queries(["villes"])[0]
        asked = [("villes migrants Lisbonne", "fr"), ("cities migrants", "en"), ("villes", "xx")]
        for docs in (None, frozenset({doc})):
            dense, keyword = view.search_channels([(DENSE, q)], asked, 20, (), docs)
            alone = [view.dense(DENSE, q, 20, (), docs)], [view.keyword(t, g, 20, docs) for t, g in asked]
            for got, want in zip([*dense, *keyword], [*alone[0], *alone[1]], strict=True):
                assert list(got[0]) == list(want[0])
                np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
        assert len(keyword[0][0]) and not len(keyword[2][0])


def test_vector_cache_gives_all_or_the_missing_and_stays_within_its_budget():
    from arrival.index.postgres import VectorCache

    cache = VectorCache(budget=3 * 4 * 8)  # three vectors of 8 float32
    vec = {i: np.full(8, i, dtype=np.float32) for i in range(5)}
    assert cache.take(1.0, DENSE, [0, 1]) == (None, [0, 1])
    cache.put(1.0, DENSE, {0: vec[0], 1: vec[1], 2: vec[2]})
    got, missing = cache.take(1.0, DENSE, [2, 0, 2])
    assert missing == [] and got is not None and got[:, 0].tolist() == [2, 0, 2]
    assert cache.take(1.0, DENSE, [0, 3]) == (None, [3])
    assert cache.take(2.0, DENSE, [0]) == (None, [0]) and cache.take(1.0, "e5", [0]) == (None, [0])
    cache.put(1.0, DENSE, {3: vec[3]})  # over budget: emptied, then refilled with what came
    assert cache.size == 32 and cache.take(1.0, DENSE, [0]) == (None, [0])
    got, _ = cache.take(1.0, DENSE, [3])
    assert got is not None and got[0, 0] == 3


def test_a_rebuilt_index_is_never_answered_from_the_old_ones_cache(pg_settings, tmp_path):
    """The rows cached for generation N of an index are not served for generation N of a rebuilt one."""
    _ingest(pg_settings, _demo(tmp_path))
    retriever = Retriever.from_settings(pg_settings, EMB)
    with retriever.pinned() as view:
        before = {c.chunk_id for c in view.chunks([c.id for c in view.iter_chunks()])}
    other = tmp_path / "other"
    other.mkdir()
    good_pdf(other / "other.pdf", n_pages=2, tag="rebuilt")
    report = Indexer(pg_settings, HashEmbedder(128)).ingest([other], rebuild=True)  # another embedder: new schema
    assert [f.status for f in report.files] == ["indexed"]
    with open_backend(pg_settings, HashEmbedder(128).id).pinned() as view:
        rows = list(view.iter_chunks())
        assert rows and not {c.chunk_id for c in view.chunks([c.id for c in rows])} & before
        assert [c.text for c in view.chunks([c.id for c in rows])] == [c.text for c in rows]

def test_a_view_is_one_snapshot_and_a_reader_never_sees_half_a_document(pg_settings, tmp_path):
    _ingest(pg_settings, _demo(tmp_path))
    ret = Retriever.from_settings(pg_settings, EMB)
    extra = [good_pdf(tmp_path / f"x{i}.pdf", n_pages=4, tag=f"doc{i}") for i in range(4)]
    with ret.pinned() as old:
        before = (old.generation, old.count(), set(old.documents()))
        seen: list[tuple[int, int]] = []
        stop = threading.Event()
        errors: list[BaseException] = []

        def read() -> None:  # other requests, each on a view of its own, while the ingest writes
            while not stop.is_set():
                try:
                    with ret.pinned() as v:
                        docs = v.documents()
                        counts: dict[str, int] = {}
                        for c in v.iter_chunks():
                            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
                        assert counts == {k: d.chunks for k, d in docs.items()}  # every document whole
                        assert sum(counts.values()) == v.count()
                        seen.append((len(docs), v.count()))
                except BaseException as exc:
                    errors.append(exc)
                    return

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for path in extra:  # four commits
                _ingest(pg_settings, path)
        finally:
            stop.set()
            reader.join()
        assert not errors, errors
        assert {n for n, _ in seen} <= {1, 2, 3, 4, 5} and len(seen) >= 3
        assert (old.generation, old.count(), set(old.documents())) == before  # the pinned view did not move
        assert len(list(old.iter_chunks())) == before[1]
    with ret.pinned() as new:
        assert len(new.documents()) == 5 and new.generation != before[0]


def test_two_ingests_are_serialised_by_the_database(pg_settings, tmp_path):
    _ingest(pg_settings, _demo(tmp_path))
    backend = open_backend(pg_settings, EMB.id)
    with backend.writer({DENSE: EMB}, 800, 120):
        with pytest.raises(LockedError, match=r"another ingest is running \(arrival ingest pid"):
            _ingest(pg_settings, good_pdf(tmp_path / "a.pdf"))
        done: list[object] = []
        waiter = threading.Thread(target=lambda: done.append(_ingest(pg_settings, good_pdf(tmp_path / "b.pdf"),
                                                                     wait=30)))
        waiter.start()
        time.sleep(1.0)
        assert not done  # waits for the lock
    waiter.join(30)
    assert done and [f.status for f in done[0].files] == ["indexed"]  # type: ignore[attr-defined]


def test_nothing_is_visible_before_commit_and_an_abandoned_writer_leaves_nothing(pg_settings, tmp_path):
    _ingest(pg_settings, _demo(tmp_path))
    backend = open_backend(pg_settings, EMB.id)
    ret = Retriever.from_settings(pg_settings, EMB)
    before = ret.view().generation
    with pytest.raises(RuntimeError), backend.writer({DENSE: EMB}, 800, 120) as writer:
        from arrival.index.build import parse_file
        from arrival.index.store import NewDocument

        path = good_pdf(tmp_path / "late.pdf")
        doc, langs, chunks, _ = parse_file(path, "f" * 64, (200 << 20, 5000, 200000), (800, 120))
        writer.add(NewDocument(doc, langs, chunks, {DENSE: EMB.embed_passages([c.text for c in chunks])}))
        writer.remove(next(iter(writer.documents())))
        with ret.pinned() as view:  # another session sees none of it
            assert view.generation == before and len(view.documents()) == 1
        raise RuntimeError("the ingest dies before its commit")
    with ret.pinned() as view:
        assert view.generation == before and len(view.documents()) == 1
    with psycopg.connect(pg_settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM arrival.documents").fetchone()[0] == 1


def test_incremental_derived_data_equals_a_fresh_build(pg_settings, pg_url, tmp_path, postgres_server):
    """Documents added in three ingests, one removed: statistics, lexicon, surface words and partners are those of
    one ingest of the remaining documents."""
    from .conftest import drop_database, new_database

    d = _demo(tmp_path)
    a, b = good_pdf(tmp_path / "a.pdf", tag="alpha"), good_pdf(tmp_path / "b.pdf", n_pages=5, tag="bravo")
    _ingest(pg_settings, a)
    _ingest(pg_settings, d, b)
    assert [f.status for f in Indexer(pg_settings, EMB).remove([str(a)]).files] == ["removed"]
    name = "fresh_" + pg_url.rsplit("/", 1)[1].split("?")[0]
    fresh = load_settings(home=tmp_path / "fresh", model="hash:256",
                          database_url=new_database(postgres_server, name))
    try:
        _ingest(fresh, d, b)
        tables = {"terms": "lang, term, df", "lang_stats": "lang, passages, terms", "surface": "word, docs",
                  "lexicon": "lang, word, n, vector::text"}
        partners = ("SELECT p.chunk_id, q.chunk_id, p.prev >= 0, p.next >= 0 FROM arrival.passages p "
                    "LEFT JOIN arrival.passages q ON q.id = p.partner ORDER BY 1")
        with psycopg.connect(pg_settings.database_url) as x, psycopg.connect(fresh.database_url) as y:
            for table, cols in tables.items():
                query = f"SELECT {cols} FROM arrival.{table} ORDER BY 1, 2"
                assert x.execute(query).fetchall() == y.execute(query).fetchall(), table
            assert x.execute(partners).fetchall() == y.execute(partners).fetchall()
            # the translation table, updated word by word, is the one computed over the final vocabulary (up to
            # the order of equally close words, which the hash embedder often gives: compared by similarities)
            best = ("SELECT src, tgt, word, array(SELECT round(s::numeric, 4) FROM unnest(sims) s) "
                    "FROM arrival.lexicon_best ORDER BY 1, 2, 3")
            assert x.execute(best).fetchall() == y.execute(best).fetchall()
            assert x.execute("SELECT count(*) FROM arrival.lexicon_best WHERE cardinality(targets) > 0").fetchone()[0]
            postings = ("SELECT o.lang, o.term, p.chunk_id FROM arrival.postings o JOIN arrival.passages p "
                        "ON p.id = o.id ORDER BY 1, 2, 3")  # impacts differ: the mean length when written
            assert x.execute(postings).fetchall() == y.execute(postings).fetchall()
            assert len(x.execute(postings).fetchall()) == x.execute(
                "SELECT count(*) FROM arrival.passages p, unnest(p.tsv)").fetchone()[0]
    finally:
        drop_database(postgres_server, name)


def test_the_translation_table_is_read_not_computed_and_an_older_database_still_translates(pg_settings, tmp_path,
                                                                                          monkeypatch):
    """A server opening a generation reads the table the ingest stored (the matcher is never called); it equals
    the table computed over the same vocabulary; a database written before the table existed computes it."""
    from arrival.index import lexicon as lexicon_module

    d = _demo(tmp_path)
    _ingest(pg_settings, good_pdf(tmp_path / "a.pdf", tag="alpha"))
    _ingest(pg_settings, d)
    backend = open_backend(pg_settings, EMB.id)
    with backend.pinned() as view:
        words, vectors = dict(view.lexicon.words), dict(view.lexicon.vectors)
    fresh = lexicon_module.Lexicon(words=words, vectors=vectors)
    expected = {pair: fresh.matches(*pair) for pair in (("fr", "en"), ("en", "fr"))}

    def fail(*_a, **_k):  # type: ignore[no-untyped-def]
        raise AssertionError("the translation table was computed, not read")

    monkeypatch.setattr(lexicon_module, "best_matches", fail)
    close_pools()  # as a new server process: nothing cached
    backend = open_backend(pg_settings, EMB.id)
    with backend.pinned() as view:
        for pair, (ids, sims) in expected.items():
            got_ids, got_sims = view.lexicon.matches(*pair)
            np.testing.assert_allclose(got_sims, sims, atol=1e-5)
            assert (got_ids >= 0).sum() == (ids >= 0).sum() > 0
        assert view.lexicon.table("fr", "en")
    monkeypatch.undo()
    import arrival.index.postgres_writer as writer_module

    monkeypatch.setattr(writer_module, "update_table", fail)  # a commit that leaves the vocabulary as it is
    moved = d.parent / "moved"
    moved.mkdir()
    (d / "gfmd.pdf").rename(moved / "gfmd.pdf")
    assert [f.status for f in _ingest(pg_settings, moved).files] == ["moved"]
    monkeypatch.undo()
    with psycopg.connect(pg_settings.database_url) as conn:
        conn.execute("DROP TABLE arrival.lexicon_best")
    close_pools()
    with open_backend(pg_settings, EMB.id).pinned() as view:
        np.testing.assert_allclose(view.lexicon.matches("fr", "en")[1], expected[("fr", "en")][1], atol=1e-5)


def test_index_mismatches_and_missing_index_are_one_line_errors(pg_settings, tmp_path):
    backend = open_backend(pg_settings, EMB.id)
    assert not backend.has_index()
    with pytest.raises(IndexOpenError, match="no index yet"):
        backend.view()
    _ingest(pg_settings, _demo(tmp_path))
    assert backend.has_index()
    with pytest.raises(IndexOpenError, match="built with embedder 'hash:256', not 'use-m3'"):
        PostgresBackend(pg_settings.database_url, "use-m3").view()
    with pytest.raises(IndexOpenError, match="chunk size 800/overlap 120"):
        Indexer(pg_settings.model_copy(update={"chunk_size": 500}), EMB).ingest([tmp_path / "docs"])
    other = HashEmbedder(128)
    with pytest.raises(IndexOpenError, match="built with embedder 'hash:256'"):
        Indexer(pg_settings.model_copy(update={"model": "hash:128"}), other).ingest([tmp_path / "docs"])
    rep = Indexer(pg_settings.model_copy(update={"model": "hash:128"}), other).ingest([tmp_path / "docs"],
                                                                                   rebuild=True)
    assert [f.status for f in rep.files] == ["indexed"]
    with PostgresBackend(pg_settings.database_url, "hash:128").pinned() as view:
        assert view.embedders == {DENSE: "hash:128"} and view.vectors(DENSE, np.array([next(view.iter_chunks()).id]
                                                                                     )).shape == (1, 128)
    with psycopg.connect(pg_settings.database_url, autocommit=True) as conn:  # an index of an older format
        conn.execute("UPDATE arrival.state SET format_version = format_version - 1")
    other_settings = pg_settings.model_copy(update={"model": "hash:128"})
    with pytest.raises(IndexOpenError, match=r"index format .*rebuild"):
        PostgresBackend(pg_settings.database_url, "hash:128").view()
    with pytest.raises(IndexOpenError, match=r"index format .*rebuild"):
        Indexer(other_settings, other).ingest([tmp_path / "docs"])
    rep = Indexer(other_settings, other).ingest([tmp_path / "docs"], rebuild=True)  # --rebuild replaces it
    assert [f.status for f in rep.files] == ["indexed"]
    with PostgresBackend(pg_settings.database_url, "hash:128").pinned() as view:
        assert view.count() == rep.files[0].chunks
    with pytest.raises(IndexOpenError, match=r"^postgresql://me:\*\*\*@/nowhere.*: cannot connect to PostgreSQL"):
        PostgresBackend("postgresql://me:secret@/nowhere?host=/nonexistent").has_index()


def test_cli_backend_choice_and_stats(pg_settings, tmp_path, monkeypatch, capsys):
    from arrival.cli import main

    monkeypatch.setenv("ARRIVAL_DATABASE_URL", pg_settings.database_url)
    assert main(["ingest", str(_demo(tmp_path)), "--model", "hash:256", "--home", str(tmp_path / "h"), "-q"]) == 0
    assert main(["stats", "--json", "--model", "hash:256", "--home", str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert '"backend": "postgres"' in out and '"chunks": 125' in out and "secret" not in out
    assert main(["stats", "--json", "--backend", "embedded", "--home", str(tmp_path / "h")]) == 0
    assert '"chunks": 0' in capsys.readouterr().out  # the index folder is empty
    monkeypatch.delenv("ARRIVAL_DATABASE_URL")
    assert main(["stats", "--backend", "postgres"]) == 2
    assert "needs ARRIVAL_DATABASE_URL" in capsys.readouterr().err
