"""Character-level normalisation of page text (the first step of ingest/clean.py), and the character classes
that quote matching (ingest/match.py) shares with it."""

from __future__ import annotations

import re
import unicodedata


def _strip_class() -> str:
    """Regex class of what is deleted: format (Cf: soft hyphen, zero-width, bidi marks, BOM), surrogates,
    private use (Co) and control characters (Cc) except the newline and the tab (made a space later)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x10000):
        cat = unicodedata.category(chr(cp))
        if cat in ("Cf", "Cs", "Co") or (cat == "Cc" and cp not in (0x09, 0x0A)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    ranges += [(0xE0000, 0xE007F), (0xF0000, 0x10FFFF)]  # tag characters, supplementary private use
    return "".join(f"\\U{lo:08x}-\\U{hi:08x}" if lo != hi else f"\\U{lo:08x}" for lo, hi in ranges)


STRIP = re.compile(f"[{_strip_class()}]")
LINE_BREAKS = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")

_SOFT_HYPHEN_BREAK = re.compile(r"\u00ad[^\S\n]*\n[^\S\n]*")
# A private-use glyph at the start of a line is almost always a bullet drawn with a symbol font.
_PUA_BULLET = re.compile(r"^([^\S\n]*)[\ue000-\uf8ff]+(?=[^\S\n])", re.MULTILINE)
_SPACES = re.compile(r"[^\S\n]+")


def normalize_chars(text: str) -> str:
    """NFKC, unify line endings, drop soft hyphens / zero-width / control / private-use characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = LINE_BREAKS.sub("\n", unicodedata.normalize("NFKC", text))
    if "\u00ad" in text:
        text = _SOFT_HYPHEN_BREAK.sub("", text)
    text = _PUA_BULLET.sub(r"\1•", text)
    return STRIP.sub("", text)


def split_lines(text: str) -> list[str]:
    """Lines with inner whitespace collapsed and ends stripped ('' marks a blank line)."""
    return [_SPACES.sub(" ", line).strip() for line in text.split("\n")]


WHITESPACE = re.compile(r"\s+")
