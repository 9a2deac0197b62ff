"""Parse, clean, chunk and embed on a Dask cluster (`arrival ingest PATH... --cluster ADDRESS`).

`ADDRESS` is a scheduler (`tcp://scheduler:8786`) or `local`: a LocalCluster of worker processes on this machine
(`workers` setting, one per core by default; one thread each, the embedder's threads split between them). Each
task takes one file and returns its document, chunks and vectors in every space; the ingest process writes them
through the backend's one writer, in the order of the files, exactly as a local ingest does (so the same files give
the same passages, ids included). A bad file fails alone with the reason a local ingest gives; a task whose worker
died is run again on another worker by Dask, and a file that kills every worker it lands on (Dask's
`allowed-failures`) is reported as crashing the parser.

Workers load each embedder once (by its id, from ARRIVAL_CACHE on the worker or the ingest's cache folder) and check
that they embed with the same models as the index. With a remote scheduler the file's bytes travel with the task,
so workers need no access to the ingest machine's files; a local cluster reads them in place.

The parse and text functions are handed in by `index.build` (no import back into it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ArrivalError, IngestError
from arrival.types import Chunk

log = logging.getLogger(__name__)

WINDOW_PER_WORKER = 4  # files in flight per worker, so a slow file at the head of the order stalls nobody long
_EMBEDDERS: dict[tuple[str, str, int, int], Any] = {}  # one per worker process and model
_EMBEDDERS_LOCK = threading.Lock()

Parse = Callable[[Path, str, tuple[int, int, int], tuple[int, int]], Any]
Text = Callable[[Chunk], str]


class ClusterError(ArrivalError):
    """The Dask cluster cannot be reached or refuses the work."""


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError("--cluster needs Dask: pip install 'arrival[cluster]'") from None
    return distributed


@contextlib.contextmanager
def connect(address: str, workers: int = 0, memory_mb: int = 4096) -> Iterator[Any]:
    """A Dask client on the scheduler at `address`, or on a LocalCluster of `workers` processes for 'local'."""
    distributed = _dask()
    with contextlib.ExitStack() as stack:
        # Dask logs every worker's start and stop at INFO: shown with arrival's own messages (-v), else errors only
        dask_log = logging.getLogger("distributed")
        stack.callback(dask_log.setLevel, dask_log.level)
        dask_log.setLevel(logging.INFO if logging.getLogger("arrival").isEnabledFor(logging.INFO) else logging.ERROR)
        try:
            if address == "local":
                n = workers or (os.cpu_count() or 1)
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                    memory_limit=f"{memory_mb}MiB", silence_logs=logging.ERROR))
                client = stack.enter_context(distributed.Client(cluster))
            else:
                client = stack.enter_context(distributed.Client(address, timeout=30))
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"{address}: cannot reach the Dask scheduler ({exc})") from None
        yield client


def _embedder(spec: str, cache: str, threads: int, batch_size: int) -> Any:
    key = (spec, cache, threads, batch_size)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            from arrival.index.embed import load_embedder

            _EMBEDDERS[key] = load_embedder(spec, Path(os.environ.get("ARRIVAL_CACHE", cache)), threads, batch_size)
        return _EMBEDDERS[key]


def work(name: str, data: bytes | None, sha: str, limits: tuple[int, int, int], chunking: tuple[int, int],
         specs: dict[str, str], model: tuple[str, int, int], parse: Parse, text: Text) -> Any:
    """One file on a worker: parse, clean, chunk (with `parse`, which raises IngestError for a bad file), then embed
    in every vector space. `data` is the file's content (remote workers), or None to read `name` in place."""
    try:
        if data is None:
            result = parse(Path(name), sha, limits, chunking)
        else:
            with tempfile.TemporaryDirectory(prefix="arrival-") as tmp:
                path = Path(tmp) / Path(name).name  # the title falls back to the file's name
                path.write_bytes(data)
                result = parse(path, sha, limits, chunking)
    except IngestError as exc:  # a bad file is a result, not a task failure (which Dask would log as an error)
        return exc
    doc, langs, chunks, timings = result
    t = time.perf_counter()
    texts = [text(c) for c in chunks]
    vectors: dict[str, np.ndarray] = {}
    ids: dict[str, str] = {}
    for space, spec in specs.items():
        emb = _embedder(spec, *model)
        vectors[space] = emb.embed_passages(texts)
        ids[space] = emb.id
    timings = {**timings, "embed": time.perf_counter() - t}
    return doc, langs, chunks, timings, vectors, ids


def run(client: Any, todo: list[tuple[Path, str, str]], limits: tuple[int, int, int], chunking: tuple[int, int],
        embedders: dict[str, Any], model: tuple[str, int, int], parse: Parse, text: Text, ship: bool
        ) -> Iterator[tuple[Path, str, Any]]:
    """(file, resolved name, (doc, langs, chunks, timings, vectors) or IngestError) for every file of `todo`, in
    order, computed on the cluster. `model` = (cache folder, threads, batch size) of the workers' embedders;
    `ship` sends each file's bytes with its task (a remote cluster) instead of letting workers read it."""
    distributed = _dask()
    specs = {space: emb.id for space, emb in embedders.items()}
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = WINDOW_PER_WORKER * workers
    futures: dict[int, Any] = {}

    def submit(i: int) -> None:
        f, name, sha = todo[i]
        try:
            data = f.read_bytes() if ship else None
        except OSError as exc:
            futures[i] = IngestError(str(f), f"cannot read file: {exc.strerror or exc}")
            return
        futures[i] = client.submit(work, str(f) if not ship else name, data, sha, limits, chunking, specs, model,
                                   parse, text, key=f"arrival-parse-{i}-{sha[:16]}", pure=False)

    try:
        for i in range(min(window, len(todo))):
            submit(i)
        for i, (f, name, _sha) in enumerate(todo):
            if i + window < len(todo):
                submit(i + window)
            fut = futures.pop(i)
            if isinstance(fut, IngestError):
                yield f, name, fut
                continue
            try:
                result = fut.result()
            except IngestError as exc:
                result = exc
            except distributed.KilledWorker:
                yield f, name, IngestError(str(f), "the PDF parser crashed on this file")
                continue
            if isinstance(result, IngestError):
                yield f, name, IngestError(str(f), result.reason)
                continue
            doc, langs, chunks, timings, vectors, ids = result
            if ids != specs:
                raise ClusterError(f"the Dask workers embed with {ids}, the index with {specs}: give the workers "
                                   "the same models (arrival models fetch)")
            yield f, name, (doc, langs, chunks, timings, vectors)
    finally:
        for fut in futures.values():
            if not isinstance(fut, IngestError):
                fut.cancel()
