"""Files that failed to be indexed, kept so the library can list them: uploads refused or failed, and failed files
of the server's first ingest. Recorded in <home>/failures.json (name, reason, when, source); a record goes when a
file of that name is indexed later or when it is dismissed from the library.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

FAILURES = "failures.json"
MAX_FAILURES = 500
_failures_lock = threading.Lock()


def _failures_path(home: Path) -> Path:
    return Path(home) / FAILURES


def failures(home: Path) -> list[dict[str, object]]:
    try:
        data = json.loads(_failures_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict) and isinstance(d.get("name"), str)] if isinstance(data, list) else []


def _write_failures(home: Path, items: list[dict[str, object]]) -> None:
    path = _failures_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".failures.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(items[-MAX_FAILURES:], fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_results(home: Path, results: Sequence[tuple[str, str, str]], source: str = "upload") -> None:
    """(file name, status, reason) of an ingest: failures are recorded, files now indexed lose their record."""
    with _failures_lock:
        items = failures(home)
        before = list(items)
        for name, status, reason in results:
            if status in ("indexed", "unchanged") and not (status == "unchanged" and reason):
                items = [d for d in items if d.get("name") != name]
            elif status == "failed":
                items = [d for d in items if d.get("name") != name]
                items.append({"name": name, "reason": reason, "at": round(time.time(), 3), "source": source})
        if items != before:
            try:
                _write_failures(home, items)
            except OSError:
                log.warning("could not record failed files in %s", _failures_path(home))


def dismiss_failure(home: Path, name: str) -> bool:
    with _failures_lock:
        items = failures(home)
        kept = [d for d in items if d.get("name") != name]
        if len(kept) == len(items):
            return False
        _write_failures(home, kept)
        return True
