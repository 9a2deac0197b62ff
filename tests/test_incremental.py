"""Incremental generations: a small ingest writes a delta beside a hard-linked base, a removal is a tombstone, and
what a reader sees is what a complete rebuild of the same documents gives."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import arrival.index.incremental as incremental
import arrival.index.lexicon as lexicon
from arrival.errors import IndexOpenError
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Filters, Retriever
from arrival.index.store import IndexStore
from arrival.settings import load_settings

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "gcm-guidance"
EN = ["2-MINIMIZE THE ADVERSE DRIVERS", "4-LEGAL IDENTITY", "5-REGULAR PATHWAYS", "6-RECRUITMENT AND DECENT WORK",
      "7-REDUCE VULNERABILITIES", "8-SAVE LIVES", "9-COUNTER SMUGGLING"]
FR = ["2 - REDUIRE LES FACTEURS NEGATIFS", "4 - IDENTITE LEGALE ET PAPIERS", "5 - FILIERES DE MIGRATION REGULIERE",
      "6 - RECRUTEMENT ET TRAVAIL DECENT", "7 - REDUIRE LA VULNERABILITE"]
NEW = [CORPUS / "en" / "objectives" / "1-DATA.pdf", CORPUS / "fr" / "objectifs" / "1 - DONNEES.pdf"]
QUERIES = ["data collection and disaggregation of migration statistics", "données migratoires ventilées",
           "regular pathways for migrant workers", "sauver des vies en mer", "legal identity documents"]


def _settings(home: Path):  # type: ignore[no-untyped-def]
    return load_settings(home=home, model="hash:256")


def _ingest(home: Path, paths: list[Path]):  # type: ignore[no-untyped-def]
    return Indexer(_settings(home), HashEmbedder(256)).ingest(paths)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus missing")
    root = tmp_path_factory.mktemp("inc")
    base, new = root / "base", root / "new"
    base.mkdir()
    new.mkdir()
    for name in EN:
        shutil.copy(CORPUS / "en" / "objectives" / f"{name}.pdf", base / f"{name}.pdf")
    for name in FR:
        shutil.copy(CORPUS / "fr" / "objectifs" / f"{name}.pdf", base / f"{name}.pdf")
    for p in NEW:
        shutil.copy(p, new / p.name)
    return base, new


def _results(home: Path) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """chunk_id and score of the top passages of each query, dense and keyword, with and without a filter."""
    r = Retriever(home, HashEmbedder(256))
    out = {}
    for q in QUERIES:
        for mode in ("dense", "bm25"):
            for langs in ((), ("fr",)):
                hits = r.search(q, k=8, mode=mode, filters=Filters(langs=langs))
                out[(q, mode + ",".join(langs))] = [(h.chunk_id, round(h.score, 3)) for h in hits]
    return out


def test_a_small_ingest_writes_a_delta_and_reads_as_a_rebuild(corpus, tmp_path):
    base_docs, new_docs = corpus
    home = tmp_path / "home"
    _ingest(home, [base_docs])
    first = IndexStore(home).current()
    assert first is not None and not (first / "delta").exists()
    linked = ("meta.sqlite", "vectors.npy", "faiss.index", "columns/question_list.npy")
    inodes = {name: os.stat(first / name).st_ino for name in linked}
    rep = _ingest(home, [new_docs])
    assert [f.status for f in rep.files] == ["indexed", "indexed"]
    gen = IndexStore(home).current()
    assert gen is not None and gen != first and (gen / "delta").is_dir()
    # the base was not rewritten: its files are the previous generation's (hard links)
    for name in linked:
        assert os.stat(gen / name).st_ino == inodes[name], name
    # the translation table over the base's and the delta's words was stored at ingest: opening computes none
    def computed(*args: object, **kw: object) -> None:
        raise AssertionError("lexicon matches computed while opening an index")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lexicon, "best_matches", computed)
        snap = IndexStore(home).open()
    assert snap is not None
    assert snap.delta is not None and snap.delta.lexicon.words and snap.delta.lexicon.merged
    for src, tgt in (("en", "fr"), ("fr", "en")):
        rows = len(snap.lexicon.best[(src, tgt)][0])
        assert rows == len(snap.lexicon.words[src]) > len(snap.delta.lexicon.words[src])
    n = snap.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert n == snap.manifest.chunks == snap.stats()["chunks"] == snap.count() > snap.base_rows > 0
    assert snap.db.execute("SELECT min(row), max(row) FROM chunks").fetchone() == (0, n - 1)
    assert {Path(d.path).name for d in snap.documents().values()} >= {p.name for p in NEW}
    assert snap.manifest.documents == len(snap.documents()) == len(EN) + len(FR) + len(NEW)
    # the same documents ingested at once
    full = tmp_path / "full"
    _ingest(full, [base_docs, new_docs])
    ref = IndexStore(full).open()
    assert ref is not None and not (ref.gen_dir / "delta").exists()
    assert ref.manifest.chunks == n
    mine, theirs = _results(home), _results(full)
    for key, want in theirs.items():
        got = mine[key]
        if key[1].startswith("dense"):
            assert [c for c, _ in got] == [c for c, _ in want], key
        else:  # the delta's keyword scores use both parts' statistics (lengths its own): nearly the same ranking
            assert len({c for c, _ in got} & {c for c, _ in want}) >= 0.75 * len(want), key
    # translation partners (by chunk_id) agree with the ones a complete build computes
    ids = {c.chunk_id: c.id for c in snap.iter_chunks()}
    ref_ids = {c.id: c.chunk_id for c in ref.iter_chunks()}
    mine_p = {cid: snap.columns.partner[i] for cid, i in ids.items()}
    ref_rows = {cid: i for i, cid in ref_ids.items()}
    back = {i: cid for cid, i in ids.items()}
    same = sum((back.get(int(mine_p[cid]), None) if mine_p[cid] >= 0 else None)
               == (ref_ids[int(ref.columns.partner[ref_rows[cid]])] if ref.columns.partner[ref_rows[cid]] >= 0
                   else None) for cid in ids)
    assert same >= 0.98 * len(ids), (same, len(ids))


def test_removal_is_a_tombstone_and_a_large_change_merges(corpus, tmp_path, monkeypatch):
    base_docs, new_docs = corpus
    home = tmp_path / "home"
    _ingest(home, [base_docs])
    _ingest(home, [new_docs])
    snap = IndexStore(home).open()
    assert snap is not None
    victim = next(d for d in snap.documents().values() if Path(d.path).name == f"{EN[1]}.pdf")
    delta_doc = next(d for d in snap.documents().values() if Path(d.path).name == NEW[0].name)
    before = snap.manifest.chunks
    report = Indexer(_settings(home), HashEmbedder(256)).remove([victim.doc_id, delta_doc.doc_id])
    assert [f.status for f in report.files] == ["removed", "removed"]
    snap = IndexStore(home).open()
    assert snap is not None
    assert (snap.gen_dir / "tombstones.json").exists() and (snap.gen_dir / "delta").is_dir()
    assert snap.manifest.chunks == before - victim.chunks - delta_doc.chunks == snap.count()
    # per-document counts (from the stored document codes, tombstones and delta included) are SQLite's
    assert {d: info.chunks for d, info in snap.documents().items()} == dict(
        snap.db.execute("SELECT doc_id, count(*) FROM chunks GROUP BY doc_id").fetchall())
    assert victim.doc_id not in snap.documents() and delta_doc.doc_id not in snap.documents()
    assert snap.manifest.documents == len(snap.documents()) == len(EN) + len(FR)
    gone = {victim.doc_id, delta_doc.doc_id}
    r = Retriever(home, HashEmbedder(256))
    for q in [*QUERIES, "legal identity birth registration documents"]:
        for mode in ("dense", "bm25", "hybrid"):
            for langs in ((), ("en",)):
                hits = r.search(q, k=10, mode=mode, filters=Filters(langs=langs))
                assert hits or mode == "bm25", (q, mode, langs)
                assert not {h.doc_id for h in hits} & gone, (q, mode, langs)
    assert not any(c.doc_id in gone for c in snap.iter_chunks())
    # removing most of the base passes the ratio: one complete generation again, nothing left behind
    monkeypatch.setattr(incremental, "TOMBSTONE_RATIO", 0.0)
    keep = next(d for d in snap.documents().values() if Path(d.path).name == f"{EN[0]}.pdf")
    Indexer(_settings(home), HashEmbedder(256)).remove([keep.doc_id])
    snap = IndexStore(home).open()
    assert snap is not None
    assert not (snap.gen_dir / "delta").exists() and not (snap.gen_dir / "tombstones.json").exists()
    assert snap.base_rows == snap.manifest.chunks == snap.faiss.ntotal
    assert snap.db.execute("SELECT min(row), max(row) FROM chunks").fetchone() == (0, snap.manifest.chunks - 1)
    assert {Path(d.path).name for d in snap.documents().values()} == (
        {f"{x}.pdf" for x in EN + FR} | {NEW[1].name}) - {f"{EN[0]}.pdf", f"{EN[1]}.pdf"}
    vectors = snap.vectors("dense", np.arange(snap.manifest.chunks))
    assert np.allclose(snap.faiss.reconstruct_n(0, snap.manifest.chunks), vectors, atol=1e-6)


@pytest.mark.parametrize("victim", ["delta/meta.sqlite", "delta/vectors.npy", "delta/faiss.index",
                                    "delta/keyword/keyword.json", "tombstones.json", "partner.npy"])
def test_a_damaged_delta_is_a_clear_error_and_rebuild_recovers(corpus, tmp_path, victim):
    base_docs, new_docs = corpus
    home = tmp_path / "home"
    _ingest(home, [base_docs])
    _ingest(home, [new_docs])
    snap = IndexStore(home).open()
    assert snap is not None
    gone = next(d for d in snap.documents().values() if Path(d.path).name == f"{EN[2]}.pdf")
    Indexer(_settings(home), HashEmbedder(256)).remove([gone.doc_id])  # a tombstone beside the delta
    gen = IndexStore(home).current()
    assert gen is not None and (gen / "tombstones.json").exists()
    path = gen / victim
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    with pytest.raises(IndexOpenError, match="rebuild") as err:
        IndexStore(home).open()
    assert str(path.parent if victim.startswith("delta/keyword") else path) in str(err.value) or \
        str(gen) in str(err.value)
    assert "\n" not in str(err.value)
    rep = Indexer(_settings(home), HashEmbedder(256)).ingest([base_docs, new_docs], rebuild=True)
    assert not rep.failed
    snap = IndexStore(home).open()
    assert snap is not None and not (snap.gen_dir / "delta").exists()
    assert len(snap.documents()) == len(EN) + len(FR) + len(NEW)
