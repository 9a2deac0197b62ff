"""Sentence splitting that keeps exact character spans (quotes must be found verbatim in the page text)."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before whitespace and an
# opening capital, digit, bullet or quote; paragraph breaks and bullets always end one.
_END = re.compile(r"(?<=[.!?…])[\"'»”)\]]?\s+(?=[\"'«“(\[•\-–▪●]?\s?[A-ZÀ-ÖØ-Þ0-9])|\n+")
_ABBREV = re.compile(r"(?:\b(?:M|Mme|Dr|St|p|pp|no|n°|art|e\.g|i\.e|cf|etc|vol|fig|al|Mr|Mrs|Ms|Prof|env|ex)\.|"
                     r"\b[A-Z]\.)$")


_BULLETS = "-•▪●–—*·"


def split_sentences(text: str, min_chars: int = 25, max_chars: int = 600) -> list[tuple[int, int]]:
    """(start, end) spans of sentences in `text`, stripped of surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        soft = m.group(0).strip() == "" and "\n" not in m.group(0)
        if soft and _ABBREV.search(text[max(0, m.start() - 8) : m.start()]):
            continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        while s < e and (text[s].isspace() or text[s] in _BULLETS):
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e - s >= min_chars:
            while e - s > max_chars:  # very long "sentences" (tables, lists): cut at a space
                cut = text.rfind(" ", s, s + max_chars)
                cut = cut if cut > s + min_chars else s + max_chars
                out.append((s, cut))
                s = cut + 1
            if e - s >= min_chars:
                out.append((s, e))
    return out
