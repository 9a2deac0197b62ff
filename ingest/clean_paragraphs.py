"""Re-joining a page's cleaned lines into paragraphs, list items, notes and headings (see `clean_pages` in
ingest/clean.py for the rules)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from arrival.ingest.clean_hyphens import Vocabulary, hyphen_join
from arrival.ingest.clean_patterns import BULLET, FUNCTION_WORDS, ROMAN, TERMINAL
from arrival.ingest.headings import is_caps, is_strong_heading

#: A line shorter than this share of the page's typical line width did not fill its column.
FULL_LINE_SHARE = 0.75
#: ... and this share when it ends a sentence: a paragraph's last line rarely fills the column.
FULL_SENTENCE_LINE_SHARE = 0.85

_NOTE_ROMAN = re.compile(rf"{ROMAN}(?:\s+(?=[A-ZÀ-ÖØ-Þ«“\"(\d])|$)")
_NOTE_DIGIT = re.compile(r"\d{1,3}\s+(?=[A-ZÀ-ÖØ-Þ«“\"(])")
_URL_TOKEN = re.compile(r"(?:https?://|www\.)\S*$", re.IGNORECASE)
_URL_CONT_END = ("/", "_", "=", "?", "&", "#", "~", "-", ":", ".")
_URL_EXTENSIONS = frozenset({"pdf", "htm", "html", "aspx", "php", "org", "int", "com", "net", "doc", "docx"})
_LAST_WORD = re.compile(r"(?<![^\W\d_])([^\W\d_]+)$")


def _is_note_start(line: str, prev: str | None, prev_kind: str, width: float) -> bool:
    if _NOTE_ROMAN.match(line):
        return True
    if _NOTE_DIGIT.match(line):
        if prev is None or prev_kind == "note":
            return True
        return bool(TERMINAL.search(prev)) or len(prev) < FULL_LINE_SHARE * width
    return False


def _start_kind(line: str, prev: str | None, prev_kind: str, width: float) -> str:
    if BULLET.match(line):
        return "list"
    if _is_note_start(line, prev, prev_kind, width):
        return "note"
    if is_strong_heading(line):
        return "head"
    return "para"


def _url_join(a: str, b: str) -> bool:
    """Does line b continue a URL broken at the end of line a?"""
    m = _URL_TOKEN.search(a[-300:])
    if not m or not b:
        return False
    first = b.split(" ", 1)[0]
    if not (first[:1].isalnum() or first[:1] in "/_#?&="):
        return False
    if a.endswith("."):
        token = first.rstrip(".,;:)").casefold()
        return first[:1].islower() and ("/" in first or "." in first.rstrip(".") or token in _URL_EXTENSIONS)
    if a.endswith(_URL_CONT_END):
        return first[:1].islower() or first[:1].isdecimal() or "/" in first or "." in first
    return False


def _ends_with_function_word(a: str) -> bool:
    if a.endswith((",", "(", "«", "“", "/", "&")):
        return True
    m = _LAST_WORD.search(a[-40:])
    return m is not None and m.group(1).casefold() in FUNCTION_WORDS


def _width(lines: Sequence[str]) -> float:
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return 1.0
    return float(lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))])


@dataclass
class _Block:
    kind: str
    pieces: list[str]
    last: str


def _title_line(line: str, nxt: str, full: float) -> bool:
    """A one-line title between a sentence end (or a block start) and a capitalised line."""
    if not line[:1].isupper() or not nxt[:1].isupper() or len(line) > 100:
        return False
    words = line.split()
    if len(words) > 10 or TERMINAL.search(line) or _ends_with_function_word(line):
        return False
    # a full line ending on a capital is probably a name running on ("United\nNations")
    return not (BULLET.match(nxt) is None and len(line) >= full and words[-1][:1].isupper())


def assemble(lines: Sequence[str], vocab: Vocabulary) -> str:
    width = _width(lines)
    full = FULL_LINE_SHARE * width
    full_sentence = FULL_SENTENCE_LINE_SHARE * width
    blocks: list[_Block] = []
    cur: _Block | None = None
    for n, line in enumerate(lines):
        if not line:
            cur = None  # blank line: paragraph break
            continue
        nxt = lines[n + 1] if n + 1 < len(lines) else ""
        if cur is None:
            prev = blocks[-1].last if blocks else None
            prev_kind = blocks[-1].kind if blocks else ""
            kind = _start_kind(line, prev, prev_kind, width)
            if kind == "para" and _title_line(line, nxt, full):
                kind = "head"
            cur = _Block(kind, [line], line)
            blocks.append(cur)
            continue
        a = cur.last
        sep: str | None
        if len(a) >= 2 and a[-1] in "-‐" and a[-2].isalnum() and line[:1].isalnum():
            sep = hyphen_join(a, line, vocab)
            if sep is not None:
                cur.pieces[-1] = cur.pieces[-1][:-1] + sep
                cur.pieces.append(line)
                cur.last = line
                continue
        if len(a) >= 2 and a[-1] in "–—" and a[-2].isalnum() and line[:1].isalnum():
            cur.pieces.append(line)  # "Belgium–\nMorocco"
            cur.last = line
            continue
        if _url_join("".join(cur.pieces[-4:]), line):
            cur.pieces.append(line)
            cur.last = line
            continue
        kind = _start_kind(line, a, cur.kind, width)
        if kind in ("list", "note"):
            sep = None
        elif cur.kind == "head":
            joinable = line[:1].islower() or (kind == "head" and is_caps(a) and is_caps(line))
            sep = " " if joinable and len(a) < 150 else None
        elif kind == "head" and not line[:1].islower():
            sep = None
        elif not line[:1].isupper():
            sep = " "  # lowercase, digit or punctuation: continuation
        elif TERMINAL.search(a) and _title_line(line, nxt, full):
            sep = None
            kind = "head"
        elif _ends_with_function_word(a) or len(a) >= (full_sentence if TERMINAL.search(a) else full):
            sep = " "
        else:
            sep = None  # a short line followed by a capital: end of paragraph / title / item
        if sep is None:
            if kind == "para" and _title_line(line, nxt, full):
                kind = "head"
            cur = _Block(kind, [line], line)
            blocks.append(cur)
        else:
            cur.pieces.append(sep)
            cur.pieces.append(line)
            cur.last = line
    out: list[str] = []
    prev_kind = ""
    for block in blocks:
        text = "".join(block.pieces).strip()
        if not text:
            continue
        if out:
            same = block.kind == prev_kind and block.kind in ("list", "note")
            out.append("\n" if same else "\n\n")
        out.append(text)
        prev_kind = block.kind
    return "".join(out)

