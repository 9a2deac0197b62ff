"""Page furniture: running headers and footers, page numbers and breadcrumb tabs, found by repetition across
the pages of one document and dropped (see `clean_pages` in ingest/clean.py for the rules)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from arrival.ingest.clean_chars import WHITESPACE
from arrival.ingest.clean_patterns import HAS_LETTER, SENTENCE_END, TERMINAL

#: Lines looked at at the top and at the bottom of a page when hunting for running headers/footers.
EDGE_LINES = 3
#: A line is a running header/footer when it sits in the edge zone of at least this share of the
#: (distinct, non-empty) pages of the document ...
RUNNING_MIN_SHARE = 0.4
#: ... and of at least this many pages (2 for documents of 2-4 distinct pages, see _running_threshold).
RUNNING_MIN_PAGES = 3
#: Running keys at least this long also count when glued to another edge line ("servicesExtract from").
GLUE_MIN_KEY = 8
#: Lines longer than this are never compared against header keys (headers are short).
MAX_FURNITURE_LINE = 400

_DIGIT_RUN = re.compile(r"\d+")


def _line_key(line: str) -> str:
    """Comparison key: case-folded, digit runs -> '#', all whitespace removed."""
    return WHITESPACE.sub("", _DIGIT_RUN.sub("#", line.casefold()))


def _variant_key(line: str) -> str:
    """Case-sensitive twin of _line_key: tells a running header from a same-words title in capitals."""
    return WHITESPACE.sub("", _DIGIT_RUN.sub("#", line))


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
        if HAS_LETTER.search(title) and not SENTENCE_END.search(title) and len(title.split()) <= 8:
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
                if k and k not in repeated and HAS_LETTER.search(k):
                    follow = k
                    break
                j += step
            out.setdefault(keys[p][i], []).append(follow)
    return out


_BREADCRUMB_ARROWS = re.compile(r"›(?:\s+›)+\s*")  # "› › › Design"; "››" glued is the full guide's bullet
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
        if len(rest.split()) <= 6 and not TERMINAL.search(rest):
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
        return rest if HAS_LETTER.search(rest) else line
    if head >= max(SHINGLE, n // 2) and _boundary_ok(line, last[head - 1], first[head]):
        rest = line[first[head] :].strip()
        return rest if HAS_LETTER.search(rest) else line
    return line


def strip_furniture(pages: list[list[str]]) -> list[list[str]]:
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
            exact.update(k for k in page_keys if HAS_LETTER.search(k))
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
            1 for p in distinct if all(keys[p][i] in running for i in edges[p][0] if HAS_LETTER.search(pages[p][i]))
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

