"""Ingest on a real Dask LocalCluster of 2 worker processes (`arrival ingest --cluster local`): the same passages,
ids included, as a local ingest, and a bad file reported exactly as a local ingest reports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from arrival.index.backend import open_backend
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder

from .conftest import GFMD

EMB = HashEmbedder(256)
SMALL = ["gcm-guidance/en/steps/Step 1 Kick-off/STEP 1 - CHECKLIST.pdf",
         "gcm-guidance/fr/objectifs/1 - DONNEES.pdf"]


@pytest.fixture
def docs(tmp_path: Path, shared_corpus: Path) -> Path:
    """Three real PDFs (French, English, one with a space in its name) and one that is not a PDF."""
    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(GFMD, d / "gfmd.pdf")
    for rel in SMALL:
        shutil.copy(shared_corpus / rel, d / Path(rel).name)
    (d / "broken.pdf").write_bytes(b"this is not a PDF\n")
    return d


def _passages(settings) -> list[tuple[int, str, str, int, str]]:  # type: ignore[no-untyped-def]
    with open_backend(settings, EMB.id).pinned() as view:
        return [(c.id, c.chunk_id, c.source, c.page, c.text) for c in view.iter_chunks()]


def _files(report) -> list[tuple[str, str, str, int, int]]:  # type: ignore[no-untyped-def]
    return [(f.path, f.status, f.reason, f.pages, f.chunks) for f in report.files]


def test_cluster_ingest_gives_the_passages_of_a_local_ingest(docs, tmp_path, monkeypatch):
    from arrival.settings import load_settings

    monkeypatch.chdir(tmp_path)
    local = load_settings(home=tmp_path / "local", model="hash:256")
    dask = load_settings(home=tmp_path / "dask", model="hash:256", workers=2)
    here = Indexer(local, EMB).ingest([Path("docs")])
    there = Indexer(dask, EMB).ingest([Path("docs")], cluster="local")
    assert _files(there) == _files(here)
    assert [f.status for f in here.files].count("indexed") == 3
    broken = next(f for f in there.files if f.path.endswith("broken.pdf"))
    assert (broken.status, broken.reason) == ("failed", "not a PDF (no %PDF- signature at the start of the file)")
    assert _passages(dask) == _passages(local) and len(_passages(local)) > 130
    again = Indexer(dask, EMB).ingest([Path("docs")], cluster="local")  # nothing changed: nothing re-parsed
    assert [f.status for f in again.files if not f.path.endswith("broken.pdf")] == ["unchanged"] * 3


def test_cli_cluster_ingest_into_postgres(docs, tmp_path, pg_settings, monkeypatch, capsys):
    """`arrival ingest --cluster local` writing to PostgreSQL: the chunk ids of a local embedded ingest; the bad
    file is the one-line error of a local ingest and the exit status is 1."""
    from arrival.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARRIVAL_DATABASE_URL", pg_settings.database_url)
    monkeypatch.setenv("ARRIVAL_WORKERS", "2")
    assert main(["ingest", "docs", "--model", "hash:256", "--home", "h", "--backend", "embedded", "-q"]) == 1
    local_err = capsys.readouterr().err
    assert main(["ingest", "docs", "--model", "hash:256", "--home", "h", "--cluster", "local", "--json", "-q"]) == 1
    captured = capsys.readouterr()
    assert captured.err == local_err == "arrival: docs/broken.pdf: not a PDF (no %PDF- signature at the start of " \
                                        "the file)\n"
    report = json.loads(captured.out)
    assert [f["status"] for f in report["files"]].count("indexed") == 3
    embedded = pg_settings.model_copy(update={"database_url": "", "home": tmp_path / "h"})
    assert [p[1:] for p in _passages(pg_settings)] == [p[1:] for p in _passages(embedded)]
