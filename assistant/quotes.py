"""Quotable sentences of a retrieved passage, taken whole from the document's page text.

A chunk is cut by the splitter wherever its size ran out, so its first and last sentences are often partial.
Quotes are therefore taken from the page text around the chunk: a sentence that the chunk holds part of is
quoted whole, even where it runs past the chunk or onto the next page. A sentence is quotable when it reads as
a statement: not a question (lists of guiding questions are common in policy guidance), not a heading, a table
of contents line, a bibliography entry, a URL or a footnote reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from arrival.ingest.chunk import PAGE_JOIN
from arrival.ingest.sentences import split_sentences
from arrival.types import Hit

MAX_SENTENCE = 900  # longer "sentences" are tables or lists that lost their breaks: not quoted
MIN_WORDS = 7
_TERMINAL = (".", "!", "…", ";", ":", ".»", '."', ".”", ")", "»")
_URL = re.compile(r"https?://|www\.|\.(?:org|int|com|pdf)\b/?", re.IGNORECASE)
_BIBLIO = re.compile(
    r"\bet al\.|\bAvailable (?:at|from)\b|\bDisponible (?:à|sur|en)\b|\bRetrieved\b|\bAccessed\b|\bConsulté\b|"
    r"\bISBN\b|\bdoi:|\bVol\.\s*\d|\bpp?\.\s*\d|\(\s*(?:19|20)\d\d\s*\)\.|^\s*(?:Source|Sources|Note|Notes)\s*:",
    re.IGNORECASE)
_FOOTNOTE_START = re.compile(r"^\s*(?:\d{1,3}|[ivx]{1,5})\s+(?=[A-ZÀ-Þ«“\"])")
_TOC = re.compile(r"\.{4,}|…{2,}|\s\d{1,3}\s*$")
_CITED_WORK = re.compile(r"\((?:n\.\s?d\.|[^()]{0,60}?(?:19|20)\d\d[a-z]?)\)\s*[.,;]?\s*$"
                         r"|,\s*(?:\w+\s+)?(?:19|20)\d\d\s*\.?\s*$|^\s*\[")
# a sentence that ends by citing its source, "... as valid proof of ID” (National Immigration Law Center, 2015).", is
# a statement; a reference list entry ends with its year in parentheses without the comma ("Smith, J. (2015).")
_IN_TEXT_CITATION = re.compile(r"(?<=\S)\s*\([^()]{3,60}?,\s*(?:19|20)\d\d[a-z]?\)\s*\.\s*$")
_INTERROGATIVE = re.compile(
    r"^\s*(?:quels?|quelles?|comment|pourquoi|combien|en quoi|dans quelle mesure|est-ce|existe-t-il|qui|où|"
    r"(?:de|à|par|sur|avec|dans|pour|selon|en) quel(?:le)?s? |"
    r"what|how|why|which|who|where|when|to what extent|in what ways?|is there|are there|does|do|can|should|has|"
    r"have)\b", re.IGNORECASE)
# a French question by its inverted subject ("... peuvent-ils éclairer ...", "a-t-elle"), whatever its first word
_INVERSION = re.compile(r"\b[^\W\d_]+-(?:t-(?:il|elle|on)|ils?|elles?)\b|"
                        r"\b(?:peut|doit|faut|sait|va|pourrait|devrait|faudrait)-on\b", re.IGNORECASE)  # not "hands-on"
# a note marker glued to the end of a sentence ("... de retraite.xxiii À Castelfiorentino"), or a note that starts
# with its number ("x Le Conseil des maires ..."): the sentence ends after the marker; a note's number is not quoted
_NOTE_END = re.compile(r"(?<=[.!?»”)])(?:[ivxlc]{1,6}|\d{1,3})(?=\s+[A-ZÀ-Þ«“])")
_NOTE_TAIL = re.compile(r"(?<=[.!?»”)])(?:[ivxlc]{1,6}|\d{1,3})\s*$")
_NOTE_START = re.compile(r"^(?:[ivxlc]{1,6}|\d{1,3})\s+(?=[A-ZÀ-Þ«“])")
_LIST_MARK = re.compile(r"^\s*(?:[a-z]|[ivx]{1,4}|\d{1,2})[.)]\s+")
_DANGLING = frozenset((
    "le la les l leur leurs de des du d à au aux et ou un une son sa ses ce cette ces en par pour sur dans avec que "
    "qui dont ne se sont est a the of to and or a an their its his her in on for with by from that which as at is "
    "are be").split())
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # offsets in the context text
    end: int
    page: int  # page the sentence starts on
    page_end: int  # page it ends on
    in_hit: float  # share of its characters inside the retrieved passage


@dataclass(frozen=True)
class Context:
    """The text of a hit's pages (and the next one), joined as the chunker joins them, and where the hit is."""

    text: str
    starts: tuple[int, ...]
    numbers: tuple[int, ...]
    hit_start: int
    hit_end: int

    def page_at(self, offset: int) -> int:
        i = 0
        for j, s in enumerate(self.starts):
            if s <= offset:
                i = j
        return self.numbers[i]


def context(hit: Hit, page_text: object) -> Context | None:
    """`page_text(doc_id, number) -> str | None` (a Snapshot method). None when the hit cannot be placed."""
    parts: list[str] = []
    starts: list[int] = []
    numbers: list[int] = []
    pos = 0
    for number in range(hit.page, max(hit.page, hit.page_end) + 2):
        text = page_text(hit.doc_id, number)  # type: ignore[operator]
        if text is None or not text.strip():
            if number <= hit.page_end:
                continue
            break
        if parts:
            parts.append(PAGE_JOIN)
            pos += len(PAGE_JOIN)
        starts.append(pos)
        numbers.append(number)
        parts.append(text)
        pos += len(text)
    if not numbers or numbers[0] != hit.page:
        return None
    joined = "".join(parts)
    start = hit.start
    if joined[start:start + len(hit.text)] != hit.text:  # offsets from another cleaning: find the text instead
        found = joined.find(hit.text)
        if found < 0:
            return None
        start = found
    return Context(joined, tuple(starts), tuple(numbers), start, start + len(hit.text))


def sentences(ctx: Context) -> list[Sentence]:
    """The whole sentences that overlap the hit, in order. A sentence cut by a page break (the page ends without
    a full stop and the next begins in lower case) is joined across it."""
    spans: list[tuple[int, int]] = []
    for a, b in split_sentences(ctx.text, min_chars=1, max_chars=10_000):
        for m in _NOTE_END.finditer(ctx.text, a, b):
            spans.append((a, m.start()))  # the note marker is not part of the quote
            a = m.end()
            while a < b and ctx.text[a].isspace():
                a += 1
        note = _NOTE_START.match(ctx.text, a, b)
        end = _NOTE_TAIL.search(ctx.text, a, b)
        spans.append((note.end() if note else a, end.start() if end else b))
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged:
            pa, pb = merged[-1]
            gap = ctx.text[pb:a]
            if PAGE_JOIN in gap and not ctx.text[pa:pb].rstrip().endswith(_TERMINAL) and ctx.text[a:a + 1].islower():
                merged[-1] = (pa, b)
                continue
        merged.append((a, b))
    out: list[Sentence] = []
    for a, b in merged:
        overlap = min(b, ctx.hit_end) - max(a, ctx.hit_start)
        if overlap <= 0:
            continue
        if overlap < min(b - a, 40) and a < ctx.hit_start:  # only its tail opens the passage
            continue
        out.append(Sentence(ctx.text[a:b], a, b, ctx.page_at(a), ctx.page_at(max(a, b - 1)),
                            overlap / max(1, b - a)))
    return out


def quotable(text: str) -> bool:
    """A statement worth quoting as an answer (see the module docstring)."""
    s = text.strip()
    if not s or len(s) > MAX_SENTENCE or s.endswith("?") or "?" in s[-3:]:
        return False
    words = _WORD.findall(s)
    if len(words) < MIN_WORDS:
        return False
    if _URL.search(s) or _BIBLIO.search(s) or _TOC.search(s) or _CITED_WORK.search(_IN_TEXT_CITATION.sub(".", s)):
        return False
    if _FOOTNOTE_START.match(s) and not s.rstrip().endswith((".", "!", "…")):
        return False
    body = _LIST_MARK.sub("", s, count=1)
    # a guiding question that lost its "?"; a fragment
    if _INTERROGATIVE.match(body) or _INVERSION.search(body) or body[:1].islower():
        return False
    letters = len(_LETTER.findall(s))
    if letters < 0.6 * len(s.replace(" ", "")):  # tables, figures, lists of numbers
        return False
    caps = sum(1 for w in words if w[:1].isupper()) / len(words)
    ends = s.endswith((".", "!", "…", ".»", '."', ".”", ";", ":"))
    if not ends and words[-1].casefold() in _DANGLING:  # stops on "leur", "de", "the": the rest is missing
        return False
    # a heading, a title or a reference: mostly capitalised words, or many and no sentence ending
    return caps <= 0.6 and (ends or caps <= 0.35)
