"""Page-text cleaning: raw ``pypdf`` page text -> readable, searchable page text.

Three pure functions, standard library only:

* :func:`clean_pages` cleans all pages of ONE document at once.  It needs the whole document because
  running headers/footers are found by repetition across pages, and because line-end hyphenation is
  resolved against the document's own vocabulary.
* :func:`normalize_for_match` folds text for quote matching (case, apostrophes, quotes, dashes,
  whitespace, French spacing).
* :func:`find_headings` finds lines of a cleaned page that look like section headings.

Nothing here raises on odd input, prints, or does anything slower than roughly linear in the input
(every regular expression is anchored or bounded; per-line work on very long lines is capped).
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["clean_pages", "find_headings", "normalize_for_match"]

# --------------------------------------------------------------------------------------------------
# Tunables (chosen by reading the real corpus; the rules are described in clean_pages' docstring)
# --------------------------------------------------------------------------------------------------

#: Lines looked at at the top and at the bottom of a page when hunting for running headers/footers.
EDGE_LINES = 3
#: A line is a running header/footer when it sits in the edge zone of at least this share of the
#: (distinct, non-empty) pages of the document ...
RUNNING_MIN_SHARE = 0.4
#: ... and of at least this many pages (2 for documents of 2-4 distinct pages, see _running_threshold).
RUNNING_MIN_PAGES = 3
#: Running keys at least this long also count when glued to another edge line ("servicesExtract from").
GLUE_MIN_KEY = 8
#: A line shorter than this share of the page's typical line width did not fill its column.
FULL_LINE_SHARE = 0.75
#: ... and this share when it ends a sentence: a paragraph's last line rarely fills the column.
FULL_SENTENCE_LINE_SHARE = 0.85
#: Lines longer than this are never compared against header keys (headers are short).
MAX_FURNITURE_LINE = 400
#: Headings found by find_headings are at most this long.
MAX_HEADING_CHARS = 120

# --------------------------------------------------------------------------------------------------
# Character-level normalisation
# --------------------------------------------------------------------------------------------------


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


_STRIP = re.compile(f"[{_strip_class()}]")
_LINE_BREAKS = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")

_SOFT_HYPHEN_BREAK = re.compile(r"\u00ad[^\S\n]*\n[^\S\n]*")
# A private-use glyph at the start of a line is almost always a bullet drawn with a symbol font.
_PUA_BULLET = re.compile(r"^([^\S\n]*)[\ue000-\uf8ff]+(?=[^\S\n])", re.MULTILINE)
_SPACES = re.compile(r"[^\S\n]+")


def _normalize_chars(text: str) -> str:
    """NFKC, unify line endings, drop soft hyphens / zero-width / control / private-use characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFKC", text))
    if "\u00ad" in text:
        text = _SOFT_HYPHEN_BREAK.sub("", text)
    text = _PUA_BULLET.sub(r"\1•", text)
    return _STRIP.sub("", text)


def _split_lines(text: str) -> list[str]:
    """Lines with inner whitespace collapsed and ends stripped ('' marks a blank line)."""
    return [_SPACES.sub(" ", line).strip() for line in text.split("\n")]


# --------------------------------------------------------------------------------------------------
# Running headers / footers / page numbers
# --------------------------------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"\d+")
_WHITESPACE = re.compile(r"\s+")
_HAS_LETTER = re.compile(r"[^\W\d_]")


def _line_key(line: str) -> str:
    """Comparison key: case-folded, digit runs -> '#', all whitespace removed."""
    return _WHITESPACE.sub("", _DIGIT_RUN.sub("#", line.casefold()))


def _variant_key(line: str) -> str:
    """Case-sensitive twin of _line_key: tells a running header from a same-words title in capitals."""
    return _WHITESPACE.sub("", _DIGIT_RUN.sub("#", line))


def _key_with_map(line: str) -> tuple[str, list[int], list[int]]:
    """Like _line_key, plus for every key character the first and last index of its source characters."""
    out: list[str] = []
    first: list[int] = []
    last: list[int] = []
    prev_digit = False
    for i, ch in enumerate(line):
        if ch.isspace():
            prev_digit = False
            continue
        if ch.isdecimal():
            if prev_digit:
                last[-1] = i
            else:
                out.append("#")
                first.append(i)
                last.append(i)
            prev_digit = True
            continue
        prev_digit = False
        for piece in ch.casefold():
            out.append(piece)
            first.append(i)
            last.append(i)
    return "".join(out), first, last


_SEP = r"[-–—|·•]"
_PAGE_NUMBER_BARE = re.compile(r"[1-9]\d{0,2}")
_PAGE_NUMBER_DECORATED = re.compile(
    rf"{_SEP}\s*\d{{1,4}}\s*{_SEP}?"
    rf"|\d{{1,4}}\s*{_SEP}"
    r"|(?:page|p\.|pg\.?|seite|página|pagina)\s*\d{1,4}(?:\s*(?:/|of|sur|de|sobre|von)\s*\d{1,4})?"
    r"|\d{1,4}\s*/\s*\d{1,4}",
    re.IGNORECASE,
)
_PAGE_NUMBER_TITLED = re.compile(
    r"(?P<n1>\d{1,4})(?:\s*[-–—]\s+|\s*[|·•]\s*)(?P<t1>[^\d\s].{0,80})"
    r"|(?P<t2>[^\d\s].{0,80}?)(?:\s+[-–—]\s*|\s*[|·•]\s*)(?P<n2>\d{1,4})"
)
_SENTENCE_END = re.compile(r"[.!?;,]$")


def _page_number_kind(line: str) -> str:
    """'bare' ("12"), 'decorated' ("- 12 -", "Page 12", "12 / 30"), 'titled' ("12 | Title") or ''."""
    if len(line) > 100:
        return ""
    if _PAGE_NUMBER_BARE.fullmatch(line):
        return "bare"
    if _PAGE_NUMBER_DECORATED.fullmatch(line):
        return "decorated"
    m = _PAGE_NUMBER_TITLED.fullmatch(line)
    if m:
        title = (m.group("t1") or m.group("t2") or "").strip()
        if _HAS_LETTER.search(title) and not _SENTENCE_END.search(title) and len(title.split()) <= 8:
            return "titled"
    return ""


def _bare_number(line: str) -> int:
    try:
        return int(line)
    except ValueError:
        return -1


def _edge_indices(lines: Sequence[str]) -> tuple[list[int], set[int]]:
    nonempty = [i for i, line in enumerate(lines) if line]
    edge = set(nonempty[:EDGE_LINES]) | set(nonempty[-EDGE_LINES:])
    return nonempty, edge


def _running_threshold(n_distinct: int) -> int:
    min_pages = 2 if n_distinct <= 4 else RUNNING_MIN_PAGES
    return max(min_pages, math.ceil(RUNNING_MIN_SHARE * n_distinct))


def _decomposes(key: str, parts: Sequence[str]) -> bool:
    """True when key is a concatenation of running keys (e.g. a header glued to a footer)."""
    if not key or len(key) > MAX_FURNITURE_LINE or not parts:
        return False
    if not any(key.startswith(part) for part in parts) or not any(key.endswith(part) for part in parts):
        return False
    n = len(key)
    reach = [False] * (n + 1)
    reach[0] = True
    for pos in range(n):
        if not reach[pos]:
            continue
        for part in parts:
            if key.startswith(part, pos):
                reach[pos + len(part)] = True
    return reach[n]


def _glued(line: str, left: int, right: int) -> bool:
    """Do line[left] and line[right] touch at a glue boundary ("servicesExtract", "15d.")?

    pypdf sometimes runs a header into the next text without a space; such a boundary shows as a
    capital after a non-capital, or a letter after a digit.  Anything else is one word.
    """
    if right != left + 1:
        return False  # whitespace in between: a normal word boundary, not an extraction artefact
    a, b = line[left], line[right]
    if b.isupper():
        return not a.isupper()
    return a.isdecimal() and b.isalpha()


def _strip_glued(line: str, running: Sequence[str]) -> str:
    """Remove running headers glued to the start or the end of a line ("› GCM OBJECTIVE 15d. Establish")."""
    for _ in range(4):
        if not line or len(line) > MAX_FURNITURE_LINE:
            return line
        quick = _line_key(line)
        if not any(quick.startswith(r) or quick.endswith(r) for r in running):
            return line
        key, first, last = _key_with_map(line)
        changed = False
        prefixes = [r for r in running if len(r) >= 6 and len(r) < len(key) and key.startswith(r)]
        if prefixes:
            r = max(prefixes, key=len)
            end = last[len(r) - 1]
            nxt = first[len(r)]
            if _glued(line, end, nxt):
                line = line[nxt:].strip()
                changed = True
        if not changed:
            suffixes = [r for r in running if len(r) >= 6 and len(r) < len(key) and key.endswith(r)]
            if suffixes:
                r = max(suffixes, key=len)
                start = first[len(key) - len(r)]
                prev = last[len(key) - len(r) - 1]
                if _glued(line, prev, start):
                    line = line[:start].strip()
                    changed = True
        if not changed:
            return line
        if _decomposes(_line_key(line), running):
            return ""
    return line


def _continuations(
    distinct: Sequence[int],
    keys: Sequence[Sequence[str]],
    edges: Sequence[tuple[list[int], set[int]]],
    repeated: set[str],
) -> dict[str, list[str]]:
    """For each edge key: the first other text met walking from it towards the middle of the page.

    Lines that are themselves repeated, and lines without letters (page numbers), are walked over.
    A running header is followed by different text on every page; a passage that is merely repeated
    (the UN extracts reprint some boxes on consecutive pages) is followed by the same text.
    """
    out: dict[str, list[str]] = {}
    for p in distinct:
        nonempty = edges[p][0]
        top = set(nonempty[:EDGE_LINES])
        for pos, i in enumerate(nonempty):
            if i not in edges[p][1] or not keys[p][i]:
                continue
            step = 1 if i in top else -1
            j = pos + step
            follow = ""
            while 0 <= j < len(nonempty):
                k = keys[p][nonempty[j]]
                if k and k not in repeated and _HAS_LETTER.search(k):
                    follow = k
                    break
                j += step
            out.setdefault(keys[p][i], []).append(follow)
    return out


_BREADCRUMB_ARROWS = re.compile(r"(?:›\s*){2,}")
_GLUE_POINT = re.compile(r"(?<=[a-zà-öø-ÿ0-9)])(?=[A-ZÀ-ÖØ-Þ])")
_NUMBERED_TAB = re.compile(r"›\s*[A-ZÀ-ÖØ-Þ]{2,}(?: [A-ZÀ-ÖØ-Þ]{2,}){1,4} \d{1,3}(?=$|[^\s\d.,:])")


def _strip_breadcrumb(line: str) -> str:
    """Drop a navigation tab of the UN guidance, or cut it off the text it is glued to.

    "› › › Design" -> ""; "› › › ConceptionOUTIL 7" -> "OUTIL 7"; "› GCM OBJECTIVE 4d. Ensure" ->
    "d. Ensure"; "› Kick-offGUIDING QUESTIONS" -> "GUIDING QUESTIONS".  A single "›" followed by
    ordinary text is a bullet and is left alone.
    """
    m = _BREADCRUMB_ARROWS.match(line)
    if m:
        rest = line[m.end() :]
        glue = _GLUE_POINT.search(rest[:80])
        if glue and len(rest[: glue.start()].split()) <= 5:
            return rest[glue.start() :].strip()
        if len(rest.split()) <= 6 and not _TERMINAL.search(rest):
            return ""
        return line
    m = _NUMBERED_TAB.match(line)
    if m:
        return line[m.end() :].strip()
    rest = line[1:]
    glue = _GLUE_POINT.search(rest[:40])
    if glue and len(rest[: glue.start()].split()) <= 3 and rest[glue.start() : glue.start() + 2].isupper():
        return rest[glue.start() :].strip()
    return line


def _is_breadcrumb(key: str) -> bool:
    return key.startswith("›") and len(key) <= 40


def _contains_at_end(key: str, cand: str) -> bool:
    """key is cand, or starts/ends with it (a header glued to another line); breadcrumbs don't count."""
    if not key:
        return False
    if key == cand:
        return True
    return not key.startswith("›") and (key.startswith(cand) or key.endswith(cand))


SHINGLE = 20


def _furniture_shingles(
    distinct: Sequence[int],
    keys: Sequence[Sequence[str]],
    edges: Sequence[tuple[list[int], set[int]]],
    running: Sequence[str],
) -> set[str]:
    """20-character windows of the running lines, alone and as they follow each other on a page."""
    texts: set[str] = {r for r in running if not r.startswith("›")}
    for p in distinct:
        nonempty = edges[p][0]
        for zone in (nonempty[:EDGE_LINES], nonempty[-EDGE_LINES:]):
            run: list[str] = []
            for i in [*zone, -1]:
                k = keys[p][i] if i >= 0 else ""
                if k and (k in running or _decomposes(k, running)) and not k.startswith("›"):
                    run.append(k)
                    continue
                if len(run) > 1:
                    texts.add("".join(run))
                run = []
    return {t[j : j + SHINGLE] for t in texts for j in range(len(t) - SHINGLE + 1)}


def _boundary_ok(line: str, before: int, after: int) -> bool:
    """May a piece be cut between line[before] and line[after]? (a space, or a glue boundary)."""
    return after > before + 1 or _glued(line, before, after)


def _strip_furniture_pieces(line: str, shingles: set[str]) -> str:
    """Cut furniture text that is split differently on this page ("Orderly and" / "Regular Migration").

    The key characters covered by 20-character windows of running lines are found; a covered run that
    is the whole line drops it; a covered run at the start or the end, at least half the line and cut
    at a word or glue boundary, is cut off.
    """
    if not shingles or len(line) > MAX_FURNITURE_LINE:
        return line
    quick = _line_key(line)
    if not any(quick[j : j + SHINGLE] in shingles for j in range(len(quick) - SHINGLE + 1)):
        return line
    key, first, last = _key_with_map(line)
    n = len(key)
    if n < SHINGLE:
        return line
    covered = [False] * n
    hit = False
    for j in range(n - SHINGLE + 1):
        if key[j : j + SHINGLE] in shingles:
            hit = True
            for t in range(j, j + SHINGLE):
                covered[t] = True
    if not hit:
        return line
    if all(covered):
        return ""
    head = 0
    while head < n and covered[head]:
        head += 1
    tail = n
    while tail > 0 and covered[tail - 1]:
        tail -= 1
    if n - tail >= max(SHINGLE, n // 2) and _boundary_ok(line, last[tail - 1], first[tail]):
        rest = line[: first[tail]].strip()
        return rest if _HAS_LETTER.search(rest) else line
    if head >= max(SHINGLE, n // 2) and _boundary_ok(line, last[head - 1], first[head]):
        rest = line[first[head] :].strip()
        return rest if _HAS_LETTER.search(rest) else line
    return line


def _strip_furniture(pages: list[list[str]]) -> list[list[str]]:
    """Drop running headers/footers and page numbers from every page of one document."""
    keys = [[_line_key(line) if 0 < len(line) <= MAX_FURNITURE_LINE else "" for line in lines] for lines in pages]
    edges = [_edge_indices(lines) for lines in pages]

    # Distinct non-empty pages only: duplicated pages (the UN extracts repeat some) must not vote twice.
    seen: set[str] = set()
    distinct: list[int] = []
    for p, lines in enumerate(pages):
        nonempty = edges[p][0]
        if not nonempty:
            continue
        sig = "\n".join(lines[i] for i in nonempty)
        if sig not in seen:
            seen.add(sig)
            distinct.append(p)
    n_distinct = len(distinct)

    running: set[str] = set()
    titled_keys: set[str] = set()
    variants: Counter[str] = Counter()
    if n_distinct >= 2:
        exact: Counter[str] = Counter()
        titled: Counter[str] = Counter()
        crowded: set[str] = set()  # keys seen 3+ times on one page: body text, not a header
        for p in distinct:
            page_keys = {keys[p][i] for i in edges[p][1] if keys[p][i]}
            exact.update(k for k in page_keys if _HAS_LETTER.search(k))
            per_page = Counter(keys[p])
            crowded.update(k for k in page_keys if per_page[k] > 2)
            variants.update({_variant_key(pages[p][i]) for i in edges[p][1] if keys[p][i] in page_keys})
            titled.update(keys[p][i] for i in edges[p][1] if _page_number_kind(pages[p][i]) == "titled")
        titled_keys = {k for k, c in titled.items() if c >= 2}
        threshold = _running_threshold(n_distinct)
        candidates = [k for k, c in exact.items() if (c >= 2 or _is_breadcrumb(k)) and k not in crowded]
        continuation = _continuations(distinct, keys, edges, {k for k, c in exact.items() if c >= 2})
        for cand in candidates:
            conts = continuation.get(cand, [])
            if len(conts) >= 2 and len(set(conts)) == 1 and conts[0]:
                continue  # the same text follows it everywhere: a repeated passage, not a header
            if _is_breadcrumb(cand):
                # "› › › Design", "› GCM OBJECTIVE 15": the UN guidance's tabs, often glued to the next line
                glued = sum(1 for p in distinct if any(keys[p][i].startswith(cand) for i in edges[p][1] if keys[p][i]))
                if glued >= 2:
                    running.add(cand)
                continue
            count = exact[cand]
            if len(cand) >= GLUE_MIN_KEY and count < threshold:
                count = 0
                for p in distinct:
                    if any(_contains_at_end(keys[p][i], cand) for i in edges[p][1]):
                        count += 1
            if count >= threshold:
                running.add(cand)
        running -= titled_keys
        # Sanity: furniture frames text.  If it would swallow every line of most pages, the "repeats"
        # are the text itself (a form, a template, pages differing only in numbers): keep everything.
        swallowed = sum(
            1 for p in distinct if all(keys[p][i] in running for i in edges[p][0] if _HAS_LETTER.search(pages[p][i]))
        )
        if running and swallowed * 2 > n_distinct:
            running = set()

    # Bare page numbers: accept those whose value tracks the page index on many pages.
    offsets: Counter[int] = Counter()
    for p in distinct:
        offsets.update({_bare_number(pages[p][i]) - p for i in edges[p][1] if _page_number_kind(pages[p][i]) == "bare"})
    min_offset_votes = max(2, math.ceil(0.3 * n_distinct))
    good_offsets = {o for o, c in offsets.items() if c >= min_offset_votes}

    running_list = sorted(running, key=len, reverse=True)
    shingles = _furniture_shingles(distinct, keys, edges, running_list) if running_list else set()
    out: list[list[str]] = []
    for p, lines in enumerate(pages):
        nonempty, edge = edges[p]
        first_last = {nonempty[0], nonempty[-1]} if nonempty else set()
        kept: list[str] = []
        for i, line in enumerate(lines):
            if not line:
                kept.append(line)
                continue
            key = keys[p][i]
            if line.startswith("›"):
                stripped = _strip_breadcrumb(line)
                if not stripped:
                    continue
                if stripped != line:
                    line, key = stripped, _line_key(stripped)
            if key and key in running and (variants[_variant_key(line)] >= 2 or key.startswith("›")):
                continue  # (a one-off capitalisation, "MANAGE BORDERS" under "Manage borders", is a title)
            if i in edge:
                kind = _page_number_kind(line)
                if kind == "bare" and (_bare_number(line) - p in good_offsets or i in first_last):
                    continue
                if kind == "decorated":
                    continue
                if kind == "titled" and (key in titled_keys or i in first_last):
                    continue
            if key and key not in running and running_list and _decomposes(key, running_list):
                continue
            if i in edge and running_list:
                line = _strip_glued(_strip_furniture_pieces(line, shingles), running_list)
                if not line:
                    continue
            kept.append(line)
        out.append(kept)
    return out


# --------------------------------------------------------------------------------------------------
# Document vocabulary (for line-end hyphenation)
# --------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_LINE_END_FRAGMENT = re.compile(r"(?<![\w-])[^\W\d_]+(?:-[^\W\d_]+)*-(?:\n|$)")


@dataclass
class _Vocabulary:
    plain: set[str] = field(default_factory=set)
    hyphenated: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, pages: Sequence[Sequence[str]]) -> _Vocabulary:
        vocab = cls()
        text = "\n".join("\n".join(lines) for lines in pages)
        # the first half of a line-end break ("inter-" + newline) is not evidence of anything
        words = set(_WORD.findall(_LINE_END_FRAGMENT.sub("\n", text)))
        for w in {w.casefold() for w in words}:
            if "-" in w:
                parts = w.split("-")
                vocab.hyphenated.add(w)
                for a, b in itertools.pairwise(parts):
                    vocab.hyphenated.add(f"{a}-{b}")
            else:
                vocab.plain.add(w)
        return vocab


# --------------------------------------------------------------------------------------------------
# Re-joining lines into paragraphs
# --------------------------------------------------------------------------------------------------

_BULLET = re.compile(
    r"(?:[•▪■●◦‣∙○□▫➢➤►▶✓✔❖◆◇*›]|[-–—](?=\s))"
    r"|(?:\d{1,2}(?:\.\d{1,2})*[.)]|\d{1,2}\.\d{1,2}[a-z]?:|\d{1,2}\.[a-z]:|\(\d{1,2}\))(?=\s|$)"
    r"|(?:\(?[a-z]\)|[a-z]\.|\(?[ivx]{1,4}\))(?=\s|$)"
)
_ROMAN = r"(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_NOTE_ROMAN = re.compile(rf"{_ROMAN}(?:\s+(?=[A-ZÀ-ÖØ-Þ«“\"(\d])|$)")
_NOTE_DIGIT = re.compile(r"\d{1,3}\s+(?=[A-ZÀ-ÖØ-Þ«“\"(])")
_KEYWORD_HEADING = re.compile(
    r"(?:objectives?|objectifs?|actions?|tools?|outils?|steps?|étapes?|etapes?|sections?|annex(?:es?)?"
    r"|chapters?|chapitres?|parts?|parties?|modules?|sdgs?|odds?)\s+(?:\d{1,3}|[ivxlc]{1,6})\b",
    re.IGNORECASE,
)
_NUMBERED_HEADING = re.compile(r"\d{1,2}(?:\.\d{1,2})+\.?\s+[A-ZÀ-ÖØ-Þ]")
_TERMINAL = re.compile(rf"[.!?…:;»”\"')\]](?:{_ROMAN}|\d{{1,3}})?$")
_URL_TOKEN = re.compile(r"(?:https?://|www\.)\S*$", re.IGNORECASE)
_URL_CONT_END = ("/", "_", "=", "?", "&", "#", "~", "-", ":", ".")
_URL_EXTENSIONS = frozenset({"pdf", "htm", "html", "aspx", "php", "org", "int", "com", "net", "doc", "docx"})
_FUNCTION_WORDS_TEXT = (
    "a an the of to in for on and or nor with by at from as into such that which their its our is are "
    "be not including between than per via this these those through within across against about "
    "le la les l un une des du de d et ou à au aux en par pour sur dans avec que qui ce cette ces leur "
    "leurs son sa ses est sont ne pas entre selon vers chez dont"
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
_SUSPENDED = frozenset({"and", "or", "nor", "to", "et", "ou", "à"})
_KEEP_HYPHEN_PREFIXES = frozenset({"non", "self", "cross", "well", "ex", "quasi", "multi", "half", "anti", "semi"})
_TRAILING_WORD = re.compile(r"([^\W\d_]+(?:-[^\W\d_]+)*)-$")
_LEADING_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_LAST_WORD = re.compile(r"(?<![^\W\d_])([^\W\d_]+)$")


def _is_caps(line: str) -> bool:
    if line[:1].islower():
        return False
    head = line[:200]
    upper = sum(map(str.isupper, head))
    lower = sum(map(str.islower, head))
    return upper + lower >= 3 and upper >= 0.9 * (upper + lower)


def _is_strong_heading(line: str) -> bool:
    if len(line) > 150:
        return False
    if _KEYWORD_HEADING.match(line) and len(line) <= 80 and not line.endswith("."):
        return True
    if _NUMBERED_HEADING.match(line) and len(line) <= 100 and not _SENTENCE_END.search(line):
        return True
    return _is_caps(line) and len(line) <= 120


def _is_note_start(line: str, prev: str | None, prev_kind: str, width: float) -> bool:
    if _NOTE_ROMAN.match(line):
        return True
    if _NOTE_DIGIT.match(line):
        if prev is None or prev_kind == "note":
            return True
        return bool(_TERMINAL.search(prev)) or len(prev) < FULL_LINE_SHARE * width
    return False


def _start_kind(line: str, prev: str | None, prev_kind: str, width: float) -> str:
    if _BULLET.match(line):
        return "list"
    if _is_note_start(line, prev, prev_kind, width):
        return "note"
    if _is_strong_heading(line):
        return "head"
    return "para"


def _hyphen_join(a: str, b: str, vocab: _Vocabulary) -> str | None:
    """How to glue line a (ending in a hyphen) to line b: '' drop hyphen, '-' keep, '- ' suspended."""
    tail = _TRAILING_WORD.search(a[-200:])
    head = _LEADING_WORD.match(b)
    if b[:1].isdecimal():
        return "-"
    if not tail or not head:
        return "-" if b[:1].isalnum() else None
    left = tail.group(1)
    right = head.group()
    left_last = left.rsplit("-", 1)[-1].casefold()
    right_first = right.split("-", 1)[0]
    if right_first[:1].isupper() or (left_last.isupper() and len(left_last) > 1):
        return "-"
    rf = right_first.casefold()
    rest = b[head.end() : head.end() + 1]
    if rf in _SUSPENDED and "-" not in right and (not rest or not rest.isalnum()):
        return "- "
    if f"{left_last}-{rf}" in vocab.hyphenated or f"{left}-{right}".casefold() in vocab.hyphenated:
        return "-"
    if f"{left_last}{rf}" in vocab.plain:
        return ""
    before = a[: len(a) - 1].rsplit(" ", 1)[-1]
    after = b.split(" ", 1)[0]
    if "/" in before or "://" in before or before.lower().startswith("www.") or "/" in after:
        # inside a URL: keep the hyphen, unless a short unknown syllable follows ("communi-" + "ty-practice")
        return "" if len(rf) <= 3 and rf not in vocab.plain and left_last not in vocab.plain else "-"
    if "-" in left or "-" in right:
        return "-"
    if left_last in _KEEP_HYPHEN_PREFIXES:
        return "-"
    return ""


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
    return m is not None and m.group(1).casefold() in _FUNCTION_WORDS


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
    if len(words) > 10 or _TERMINAL.search(line) or _ends_with_function_word(line):
        return False
    # a full line ending on a capital is probably a name running on ("United\nNations")
    return not (_BULLET.match(nxt) is None and len(line) >= full and words[-1][:1].isupper())


def _assemble(lines: Sequence[str], vocab: _Vocabulary) -> str:
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
            sep = _hyphen_join(a, line, vocab)
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
            joinable = line[:1].islower() or (kind == "head" and _is_caps(a) and _is_caps(line))
            sep = " " if joinable and len(a) < 150 else None
        elif kind == "head" and not line[:1].islower():
            sep = None
        elif not line[:1].isupper():
            sep = " "  # lowercase, digit or punctuation: continuation
        elif _TERMINAL.search(a) and _title_line(line, nxt, full):
            sep = None
            kind = "head"
        elif _ends_with_function_word(a) or len(a) >= (full_sentence if _TERMINAL.search(a) else full):
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


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def clean_pages(raw_pages: Sequence[str]) -> list[str]:
    """Clean the extracted text of every page of one document.

    Returns one string per input page, in order ("" for a page with nothing left).  Rules:

    * Characters: NFKC (ligatures "ﬁ" -> "fi", non-breaking spaces -> spaces), ``\\r\\n``/``\\r`` and
      other line separators -> ``\\n``, soft hyphens (a soft hyphen before a line break joins the word),
      zero-width / format / control / private-use characters removed (a private-use glyph opening a line
      becomes "•", it is a symbol-font bullet).  Apostrophes and quotes are kept as they are.
    * Running headers and footers: a line is compared by a key (case-folded, digit runs -> "#",
      whitespace removed).  A key found among the first/last 3 lines of at least 40% of the distinct
      non-empty pages, and of at least 3 of them (2 when the document has 2-4 distinct pages), is
      furniture and removed wherever it appears as a whole line.  Long keys (>= 8 chars) also count
      when glued to another line ("Access to basic servicesExtract from ..."); lines that are a
      concatenation of furniture keys are removed; furniture glued to the start/end of an edge line
      without a space ("› GCM OBJECTIVE 15d. Establish ...") is cut off.  Breadcrumb tabs starting with
      "›" need only 2 pages.  Duplicate pages count once.  A one-page document keeps its lines.
    * Page numbers, in the first/last 3 lines: "- 12 -", "Page 12", "12 / 30", "12 -" always;
      "Title - 12" / "12 | Title" when the same title repeats on 2+ pages or it is the first/last line;
      a bare "12" when it is the first/last line or its value tracks the page index on 2+ pages.
    * Hyphenation at a line end ("inter-" / "national"): the hyphen is kept when the next fragment
      starts with an uppercase letter or a digit, when the document uses the hyphenated form elsewhere,
      inside URLs, inside compounds ("whole-of-" / "government", "vis-" / "à-vis") and after prefixes
      like "non-", "self-", "multi-"; it stays a suspended hyphen before "and/or/et/ou" ("gender- and");
      it is removed when the document knows the joined word, and by default.
    * Paragraphs: wrapped lines are joined with a space; a blank line, a bullet / numbered item, a
      footnote or endnote ("1 Text", "xiv Text"), or a heading (ALL CAPS, "OBJECTIVE 15", "3.1 Title")
      starts a new block; a line shorter than 75% of the page's typical width followed by a capital
      ends a block unless it ends with a comma or a function word.  URLs broken over lines are
      re-joined without a space.  Blocks are separated by a blank line; consecutive list items and
      consecutive notes by a single newline.  Footnotes and endnotes are kept.
    """
    try:
        pages = [_split_lines(_normalize_chars(p)) if isinstance(p, str) else [] for p in raw_pages]
    except TypeError:
        return []
    pages = _strip_furniture(pages)
    vocab = _Vocabulary.build(pages)
    return [_assemble(lines, vocab) for lines in pages]


_APOSTROPHES = str.maketrans({c: "'" for c in "’‘ʼ´`′‛ʹ"})
_QUOTES = str.maketrans({c: '"' for c in "“”«»„‟″〝〞"})
_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−"})
_MATCH_HYPHENATION = re.compile(r"(?<=\w)-[^\S\n]*\n\s*(?=[^\W\d_])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[:;!?%»])")
_SPACE_AFTER_GUILLEMET = re.compile(r"(?<=«)\s+")


def _match_once(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFKC", text))
    text = text.replace("\u00ad", "")
    text = _STRIP.sub("", text).translate(_DASHES)
    text = _MATCH_HYPHENATION.sub(lambda m: "" if text[m.end()].islower() else m.group(), text)
    text = _SPACE_AFTER_GUILLEMET.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    text = text.translate(_APOSTROPHES).translate(_QUOTES)
    text = unicodedata.normalize("NFKC", text.casefold())
    return _WHITESPACE.sub(" ", text).strip()


def normalize_for_match(text: str) -> str:
    """Fold text so that a quoted passage can be found in a page whatever its typography.

    NFKC; case-folded; apostrophes (’ ‘ ʼ ´ ` ′) -> ``'``; quotes (“ ” « » „) -> ``"``; dashes
    (‐ ‑ – — −) -> ``-``; soft hyphens, zero-width and control characters removed; a hyphen at a line
    end followed by a lowercase letter is joined ("inter-\\nnational" -> "international"; "Souss-\\nMassa"
    keeps its hyphen); every run of whitespace -> one space; stripped.

    French spacing: whitespace before ``: ; ! ? % »`` and after ``«`` is removed, so "mot :" and
    "mot:", "55 %" and "55%", "« villes »" and "«villes»" compare equal.  (After that the guillemets
    become ``"``.)  The function is idempotent: ``f(f(x)) == f(x)``.
    """
    if not isinstance(text, str) or not text:
        return ""
    out = _match_once(text)
    for _ in range(3):  # casefold/NFKC interplay on exotic characters: iterate to a fixed point
        again = _match_once(out)
        if again == out:
            break
        out = again
    return out


_LIST_INTRO_TEXT = (
    "ci-dessous ci-après suivants suivantes suivant suivante notamment exemple below following include "
    "includes including example examples are is sont est"
)
_LIST_INTRO_WORDS = frozenset(_LIST_INTRO_TEXT.split())
_HEAD_EXCLUDE = re.compile(r"https?:|www\.|@|\.\s+[A-ZÀ-Þ]")


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
    if line[-1] in ".,;!?-–—(" or _BULLET.match(line) or _HEAD_EXCLUDE.search(line):
        return False
    letters = sum(1 for c in line if c.isalpha())
    if letters < 0.6 * len(line.replace(" ", "")) or letters < 3:
        return False
    if line.endswith(":") and len(words) > 1:
        before_colon = (words[-2] if words[-1] == ":" else words[-1]).rstrip(":").casefold()
        if before_colon in _LIST_INTRO_WORDS:
            return False  # "... are presented below:" introduces a list, it is not a title
    last = words[-1].rstrip(":").casefold()
    return last not in _FUNCTION_WORDS


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
        if not line or len(line) > MAX_HEADING_CHARS or not _HAS_LETTER.search(line):
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
            or (_TERMINAL.search(prev_line) is not None)
        )
        if words <= 12 and (
            _KEYWORD_HEADING.match(line) or (_NUMBERED_HEADING.match(line) and not _SENTENCE_END.search(line))
        ):
            heading = True
        elif _is_caps(line) and words <= 20 and sum(c.isalpha() for c in line) >= 4:
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
