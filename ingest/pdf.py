"""Read a PDF with pypdf, page by page, into a Document with cleaned pages."""

from __future__ import annotations

import hashlib
import logging
import re
from itertools import pairwise
from pathlib import Path

from arrival.errors import IngestError
from arrival.ingest.clean import clean_pages, find_headings
from arrival.types import Document, Page

log = logging.getLogger(__name__)

NO_TEXT = "no extractable text: scanned? OCR is not enabled"
TOO_BIG_STREAM = "refused: a compressed stream inflates past the {limit} decompression limit (zip bomb?)"
_BAD_TITLES = re.compile(r"^(untitled|document\d*|microsoft word\b.*|.*\.(docx?|indd|pdf)|title)$", re.I)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _inflate_limit() -> str:
    """pypdf's cap on the output of one FlateDecode stream, for the refusal message."""
    try:
        from pypdf import get_configuration  # newer pypdf; older ones keep module constants

        limit = int(get_configuration().zlib_maximum_output_length)
    except (ImportError, AttributeError):
        from pypdf import filters

        limit = int(getattr(filters, "ZLIB_MAX_OUTPUT_LENGTH", 0))
    return f"{limit / 1e6:.0f} MB" if limit else "pypdf"


def _limit_reason(exc: Exception) -> str:
    """The reason for a file that trips one of pypdf's resource limits."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "decompress" in text.lower():
        return TOO_BIG_STREAM.format(limit=_inflate_limit())
    return f"refused: a pypdf safety limit was reached ({text[:160] or type(exc).__name__})"


GAP_LINES = 1.7  # a downward jump of this many lines inside a column is a break, not a wrapped line


def _baseline(cm: object, tm: object) -> float:
    """The y of a text piece on the page (text matrix through the current transformation matrix)."""
    c, t = list(cm), list(tm)  # type: ignore[call-overload]
    return float(t[4] * c[1] + t[5] * c[3] + c[5])


def _size(cm: object, tm: object, size: float) -> float:
    c, t = list(cm), list(tm)  # type: ignore[call-overload]
    return abs(float(size) * float(t[3] or 1.0) * float(c[3] or 1.0))


def with_gap_breaks(pieces: list[tuple[str, float, float]]) -> str:
    """pypdf's page text (the pieces its visitor sees, concatenated) with a blank line wherever the text jumps
    down by more than GAP_LINES times the page's usual line spacing at the same font size.

    Such a jump is a paragraph or box boundary, or lines pypdf cannot extract (text drawn as outlines in the French
    UN extracts): without the break the lines on either side read as one sentence ("… à gérer leur que la ville
    de Gwangju …")."""
    text_pieces = [(t, y, size) for t, y, size in pieces if t.strip()]
    steps = sorted(round(prev[1] - cur[1], 1) for prev, cur in pairwise(text_pieces)
                   if abs(prev[2] - cur[2]) <= 0.1 * max(cur[2], 1e-6) and 0 < prev[1] - cur[1] < 3 * cur[2])
    if not steps:
        return "".join(t for t, _, _ in pieces)
    line = steps[len(steps) // 2]
    out: list[str] = []
    prev: tuple[float, float] | None = None
    for t, y, size in pieces:
        if t.strip():
            if (prev is not None and abs(prev[1] - size) <= 0.1 * max(size, 1e-6)
                    and prev[0] - y > GAP_LINES * line and "".join(out[-2:]).endswith("\n")
                    and not "".join(out[-2:]).endswith("\n\n")):
                out.append("\n")
            prev = (y, size)
        out.append(t)
    return "".join(out)


class PdfLoader:
    """`load(path) -> Document`; raises IngestError naming the file and the reason."""

    def __init__(self, max_bytes: int = 200 << 20, max_pages: int = 5000, max_page_chars: int = 200_000):
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.max_page_chars = max_page_chars

    def check(self, path: Path) -> None:
        """Cheap content checks before parsing: exists, size, PDF signature."""
        name = str(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise IngestError(name, f"cannot read file: {exc.strerror or exc}") from None
        if size == 0:
            raise IngestError(name, "empty file (0 bytes)")
        if size > self.max_bytes:
            raise IngestError(name, f"file too large ({size / 2**20:.0f} MB > {self.max_bytes / 2**20:.0f} MB limit)")
        with path.open("rb") as fh:
            head = fh.read(1024)
        if b"%PDF-" not in head:
            raise IngestError(name, "not a PDF (no %PDF- signature at the start of the file)")

    def load(self, path: Path, sha256: str | None = None) -> Document:
        from pypdf import PdfReader
        from pypdf.errors import LimitReachedError, PyPdfError

        name = str(path)
        self.check(path)
        digest = sha256 or sha256_file(path)
        try:
            reader = PdfReader(path, strict=False)
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")
                except Exception as exc:  # pypdf raises several types for unsupported encryption
                    raise IngestError(name, f"encrypted PDF that cannot be opened: {exc}") from None
                if not ok:
                    raise IngestError(name, "encrypted PDF: a password is required")
            n = len(reader.pages)
            if n > self.max_pages:
                raise IngestError(name, f"too many pages ({n} > {self.max_pages} limit)")
            raw = [self._page_text(reader, i, name) for i in range(n)]
            meta_title = self._meta_title(reader)
        except IngestError:
            raise
        except LimitReachedError as exc:
            raise IngestError(name, _limit_reason(exc)) from None
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IngestError(name, f"cannot read PDF: {reason[:200]}") from None
        if n == 0:
            raise IngestError(name, "PDF has no pages")
        cleaned = clean_pages(raw)
        if not any(t.strip() for t in cleaned):
            raise IngestError(name, NO_TEXT)
        pages = tuple(Page(i + 1, r, c) for i, (r, c) in enumerate(zip(raw, cleaned, strict=True)))
        return Document(
            path=name,
            sha256=digest,
            title=meta_title or self._heading_title(pages) or path.stem,
            pages=pages,
            page_count=n,
        )

    def _page_text(self, reader: object, i: int, name: str) -> str:
        from pypdf.errors import LimitReachedError

        try:
            pieces: list[tuple[str, float, float]] = []
            reader.pages[i].extract_text(  # type: ignore[attr-defined]
                visitor_text=lambda t, cm, tm, font, size: pieces.append((t, _baseline(cm, tm), _size(cm, tm, size))))
            text = with_gap_breaks(pieces)
        except (LimitReachedError, MemoryError):
            raise  # a decompression bomb refuses the whole file (it is not "a page without text")
        except Exception as exc:  # one unreadable page must not lose the rest of the document
            log.warning("%s: page %d: text extraction failed: %s", name, i + 1, exc)
            return ""
        if len(text) > self.max_page_chars:
            log.warning("%s: page %d: text cut at %d characters", name, i + 1, self.max_page_chars)
            text = text[: self.max_page_chars]
        return text

    @staticmethod
    def _meta_title(reader: object) -> str:
        try:
            title = (reader.metadata or {}).get("/Title")  # type: ignore[attr-defined]
        except Exception:
            return ""
        title = " ".join(str(title or "").split())
        if len(title) < 4 or _BAD_TITLES.match(title):
            return ""
        return title[:200]

    @staticmethod
    def _heading_title(pages: tuple[Page, ...]) -> str:
        for page in pages[:2]:
            heads = find_headings(page.text)
            if heads:
                return heads[0][1][:200]
        return ""
