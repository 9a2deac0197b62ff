"""Uploaded files: checked (PDF signature, size) and stored under a sanitized name that never replaces another
file (assistant/server.py's Backend then indexes them)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from arrival.errors import ArrivalError
from arrival.ingest.pdf import sha256_file

MAX_NAME_BYTES = 180
SAME_AS = "same content as "  # the Indexer's reason for a file whose twin is already indexed


class UploadError(ArrivalError):
    """An uploaded file was refused. `key` names the reason's text in assistant.i18n; `fmt` fills it."""

    def __init__(self, key: str, **fmt: object) -> None:
        from arrival.assistant.i18n import t

        super().__init__(t(key, "en", **fmt))
        self.key = key
        self.fmt = fmt


_DROP = re.compile(r'["`*<>?|:]')


def sanitize_filename(name: str) -> str:
    """A safe file name for an upload: its last path component, without control characters, path separators,
    shell/Windows-special characters or leading dots; accents and spaces kept; always ending in `.pdf`."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in name:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp") or ch.isspace():
            kept.append(" ")
        elif cat in ("Cf", "Cs", "Co", "Cn"):  # invisible format characters (e.g. RTL overrides), surrogates
            continue
        else:
            kept.append(ch)
    name = _DROP.sub("", "".join(kept))
    name = " ".join(name.split()).strip(". ")
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() != "pdf":
        stem = name
    stem = stem.strip(". ")
    raw = stem.encode("utf-8")[:MAX_NAME_BYTES]
    stem = raw.decode("utf-8", errors="ignore").rstrip(". ")
    return f"{stem or 'document'}.pdf"


def store_upload(src: Path, name: str, dest_dir: Path, max_bytes: int) -> tuple[Path, bool]:
    """Check an uploaded file and copy it into `dest_dir` under a sanitized name.

    Returns (stored path, created). A file of that name with the same content is reused (created=False); one
    with other content is never overwritten: the new file gets a "-2", "-3"... suffix instead.
    """
    try:
        size = src.stat().st_size
        with src.open("rb") as fh:
            head = fh.read(5)
    except OSError:
        raise UploadError("unreadable") from None
    if size > max_bytes:
        raise UploadError("too_big", mb=max_bytes >> 20)
    if head != b"%PDF-":
        raise UploadError("not_pdf")
    dest_dir.mkdir(parents=True, exist_ok=True)
    safe = sanitize_filename(name)
    stem = safe[: -len(".pdf")]
    digest = sha256_file(src)
    root = dest_dir.resolve()
    for i in range(1, 10_000):
        target = dest_dir / (safe if i == 1 else f"{stem}-{i}.pdf")
        if target.parent.resolve() != root or "/" in target.name or target.name.startswith("."):  # belt and braces
            raise UploadError("unreadable")
        try:
            out = target.open("xb")  # O_EXCL: never replaces a file, nor follows a planted symlink
        except FileExistsError:
            if target.is_file() and not target.is_symlink() and sha256_file(target) == digest:
                return target, False
            continue
        try:
            with out, src.open("rb") as fh:
                while block := fh.read(1 << 20):
                    out.write(block)
        except OSError:
            target.unlink(missing_ok=True)
            raise UploadError("unreadable") from None
        return target, True
    raise UploadError("unreadable")


@dataclass
class UploadResult:
    name: str  # the name the user gave
    status: str  # indexed | unchanged | failed
    reason: str = ""
    pages: int = 0
    chunks: int = 0
    stored: str = ""
    other: str = ""  # for reason "same_as": the file name of the document with the same content
