"""The library: what is indexed, what failed to be, removing a document, uploading with progress per file.

Indexed documents come from the live index (`Snapshot.documents()`: the same figures as `arrival stats
--documents --json`); failed files come from assistant/failures.py.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arrival.assistant.failures import dismiss_failure, failures, record_results
from arrival.errors import ArrivalError

if TYPE_CHECKING:
    from arrival.assistant.server import Backend
    from arrival.assistant.uploads import UploadResult

log = logging.getLogger(__name__)

__all__ = ["FileProgress", "LibraryRow", "dismiss_failure", "failures", "library_rows", "record_results",
           "remove_document", "upload_with_progress"]


@dataclass(frozen=True)
class LibraryRow:
    doc_id: str  # "" for a failed file
    title: str
    name: str  # file name
    path: str  # as ingested
    languages: tuple[str, ...]
    pages: int
    chunks: int
    added: float  # seconds since the epoch
    status: str  # indexed | failed
    reason: str = ""


# -- the list --------------------------------------------------------------------------------------------------
def library_rows(backend: Backend, query: str = "") -> list[LibraryRow]:
    """Indexed documents (by title, then file name) and failed files, filtered by `query` (in the title or the
    file name, case- and accent-insensitive)."""
    from arrival.index.keyword import fold

    rows: list[LibraryRow] = []
    with contextlib.suppress(ArrivalError):
        for d in backend.documents().values():
            rows.append(LibraryRow(d.doc_id, d.title.strip() or Path(d.path).name, Path(d.path).name, d.path,
                                   tuple(d.languages), d.page_count, d.chunks, d.ingested_at, "indexed"))
    rows.sort(key=lambda r: (r.title.casefold(), r.name.casefold()))
    for f in failures(backend.settings.home):
        name = str(f["name"])
        at = f.get("at")
        rows.append(LibraryRow("", name, name, name, (), 0, 0, float(at) if isinstance(at, (int, float)) else 0.0,
                               "failed", str(f.get("reason", ""))))
    words = fold(query).split()
    if words:
        rows = [r for r in rows if all(w in fold(f"{r.title} {r.name}") for w in words)]
    return rows


def remove_document(backend: Backend, doc_id: str) -> tuple[bool, str]:
    """Remove one document from the index (its stored upload too, if it was uploaded here). (done, title)."""

    info = backend.documents().get(doc_id)
    if info is None:
        return False, ""
    with backend.ingest_lock():
        report = backend.indexer().remove([doc_id], wait=60.0)
    done = any(f.status == "removed" for f in report.files)
    if done:
        uploads = backend.uploads_dir.resolve()
        path = Path(info.abspath)
        with contextlib.suppress(OSError):
            if path.resolve().parent == uploads and path.is_file() and not path.is_symlink():
                path.unlink()
    return done, info.title.strip() or Path(info.path).name


# -- uploads with progress -------------------------------------------------------------------------------------
@dataclass
class FileProgress:
    name: str
    stage: str = "queued"  # queued | checking | reading | indexing | writing | done
    fraction: float = 0.0
    status: str = ""  # "" while working, then indexed | unchanged | failed
    reason: str = ""
    other: str = ""
    pages: int = 0
    chunks: int = 0
    done: bool = field(default=False)


_STAGES = {"queued": 0.02, "checking": 0.1, "reading": 0.25, "indexing": 0.6, "writing": 0.85, "done": 1.0}


def upload_with_progress(backend: Backend, files: Sequence[tuple[str, Path]]
                         ) -> Iterator[tuple[list[FileProgress], list[UploadResult] | None]]:
    """Store and index uploaded files in a worker thread, yielding (per-file progress, None) as it goes and
    finally (progress, results). Exceptions of the ingest are raised here."""
    from arrival.assistant.uploads import sanitize_filename

    progress = [FileProgress(sanitize_filename(name)) for name, _ in files]
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def on_event(i: int, stage: str) -> None:
        events.put(("stage", (i, stage)))

    def run() -> None:
        try:
            events.put(("done", backend.ingest_uploads(list(files), events=on_event)))
        except BaseException as exc:  # handed to the caller's thread
            events.put(("error", exc))

    worker = threading.Thread(target=run, name="arrival-upload", daemon=True)
    worker.start()
    yield progress, None
    while True:
        kind, value = events.get()
        if kind == "stage":
            i, stage = int(value[0]), str(value[1])
            if 0 <= i < len(progress) and not progress[i].status:
                progress[i].stage = stage
                progress[i].fraction = max(progress[i].fraction, _STAGES.get(stage, 0.0))
            yield progress, None
        elif kind == "error":
            worker.join()
            raise value
        else:
            results: list[UploadResult] = value
            for p, r in zip(progress, results, strict=False):
                p.status, p.reason, p.other, p.pages, p.chunks = r.status, r.reason, r.other, r.pages, r.chunks
                p.stage, p.fraction, p.done = "done", 1.0, True
            worker.join()
            yield progress, results
            return
