"""Ingest on a real Dask LocalCluster of 2 worker processes (`arrival ingest --cluster local`): the same passages,
ids included, as a local ingest, and a bad file reported exactly as a local ingest reports it; a worker killed
mid-ingest is replaced and the ingest completes; an ingest killed mid-way leaves the index as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
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


# -- a worker or the ingest killed mid-ingest ---------------------------------------------------------------------
MANY = [f"gcm-guidance/{d}" for d in (
    "en/objectives/1-DATA.pdf", "en/objectives/10-ERADICATE TRAFFIKING.pdf", "en/objectives/11-MANAGE BORDERS.pdf",
    "en/objectives/20-REMITTANCES.pdf", "fr/objectifs/8 - SAUVER DES VIES.pdf", "fr/objectifs/20 - ENVOIS DE FONDS.pdf",
    "fr/objectifs/22 - PROTECTION SOCIALE.pdf", "fr/objectifs/9 - COMBATTRE LE TRAFIC DE MIGRANTS.pdf")]


@pytest.fixture
def many(tmp_path: Path, shared_corpus: Path) -> Path:
    d = tmp_path / "many"
    d.mkdir()
    for rel in MANY:
        shutil.copy(shared_corpus / rel, d / Path(rel).name)
    return d


@pytest.fixture
def cluster():  # type: ignore[no-untyped-def]
    """A LocalCluster of 2 worker processes (each under a nanny that restarts it), and a client of the test's own."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as c, distributed.Client(c) as client:
        yield c, client


def _arrival_tasks(scheduler) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {str(k): ts.state for k, ts in list(scheduler.tasks.items()) if str(k).startswith("arrival-parse")}


def _wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_worker_killed_mid_ingest_is_replaced_and_the_ingest_completes(many, cluster, tmp_path, monkeypatch):
    """SIGKILL to a worker while it holds a file: Dask runs that file again on a live worker (the nanny restarts
    the dead one) and the ingest ends with the passages of a local ingest, nothing lost or doubled."""
    c, client = cluster
    from arrival.settings import load_settings

    monkeypatch.chdir(tmp_path)
    local = load_settings(home=tmp_path / "local", model="hash:256")
    there = load_settings(home=tmp_path / "dask", model="hash:256")
    Indexer(local, EMB).ingest([Path("many")])
    done: dict[str, object] = {}
    thread = threading.Thread(target=lambda: done.update(
        report=Indexer(there, EMB).ingest([Path("many")], cluster=c.scheduler_address)))
    thread.start()
    victim: list[str] = []

    def a_worker_holds_a_file() -> bool:
        for worker, keys in client.processing().items():
            if any(str(k).startswith("arrival-parse") for k in keys):
                victim.append(worker)
                return True
        return False

    _wait_for(a_worker_holds_a_file, 120, "a worker to take a file")
    pid = client.run(os.getpid, workers=[victim[0]])[victim[0]]
    os.kill(pid, signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive()
    assert [f.status for f in done["report"].files] == ["indexed"] * len(MANY)  # type: ignore[attr-defined]
    assert _passages(there) == _passages(local)
    _wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "the nanny to restart the worker")
    assert pid not in client.run(os.getpid).values()  # the worker was killed indeed, and replaced


def test_an_ingest_killed_mid_way_leaves_postgres_as_it_was_and_the_rerun_completes(
        many, cluster, tmp_path, pg_settings, monkeypatch):
    """`arrival ingest --cluster ADDRESS` killed (SIGKILL) after some files came back from the workers: its
    transaction dies with it, readers see the index as before, and the same command run again completes it with
    the passages of a local ingest."""
    c, _client = cluster
    from arrival.settings import load_settings

    monkeypatch.chdir(tmp_path)
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(GFMD, first / "gfmd.pdf")
    Indexer(pg_settings, EMB).ingest([first])
    before = _passages(pg_settings)
    env = {**os.environ, "ARRIVAL_DATABASE_URL": pg_settings.database_url, "ARRIVAL_CACHE": str(tmp_path / "c")}
    cmd = [sys.executable, "-m", "arrival.cli", "ingest", "many", "--model", "hash:256", "--cluster",
           c.scheduler_address, "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: sum(s in ("memory", "released", "forgotten")
                              for s in _arrival_tasks(c.scheduler).values()) >= 2 or proc.poll() is not None,
                  180, "two files to come back from the workers")
        assert proc.poll() is None, "the ingest ended before it could be killed"
        proc.kill()
    finally:
        proc.wait(30)
    assert _passages(pg_settings) == before  # nothing of the killed ingest is visible
    local = load_settings(home=tmp_path / "local", model="hash:256")
    Indexer(local, EMB).ingest([first])
    Indexer(local, EMB).ingest([Path("many")])
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert [p[1:] for p in _passages(pg_settings)] == [p[1:] for p in _passages(local)]
