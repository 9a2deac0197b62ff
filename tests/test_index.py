"""The index on disk: incremental ingest, replacement, pruning, duplicates, manifest checks, corruption."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from arrival.errors import IndexOpenError
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Filters, Retriever
from arrival.index.store import IndexStore
from arrival.index.view import DENSE
from arrival.settings import load_settings

from .conftest import DEMO
from .pdfgen import good_pdf


def _ingest(settings, paths, **kw):
    return Indexer(settings, HashEmbedder(int(settings.model.split(":")[1]))).ingest(paths, **kw)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(DEMO, d / "paper été.pdf")
    return d


def test_ingest_then_noop(hash_settings, folder):
    first = _ingest(hash_settings, [folder])
    assert [f.status for f in first.files] == ["indexed"]
    assert first.files[0].pages == 18 and first.files[0].chunks > 20
    gen = IndexStore(hash_settings.home).current()
    again = _ingest(hash_settings, [folder])
    assert [f.status for f in again.files] == ["unchanged"]
    assert IndexStore(hash_settings.home).current() == gen  # nothing rewritten


def test_changed_file_is_replaced_and_prune_removes(hash_settings, folder, tmp_path):
    _ingest(hash_settings, [folder])
    target = folder / "paper été.pdf"
    data = target.read_bytes()
    target.write_bytes(data + b"\n% changed\n")
    rep = _ingest(hash_settings, [folder])
    assert [f.status for f in rep.files] == ["indexed"]
    snap = IndexStore(hash_settings.home).open()
    assert len(snap.documents()) == 1
    target.unlink()
    rep = _ingest(hash_settings, [folder], prune=True)
    assert [f.status for f in rep.files] == ["removed"]
    assert IndexStore(hash_settings.home).open().stats()["chunks"] == 0


def test_same_content_twice_is_indexed_once(hash_settings, folder):
    shutil.copy(folder / "paper été.pdf", folder / "copy.pdf")
    rep = _ingest(hash_settings, [folder])
    assert sorted(f.status for f in rep.files) == ["indexed", "unchanged"]
    assert "same content as" in [f for f in rep.files if f.status == "unchanged"][0].reason
    assert len(IndexStore(hash_settings.home).open().documents()) == 1


def test_other_embedder_is_refused(hash_settings, folder):
    _ingest(hash_settings, [folder])
    other = load_settings(home=hash_settings.home, model="hash:128")
    with pytest.raises(IndexOpenError, match="built with embedder 'hash:256'"):
        _ingest(other, [folder])
    with pytest.raises(IndexOpenError, match="hash:256"):
        Retriever.from_settings(other, HashEmbedder(128)).search("migrants")


def test_search_filters_and_reload(hash_settings, folder, tmp_path):
    _ingest(hash_settings, [folder])
    r = Retriever.from_settings(hash_settings, HashEmbedder(256))
    hits = r.search("guichet unique Lisbonne", k=5)
    assert hits and hits[0].page == 6
    assert all(h.lang == "en" for h in r.search("migrants cities", k=5, filters=Filters(langs=("en",))))
    assert r.search("migrants", k=3, filters=Filters(docs=("nothing*",))) == []
    # an ingest that lands while the retriever is open is seen on the next search
    other = tmp_path / "more"
    other.mkdir()
    src = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "gcm-guidance" / "en" / "objectives"
    if not src.is_dir():
        pytest.skip("shared corpus missing")
    shutil.copy(src / "15-ACCESS TO BASIC SERVICES.pdf", other / "o15.pdf")
    _ingest(hash_settings, [other])
    assert any(h.source.endswith("o15.pdf") for h in r.search("basic services firewall", k=5))


@pytest.mark.parametrize("victim", ["faiss.index", "meta.sqlite", "manifest.json", "vectors.npy"])
def test_corrupt_index_is_reported_not_crashed(hash_settings, folder, victim):
    _ingest(hash_settings, [folder])
    gen = IndexStore(hash_settings.home).current()
    path = gen / victim
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    with pytest.raises(IndexOpenError, match="rebuild"):
        IndexStore(hash_settings.home).open()
    rep = _ingest(hash_settings, [folder], rebuild=True)
    assert [f.status for f in rep.files] == ["indexed"]
    assert IndexStore(hash_settings.home).open().stats()["chunks"] > 20


def test_large_collections_switch_to_ivf(hash_settings, folder, monkeypatch):
    """Above FLAT_MAX the store writes an IVF index (real FAISS), and search still finds the passage."""
    import arrival.index.vectors as vectors

    monkeypatch.setattr(vectors, "FLAT_MAX", 10)
    _ingest(hash_settings, [folder])
    snap = IndexStore(hash_settings.home).open()
    assert snap.manifest.vector_index == "ivf-sq8" and type(snap.faiss).__name__ == "IndexIVFScalarQuantizer"
    # the 8-bit codes only choose the candidates: their scores are the stored vectors' exact cosines
    q = HashEmbedder(256).embed_queries(["guichet unique Lisbonne"])[0]
    exact = np.asarray(snap.vectors(DENSE, np.arange(snap.total))) @ q
    ids, sims = snap.dense(DENSE, q, 5)
    np.testing.assert_allclose(sims, exact[ids], rtol=0, atol=1e-6)
    assert list(ids) == list(np.argsort(-exact, kind="stable")[:5])
    hits = Retriever.from_settings(hash_settings, HashEmbedder(256)).search("guichet unique Lisbonne", k=3,
                                                                             mode="dense")
    assert hits and any(h.page == 6 for h in hits)


def test_large_vector_files_are_read_by_row_with_the_same_results(hash_settings, folder, monkeypatch):
    """Above VECTORS_IN_MEMORY a vector file is read row by row (pread, runs of consecutive rows): any ids, in
    any order, repeated, give the rows the file holds, and searches give the same hits as from memory."""
    import arrival.index.snapshot as snapshot

    _ingest(hash_settings, [folder])
    in_memory = IndexStore(hash_settings.home).open()
    query = "guichet unique Lisbonne"
    expected = {mode: [(h.chunk_id, h.score) for h in Retriever(hash_settings.home, HashEmbedder(256)).search(
        query, k=5, mode=mode)] for mode in ("dense", "hybrid")}
    assert isinstance(in_memory._vectors[DENSE], np.ndarray)
    monkeypatch.setattr(snapshot, "VECTORS_IN_MEMORY", 0)
    by_row = IndexStore(hash_settings.home).open()
    assert isinstance(by_row._vectors[DENSE], snapshot.RowFile)
    rng = np.random.default_rng(0)
    for ids in (np.arange(by_row.total), rng.integers(0, by_row.total, 50), np.array([3, 2, 3, 4, 5, 0]),
                np.array([], dtype=np.int64)):
        np.testing.assert_array_equal(by_row.vectors(DENSE, ids), in_memory.vectors(DENSE, ids))
    with pytest.raises(IndexError):
        by_row.vectors(DENSE, np.array([by_row.total]))
    for mode in ("dense", "hybrid"):
        got = Retriever(hash_settings.home, HashEmbedder(256)).search(query, k=5, mode=mode)
        assert isinstance(Retriever(hash_settings.home, HashEmbedder(256)).view()._vectors[DENSE], snapshot.RowFile)
        assert [(h.chunk_id, h.score) for h in got] == expected[mode] and got


def test_a_reader_prefetches_its_generations_search_files(hash_settings, folder, monkeypatch):
    """Opening the live generation for reading asks the kernel (posix_fadvise WILLNEED, in a thread) to cache the
    files searches read by page or by row: FAISS, the vectors read by row, the BM25 arrays."""
    import os

    import arrival.index.snapshot as snapshot

    _ingest(hash_settings, [folder])
    monkeypatch.setattr(snapshot, "VECTORS_IN_MEMORY", 0)
    advised: list[tuple[str, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    view = Retriever(hash_settings.home, HashEmbedder(256)).view()
    gen = IndexStore(hash_settings.home).current()
    assert gen is not None and view.gen_dir == gen
    for thread in threading.enumerate():
        if thread.name == f"prefetch-{gen.name}":
            thread.join(30)
    names = {str(Path(p).relative_to(gen.resolve())) for p, advice in advised if advice == os.POSIX_FADV_WILLNEED}
    assert {"faiss.index", "vectors.npy"} <= names and any(n.startswith("keyword/") for n in names), names


def test_row_labels_are_stored_and_an_index_without_them_still_opens(hash_settings, folder):
    """Each row's language, document and heading are read from columns/ (codes + table), equal to the rows in
    SQLite; an index written before they were stored (no label files) reads them from SQLite instead."""
    _ingest(hash_settings, [folder])
    gen = IndexStore(hash_settings.home).current()
    assert gen is not None
    snap = IndexStore(hash_settings.home).open()
    rows = snap.db.execute("SELECT lang, doc_id, heading FROM main.chunks ORDER BY row").fetchall()
    stored = [tuple(x) for x in zip(snap.columns.lang, snap.columns.doc, snap.columns.heading, strict=True)]
    assert stored == rows and len(rows) > 20 and len({r[2] for r in rows}) > 1
    for p in (gen / "columns").glob("*.codes.npy"):
        p.unlink()
    for p in (gen / "columns").glob("*.table.json"):
        p.unlink()
    old = IndexStore(hash_settings.home).open()
    assert [tuple(x) for x in zip(old.columns.lang, old.columns.doc, old.columns.heading, strict=True)] == rows


def test_the_same_passage_in_two_files_takes_one_place(hash_settings, tmp_path):
    """A page shared by two PDFs (a guide and its chapter printed apart) is one result that names both
    places; with folding off (duplicate_cosine 0) both copies take a place."""
    from . import pdfgen

    shared = pdfgen.varied_pages(1, 6, seed=7, tag="Shared ")[0]
    d = tmp_path / "docs"
    d.mkdir()
    (d / "guide.pdf").write_bytes(pdfgen.text_pdf([*pdfgen.varied_pages(2, 6, seed=8), shared]))
    (d / "chapter.pdf").write_bytes(pdfgen.text_pdf([shared, *pdfgen.varied_pages(1, 6, seed=9)]))
    _ingest(hash_settings, [d])
    query = shared[2]
    hits = Retriever.from_settings(hash_settings, HashEmbedder(256)).search(query, k=5)
    assert [h.text for h in hits].count(hits[0].text) == 1
    assert len({h.text for h in hits}) == len(hits)
    top = hits[0]
    other = "chapter.pdf" if top.source.endswith("guide.pdf") else "guide.pdf"
    assert [(Path(src).name, page) for src, page in top.also] == [(other, 1 if other == "chapter.pdf" else 3)]
    assert top.to_json()["also"] == [{"source": top.also[0][0], "page": top.also[0][1]}]
    unfolded = load_settings(home=hash_settings.home, model=hash_settings.model, duplicate_cosine=0)
    both = Retriever.from_settings(unfolded, HashEmbedder(256)).search(query, k=5)
    assert [h.text for h in both[:2]] == [top.text, top.text] and not both[0].also


def test_neighbours_and_context_scores(hash_settings, folder):
    """Each chunk knows the chunk before and after it in its document (stored at ingest); with context weight 0
    the in-context score is the plain cosine, and a passage gains from a query that matches only its neighbours."""
    import numpy as np

    from arrival.index.retrieve import context_scores

    _ingest(hash_settings, [folder])
    r = Retriever.from_settings(hash_settings, HashEmbedder(256))
    view = r.view()
    order = [row for (row,) in view.db.execute("SELECT row FROM chunks ORDER BY page, start")]
    meta = view.meta(np.asarray(order))
    assert meta.prev[0] == -1 and meta.next[-1] == -1
    assert list(meta.next[:-1]) == order[1:] and list(meta.prev[1:]) == order[:-1]
    rows = np.asarray(order[1:-1])
    own = view.vectors("dense", rows)
    before = view.vectors("dense", np.asarray(order[:-2]))
    qvec = before[3]  # a query that is exactly the passage before rows[3]
    inner = view.meta(rows)
    assert np.allclose(context_scores(view, "dense", inner, own, qvec, 0.0), own @ qvec, atol=1e-5)
    boosted = context_scores(view, "dense", inner, own, qvec, 0.6)
    assert boosted[3] > float(own[3] @ qvec)
    hits = r.search("guichet unique Lisbonne", k=3)
    assert {"dense", "in_context", "hybrid", "fusion"} <= set(hits[0].scores)


def test_remove_by_path_or_id(hash_settings, tmp_path):
    """`Indexer.remove` drops a document named by its path or doc_id, keeps the others, and reports an
    unknown name as a failure of its own."""
    import shutil

    from arrival.index.build import Indexer
    from arrival.index.embed import HashEmbedder
    from arrival.index.store import IndexStore

    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(DEMO, d / "a.pdf")
    good_pdf(d / "b.pdf", tag="second")
    emb = HashEmbedder(256)
    Indexer(hash_settings, emb).ingest([d])
    snap = IndexStore(hash_settings.home).open()
    assert snap is not None
    docs = {Path(x.path).name: x for x in snap.documents().values()}
    report = Indexer(hash_settings, emb).remove([str(d / "b.pdf"), "nope"])
    assert [(f.status, Path(f.path).name) for f in report.files] == [("removed", "b.pdf"), ("failed", "nope")]
    snap = IndexStore(hash_settings.home).open()
    assert snap is not None
    assert [Path(x.path).name for x in snap.documents().values()] == ["a.pdf"]
    assert snap.documents()[docs["a.pdf"].doc_id].ingested_at == docs["a.pdf"].ingested_at
    Indexer(hash_settings, emb).remove([docs["a.pdf"].doc_id])
    snap = IndexStore(hash_settings.home).open()
    assert snap is not None and snap.manifest.chunks == 0
