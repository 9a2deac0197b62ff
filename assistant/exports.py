"""Files the chat offers for download: the Markdown of an answer, the search results as CSV or JSON lines.

They are written under <home>/exports and never kept for long: at each new export, files older than a day are
removed, then the oldest ones until the folder is under its size limit (200 MB). A file is written aside and
renamed, so a download in progress never sees half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from arrival.types import Hit

log = logging.getLogger(__name__)

MAX_AGE_S = 24 * 3600
MAX_BYTES = 200 << 20
SEARCH_FIELDS = ("rank", "score", "lang", "title", "source", "page", "page_end", "heading", "doc_id", "chunk_id",
                 "text")


def prune(folder: Path, max_age_s: float = MAX_AGE_S, max_bytes: int = MAX_BYTES, now: float | None = None,
          keep: Path | None = None) -> list[Path]:
    """Remove exports older than `max_age_s`, then the oldest until the folder holds at most `max_bytes`.
    `keep` (the file just written) is never removed. Returns the files removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    files: list[tuple[float, int, Path]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        path = Path(entry.path)
        if keep is not None and path == keep:
            files.append((float("inf"), st.st_size, path))
        elif now - st.st_mtime > max_age_s:
            _remove(path, removed)
        else:
            files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        if keep is not None and path == keep:
            continue
        if _remove(path, removed):
            total -= size
    return removed


def _remove(path: Path, removed: list[Path]) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        log.warning("could not remove the old export %s", path)
        return False
    removed.append(path)
    return True


def write_export(folder: Path, stem: str, suffix: str, text: str, max_age_s: float = MAX_AGE_S,
                 max_bytes: int = MAX_BYTES) -> Path:
    """Write `text` as <stem>-<content hash><suffix> in `folder`, then prune the folder. Returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    path = folder / f"{stem}-{digest}{suffix}"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.utime(path)  # the same content exported again is fresh again
    prune(folder, max_age_s, max_bytes, keep=path)
    return path


def _row(hit: Hit) -> dict[str, object]:
    return {"rank": hit.rank, "score": round(hit.score, 6), "lang": hit.lang, "title": hit.title,
            "source": hit.source, "page": hit.page, "page_end": hit.page_end, "heading": hit.heading,
            "doc_id": hit.doc_id, "chunk_id": hit.chunk_id, "text": hit.text}


def search_csv(hits: Sequence[Hit]) -> str:
    """CSV (RFC 4180, UTF-8 with a BOM so spreadsheets read the accents), one row per passage."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=SEARCH_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for h in hits:
        row = _row(h)
        # a cell starting with = + - @ is a formula to a spreadsheet: document text must stay text
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v) for k, v in row.items()})
    return out.getvalue()


def search_jsonl(query: str, hits: Sequence[Hit]) -> str:
    """One JSON object per passage, with the query it answers."""
    return "".join(json.dumps({"query": query, **_row(h)}, ensure_ascii=False) + "\n" for h in hits)
