"""Section headings of a cleaned page: `find_headings` (used by the chunker to give each passage its nearest
heading) and the strong-heading test the paragraph builder uses."""

from __future__ import annotations

import re

from arrival.ingest.clean_patterns import BULLET, FUNCTION_WORDS, HAS_LETTER, SENTENCE_END, TERMINAL

__all__ = ["find_headings"]

#: Headings found by find_headings are at most this long.
MAX_HEADING_CHARS = 120

_KEYWORD_HEADING = re.compile(
    r"(?:objectives?|objectifs?|actions?|tools?|outils?|steps?|étapes?|etapes?|sections?|annex(?:es?)?"
    r"|chapters?|chapitres?|parts?|parties?|modules?|sdgs?|odds?)\s+(?:\d{1,3}|[ivxlc]{1,6})\b",
    re.IGNORECASE,
)
_NUMBERED_HEADING = re.compile(r"\d{1,2}(?:\.\d{1,2})+\.?\s+[A-ZÀ-ÖØ-Þ]")
_LIST_INTRO_TEXT = (
    "ci-dessous ci-après suivants suivantes suivant suivante notamment exemple below following include "
    "includes including example examples are is sont est"
)
_LIST_INTRO_WORDS = frozenset(_LIST_INTRO_TEXT.split())
_HEAD_EXCLUDE = re.compile(r"https?:|www\.|@|\.\s+[A-ZÀ-Þ]")


def is_caps(line: str) -> bool:
    if line[:1].islower():
        return False
    head = line[:200]
    upper = sum(map(str.isupper, head))
    lower = sum(map(str.islower, head))
    return upper + lower >= 3 and upper >= 0.9 * (upper + lower)


def is_strong_heading(line: str) -> bool:
    if len(line) > 150:
        return False
    if _KEYWORD_HEADING.match(line) and len(line) <= 80 and not line.endswith("."):
        return True
    if _NUMBERED_HEADING.match(line) and len(line) <= 100 and not SENTENCE_END.search(line):
        return True
    return is_caps(line) and len(line) <= 120


def _title_like(line: str) -> bool:
    words = line.split()
    n_words = sum(1 for w in words if any(c.isalnum() for c in w))
    # "Title: subtitle" may run longer than a plain title
    limit = 16 if ":" in line.rstrip(" :") else 12
    if not 1 <= n_words <= limit or len(line) > 110:
        return False
    first = line[0]
    if not first.isupper():
        return False
    if line[-1] in ".,;!?-–—(" or BULLET.match(line) or _HEAD_EXCLUDE.search(line):
        return False
    letters = sum(1 for c in line if c.isalpha())
    if letters < 0.6 * len(line.replace(" ", "")) or letters < 3:
        return False
    if line.endswith(":") and len(words) > 1:
        before_colon = (words[-2] if words[-1] == ":" else words[-1]).rstrip(":").casefold()
        if before_colon in _LIST_INTRO_WORDS:
            return False  # "... are presented below:" introduces a list, it is not a title
    last = words[-1].rstrip(":").casefold()
    return last not in FUNCTION_WORDS


def _is_body(para: str, title: str) -> bool:
    return len(para) >= 40 and len(para) > len(title)


def find_headings(text: str) -> list[tuple[int, str]]:
    """Lines of a (cleaned) page that look like section headings, as ``(offset, heading)``.

    ``text[offset:offset + len(heading)] == heading`` always holds.  Precision over recall: a line is a
    heading when it is at most 120 characters, not a sentence (no final ``. , ;``), not a URL, and
    either

    * "OBJECTIVE 15" / "Objectif 4" / "Step 2: ..." / "SDG 4: ..." / "Annex I" (keyword + number), or
    * numbered like "3.1 Title", or
    * ALL CAPS (4+ letters, at most 20 words), or
    * title-like (at most 12 words, 16 for "Title : subtitle"; capital initial; mostly letters; not
      ending on a function word nor on "below:" / "ci-dessous :"), standing alone as a paragraph after
      a finished paragraph (final punctuation), another heading or nothing, and followed by a longer
      paragraph (40+ characters) or by a sub-title and then such a paragraph.
    """
    if not isinstance(text, str) or not text:
        return []
    lines: list[tuple[int, str]] = []
    for m in re.finditer(r"[^\n]+", text):
        raw = m.group()
        stripped = raw.strip()
        lead = len(raw) - len(raw.lstrip())
        lines.append((m.start() + lead, stripped))
    found: list[tuple[int, str]] = []
    for i, (off, line) in enumerate(lines):
        if not line or len(line) > MAX_HEADING_CHARS or not HAS_LETTER.search(line):
            continue
        if line[-1] in ".,;" or _HEAD_EXCLUDE.search(line):
            continue
        alone_before = i == 0 or text.count("\n", lines[i - 1][0], off) >= 2 or not lines[i - 1][1]
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        alone_after = nxt is None or text.count("\n", off, nxt[0]) >= 2
        words = len(line.split())
        heading = False
        # a title follows a finished paragraph, another heading, or nothing
        prev_line = lines[i - 1][1] if i else ""
        after_break = (
            not prev_line
            or bool(found and found[-1][0] == lines[i - 1][0])
            or (TERMINAL.search(prev_line) is not None)
        )
        if words <= 12 and (
            _KEYWORD_HEADING.match(line) or (_NUMBERED_HEADING.match(line) and not SENTENCE_END.search(line))
        ):
            heading = True
        elif is_caps(line) and words <= 20 and sum(c.isalpha() for c in line) >= 4:
            heading = words > 1 or len(line) >= 6
        elif alone_before and alone_after and nxt is not None and _title_like(line) and after_break:
            # a title is followed by body text, or by a sub-title that is ("Questions clés : ..." /
            # "Difficultés rencontrées ..." / body)
            after = lines[i + 2][1] if i + 2 < len(lines) else ""
            heading = _is_body(nxt[1], line) or (
                _title_like(nxt[1]) and not _title_like(after) and _is_body(after, nxt[1])
            )
        if heading:
            found.append((off, line))
    return found
