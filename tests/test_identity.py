"""A document's identity is its resolved absolute path; moves keep passages; a changed file loses its old ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Retriever

from .pdfgen import good_pdf


def _ingest(settings, paths):
    return Indexer(settings, HashEmbedder(256)).ingest([Path(p) for p in paths])


def _docs(settings):
    return {d.path: d for d in Retriever.from_settings(settings, HashEmbedder(256)).view().documents().values()}


def test_the_same_relative_path_from_two_folders_is_two_documents(hash_settings, tmp_path, monkeypatch):
    """docs/a.pdf typed in two working directories names two different files: both stay indexed."""
    for place, tag in (("one", "first"), ("two", "second")):
        (tmp_path / place / "docs").mkdir(parents=True)
        good_pdf(tmp_path / place / "docs" / "a.pdf", tag=tag)
    monkeypatch.chdir(tmp_path / "one")
    assert [f.status for f in _ingest(hash_settings, ["docs/a.pdf"]).files] == ["indexed"]
    monkeypatch.chdir(tmp_path / "two")
    assert [f.status for f in _ingest(hash_settings, ["docs/a.pdf"]).files] == ["indexed"]
    docs = _docs(hash_settings)
    assert set(docs) == {str(tmp_path / "one" / "docs" / "a.pdf"), str(tmp_path / "two" / "docs" / "a.pdf")}
    assert all(Path(p).is_absolute() for p in docs)


def test_one_file_reached_from_two_folders_is_one_document(hash_settings, tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    good_pdf(tmp_path / "docs" / "a.pdf")
    monkeypatch.chdir(tmp_path)
    _ingest(hash_settings, ["docs/a.pdf"])
    monkeypatch.chdir(tmp_path / "docs")
    rep = _ingest(hash_settings, ["a.pdf"])
    assert [f.status for f in rep.files] == ["unchanged"]
    assert list(_docs(hash_settings)) == [str(tmp_path / "docs" / "a.pdf")]


def test_a_moved_file_keeps_its_passages(hash_settings, tmp_path):
    """Renamed (same content): the path is updated; the passages, their ids and vectors are kept as they were."""
    (tmp_path / "docs").mkdir()
    old = good_pdf(tmp_path / "docs" / "a.pdf")
    _ingest(hash_settings, [tmp_path / "docs"])
    before = Retriever.from_settings(hash_settings, HashEmbedder(256)).view()
    ids_before = sorted(c.chunk_id for c in before.iter_chunks())
    new = tmp_path / "docs" / "renamed.pdf"
    shutil.move(old, new)
    rep = _ingest(hash_settings, [tmp_path / "docs"])
    assert [(f.status, f.reason) for f in rep.files] == [("moved", f"was {old}")]
    assert rep.timings["embed"] == 0.0 and rep.timings["parse"] == 0.0
    after = Retriever.from_settings(hash_settings, HashEmbedder(256)).view()
    assert list(_docs(hash_settings)) == [str(new)]
    assert sorted(c.chunk_id for c in after.iter_chunks()) == ids_before
    hits = Retriever.from_settings(hash_settings, HashEmbedder(256)).search("migrants", k=1)
    assert hits and hits[0].source == str(new)


def test_a_changed_file_always_loses_its_old_passages(hash_settings, tmp_path):
    """b.pdf changes so that its new content equals a.pdf's: its old text must not stay searchable (it used to,
    when the twin check came before the removal)."""
    (tmp_path / "docs").mkdir()
    a = good_pdf(tmp_path / "docs" / "a.pdf", tag="alpha")
    b = good_pdf(tmp_path / "docs" / "b.pdf", tag="bravo")
    _ingest(hash_settings, [tmp_path / "docs"])
    old_b = _docs(hash_settings)[str(b)]
    shutil.copy(a, b)
    rep = _ingest(hash_settings, [tmp_path / "docs"])
    statuses = {Path(f.path).name: (f.status, f.reason) for f in rep.files}
    assert statuses["a.pdf"] == ("unchanged", "")
    assert statuses["b.pdf"] == ("unchanged", f"same content as {a}")
    docs = _docs(hash_settings)
    assert list(docs) == [str(a)] and old_b.doc_id not in {d.doc_id for d in docs.values()}
    view = Retriever.from_settings(hash_settings, HashEmbedder(256)).view()
    assert all(c.doc_id != old_b.doc_id for c in view.iter_chunks())


@pytest.mark.parametrize("how", ["path", "doc_id"])
def test_remove_by_resolved_path_or_id(hash_settings, tmp_path, monkeypatch, how):
    (tmp_path / "docs").mkdir()
    a = good_pdf(tmp_path / "docs" / "a.pdf")
    _ingest(hash_settings, [tmp_path / "docs"])
    monkeypatch.chdir(tmp_path / "docs")
    target = "a.pdf" if how == "path" else _docs(hash_settings)[str(a)].doc_id
    rep = Indexer(hash_settings, HashEmbedder(256)).remove([target])
    assert [(f.status, f.path) for f in rep.files] == [("removed", str(a))]
    assert _docs(hash_settings) == {}
