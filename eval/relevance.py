"""Evaluation questions and the rule deciding whether a retrieved passage answers one.

Question file: JSON lines, one object per line (blank lines are skipped)::

    {"id": "q01", "question": "...", "lang": "fr", "quote": "text copied from the PDF"}
    {"id": "q02", "question": "...", "lang": "en", "quotes": ["one wording", "another"], "source": "gfmd/x.pdf"}
    {"id": "q03", "question": "...", "lang": "en", "source": "gfmd/x.pdf", "page": 6}
    {"id": "q04", "question": "...", "lang": "fr", "answerable": false}

``quote`` and ``quotes`` may both be given (any of them counts). A question is unanswerable when it says
``"answerable": false`` or has neither a quote nor ``source`` + ``page``. Other fields are ignored.

Relevance of a retrieved passage (a `Hit`), all comparisons on `normalize_for_match` text:

1. **quote** — the passage contains a whole quote;
2. **straddle** — the quote was cut by a chunk boundary: it is found in the text of the passage's pages
   (``page - 1 .. page_end + 1``, joined as the chunker joins them) *and*, located in that text, the passage
   overlaps that occurrence of the quote by at least `STRADDLE_SHARE` (60 %) of the quote's characters — i.e. it
   holds a contiguous part of the quote that starts at the quote's beginning or ends at its end (or it lies
   wholly inside the quote). A heading that repeats the end of a quote elsewhere on the page does not count;
3. **page** — only for questions without quotes: the passage's source ends with the question's ``source``
   (path-component suffix, so ``gfmd/x.pdf`` matches ``../shared/corpus/gfmd/x.pdf``) and
   the passage spans that page (``hit.page <= page <= hit.page_end``).

`scan_coverage` also looks for every quote in the whole index once, to learn the language(s) of the material
that answers each question and to warn about quotes the index cannot satisfy.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from arrival.errors import ArrivalError
from arrival.ingest.clean import normalize_for_match
from arrival.types import Hit

LANGS = ("fr", "en")
STRADDLE_SHARE = 0.6
PAGE_MARGIN = 1
GENERIC_QUOTE_CHUNKS = 10


class QuestionFileError(ArrivalError):
    """The question file is missing or a line is invalid. The message names the file and the line."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    lang: str
    quotes: tuple[str, ...] = ()
    source: str = ""
    page: int | None = None
    answerable: bool = True
    line: int = 0
    kind: str = ""  # informational: entity, paraphrase, ...; for unanswerable questions near-miss / off-topic

    @property
    def judged_by_page(self) -> bool:
        """No quote: relevance falls back to source + page."""
        return not self.quotes and bool(self.source) and self.page is not None


# -- loading --------------------------------------------------------------------------------------------------
def load_questions(path: str | Path) -> list[Question]:
    """Read and validate a question file; the first bad line raises QuestionFileError naming it."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QuestionFileError(name, None, "question file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionFileError(name, None, f"cannot read question file: {exc}") from None
    return parse_questions(text.splitlines(), name)


def parse_questions(lines: Iterable[str], name: str = "<questions>") -> list[Question]:
    out: list[Question] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(name, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        q = _question(data, name, number)
        if q.id in seen:
            raise QuestionFileError(name, number, f"duplicate id {q.id!r} (first on line {seen[q.id]})")
        seen[q.id] = number
        out.append(q)
    if not out:
        raise QuestionFileError(name, None, "no questions in file")
    return out


def _question(data: Any, name: str, line: int) -> Question:
    def bad(reason: str) -> QuestionFileError:
        return QuestionFileError(name, line, reason)

    if not isinstance(data, dict):
        raise bad(f"expected a JSON object, got {type(data).__name__}")
    qid = data.get("id")
    if isinstance(qid, bool) or not isinstance(qid, str | int) or not str(qid).strip():
        raise bad("'id' must be a non-empty string")
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise bad("'question' must be a non-empty string")
    lang = data.get("lang")
    if lang not in LANGS:
        raise bad(f"'lang' must be one of {', '.join(LANGS)}, got {lang!r}")
    quotes: list[str] = []
    if "quote" in data and data["quote"] is not None:
        if not isinstance(data["quote"], str):
            raise bad("'quote' must be a string")
        quotes.append(data["quote"])
    if "quotes" in data and data["quotes"] is not None:
        if not isinstance(data["quotes"], list) or not all(isinstance(x, str) for x in data["quotes"]):
            raise bad("'quotes' must be a list of strings")
        quotes.extend(data["quotes"])
    quotes = [q for q in quotes if q.strip()]
    for q in quotes:
        if not normalize_for_match(q):
            raise bad(f"quote {q!r} is empty once normalised")
    source = data.get("source") or ""
    if not isinstance(source, str):
        raise bad("'source' must be a string")
    page = data.get("page")
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise bad("'page' must be a positive integer")
    answerable = data.get("answerable", True)
    if not isinstance(answerable, bool):
        raise bad("'answerable' must be true or false")
    judgeable = bool(quotes) or (bool(source) and page is not None)
    if answerable and not judgeable and "answerable" in data:
        raise bad("an answerable question needs 'quote'/'quotes' or 'source' and 'page'")
    kind = data.get("kind") or ""
    if not isinstance(kind, str):
        raise bad("'kind' must be a string")
    return Question(id=str(qid), question=question.strip(), lang=lang, quotes=tuple(quotes), source=source,
                    page=page, answerable=answerable and judgeable, line=line, kind=kind)


# -- judging hits ---------------------------------------------------------------------------------------------
def source_matches(hit_source: str, question_source: str) -> bool:
    """True when `question_source`'s path components are a suffix of `hit_source`'s."""
    want = _parts(question_source)
    have = _parts(hit_source)
    return bool(want) and len(want) <= len(have) and have[-len(want):] == want


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in (".", "/"))


def straddles(passage: str, quote: str, context: str, share: float = STRADDLE_SHARE) -> bool:
    """A quote cut by a chunk boundary: `quote` is in `context` and overlaps `passage` by >= `share` of it.

    All three arguments are already normalised. The passage is located in its pages' text and must overlap an
    occurrence of the quote by at least `share` of the quote's characters (so a heading that merely repeats
    the end of the quote elsewhere on the page does not count). When the passage cannot be located (edge
    effects of normalisation), it must end with a prefix, or start with a suffix, of that length.
    """
    if not quote or not passage or quote not in context:
        return False
    m = max(1, math.ceil(share * len(quote)))
    where = _find_all(context, passage)
    if where:
        spots = _find_all(context, quote)
        return any(min(s + len(passage), q + len(quote)) - max(s, q) >= m for s in where for q in spots)
    return any(passage.endswith(quote[:j]) or passage.startswith(quote[-j:]) for j in range(m, len(quote)))


class PageTexts:
    """Normalised page text from a snapshot, cached. `snapshot` needs `page_text(doc_id, number)`."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self._pages: dict[tuple[str, int], str | None] = {}

    def page(self, doc_id: str, number: int) -> str | None:
        key = (doc_id, number)
        if key not in self._pages:
            self._pages[key] = None if number < 1 else self.snapshot.page_text(doc_id, number)
        return self._pages[key]

    def around(self, doc_id: str, first: int, last: int, margin: int = PAGE_MARGIN) -> str:
        texts = [t for n in range(first - margin, last + margin + 1) if (t := self.page(doc_id, n))]
        return normalize_for_match("\n\n".join(texts))


class RelevanceJudge:
    """Decides `kind(question, hit)`: "quote", "straddle", "page" or None (not relevant)."""

    def __init__(self, snapshot: Any | None = None) -> None:
        self.pages = PageTexts(snapshot) if snapshot is not None else None
        self._norm: dict[str, str] = {}
        self._quotes: dict[str, tuple[str, ...]] = {}
        self._context: dict[tuple[str, int, int], str] = {}

    def quotes(self, q: Question) -> tuple[str, ...]:
        if q.id not in self._quotes:
            self._quotes[q.id] = tuple(dict.fromkeys(normalize_for_match(x) for x in q.quotes))
        return self._quotes[q.id]

    def _text(self, hit: Hit) -> str:
        key = hit.chunk_id or hit.text
        if key not in self._norm:
            self._norm[key] = normalize_for_match(hit.text)
        return self._norm[key]

    def _pages(self, hit: Hit) -> str:
        key = (hit.doc_id, hit.page, hit.page_end)
        if key not in self._context:
            assert self.pages is not None
            self._context[key] = self.pages.around(hit.doc_id, hit.page, max(hit.page, hit.page_end))
        return self._context[key]

    def kind(self, q: Question, hit: Hit) -> str | None:
        if not q.answerable:
            return None
        quotes = self.quotes(q)
        if quotes:
            text = self._text(hit)
            if any(x in text for x in quotes):
                return "quote"
            if self.pages is not None and hit.doc_id:
                context = self._pages(hit)
                if any(straddles(text, x, context) for x in quotes):
                    return "straddle"
            return None
        if q.judged_by_page and source_matches(hit.source, q.source):
            assert q.page is not None
            if hit.page <= q.page <= max(hit.page, hit.page_end):
                return "page"
        return None

    def relevant(self, q: Question, hit: Hit) -> bool:
        return self.kind(q, hit) is not None

    def judge(self, q: Question, hits: Sequence[Hit]) -> list[bool]:
        return [self.relevant(q, h) for h in hits]


# -- where the answers live -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Coverage:
    """Where a question's relevant material sits in the index."""

    langs: frozenset[str] = frozenset()
    chunks: int = 0  # chunks holding a whole quote (or covering the page, for page-judged questions)
    pages: int = 0  # quote found only across a chunk boundary, on this many pages
    missing: tuple[str, ...] = ()  # quotes found nowhere

    @property
    def satisfiable(self) -> bool:
        return self.chunks > 0 or self.pages > 0

    @property
    def doc_lang(self) -> str:
        """"fr", "en", another code, "mixed" or "" (nothing found)."""
        if not self.langs:
            return ""
        return next(iter(self.langs)) if len(self.langs) == 1 else "mixed"


def language_pair(q: Question, cov: Coverage) -> str | None:
    """"<question lang>→<doc lang>"; cross-language only when all the material is in the other language."""
    if not cov.langs:
        return None
    if q.lang in cov.langs:
        return f"{q.lang}→{q.lang}"
    doc = next(iter(cov.langs)) if len(cov.langs) == 1 else "mixed"
    return f"{q.lang}→{doc}"


@dataclass
class CoverageScan:
    coverage: dict[str, Coverage]
    warnings: list[str] = field(default_factory=list)


def scan_coverage(snapshot: Any, questions: Sequence[Question]) -> CoverageScan:
    """Find, once over the whole index, the chunks (and failing that the pages) holding each question's quotes."""
    rows = list(snapshot.iter_chunks())
    joined, starts = _join(normalize_for_match(c.text) for c in rows)
    chunk_meta = [(c.doc_id, c.lang, c.page, c.page_end) for c in rows]
    docs = snapshot.documents()
    page_index: _PageIndex | None = None
    result: dict[str, Coverage] = {}
    warnings: list[str] = []
    for q in questions:
        if not q.answerable:
            continue
        langs: set[str] = set()
        n_chunks = 0
        n_pages = 0
        missing: list[str] = []
        if q.quotes:
            for raw, quote in zip(q.quotes, (normalize_for_match(x) for x in q.quotes), strict=True):
                found = {bisect.bisect_right(starts, pos) - 1 for pos in _find_all(joined, quote)}
                if len(found) > GENERIC_QUOTE_CHUNKS:
                    warnings.append(f"{q.id}: quote {_short(raw)} is in {len(found)} chunks: not specific")
                if found:
                    n_chunks += len(found)
                    langs.update(chunk_meta[i][1] for i in found)
                    continue
                if page_index is None:
                    page_index = _PageIndex(snapshot)
                spots = page_index.find(quote)
                if spots:
                    n_pages += len(spots)
                    langs.update(lang for doc_id, page in spots
                                 for d, lang, p0, p1 in chunk_meta if d == doc_id and p0 <= page <= p1)
                else:
                    missing.append(raw)
        elif q.judged_by_page:
            assert q.page is not None
            ids = {d.doc_id for d in docs.values() if source_matches(d.path, q.source)}
            for d, lang, p0, p1 in chunk_meta:
                if d in ids and p0 <= q.page <= p1:
                    n_chunks += 1
                    langs.add(lang)
            if not n_chunks:
                missing.append(f"{q.source} p.{q.page}")
        cov = Coverage(frozenset(x for x in langs if x), n_chunks, n_pages, tuple(missing))
        result[q.id] = cov
        for m in missing:
            what = _short(m) if q.quotes else m
            warnings.append(f"{q.id}: {what} not found in this index")
    return CoverageScan(result, warnings)


def _short(text: str, n: int = 60) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= n else one[: n - 1] + "…")


def _join(texts: Iterable[str]) -> tuple[str, list[int]]:
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for t in texts:
        starts.append(pos)
        parts.append(t)
        pos += len(t) + 1
    return "\x00".join(parts), starts


def _find_all(haystack: str, needle: str) -> list[int]:
    out: list[int] = []
    i = haystack.find(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


class _PageIndex:
    """Every document's pages, normalised and joined, for quotes no single chunk holds."""

    def __init__(self, view: Any) -> None:
        rows = list(view.iter_pages())
        self.joined, self.starts = _join(normalize_for_match(r[2]) for r in rows)
        self.where = [(r[0], r[1]) for r in rows]
        self.by_doc: dict[str, list[int]] = {}
        for i, (doc_id, _n) in enumerate(self.where):
            self.by_doc.setdefault(doc_id, []).append(i)
        self._docs: dict[str, tuple[str, list[int]]] = {}

    def find(self, quote: str) -> set[tuple[str, int]]:
        spots = {self.where[bisect.bisect_right(self.starts, p) - 1] for p in _find_all(self.joined, quote)}
        if spots:
            return spots
        # Across a page break: search each document's pages joined the way the chunker joins them.
        for doc_id, idx in self.by_doc.items():
            text, starts = self._doc(doc_id, idx)
            for p in _find_all(text, quote):
                spots.add(self.where[idx[bisect.bisect_right(starts, p) - 1]])
        return spots

    def _doc(self, doc_id: str, idx: list[int]) -> tuple[str, list[int]]:
        if doc_id not in self._docs:
            parts = [self.joined[self.starts[i]: self.starts[i] + self._len(i)] for i in idx]
            starts, pos = [], 0
            for part in parts:
                starts.append(pos)
                pos += len(part) + 1
            self._docs[doc_id] = (" ".join(parts), starts)
        return self._docs[doc_id]

    def _len(self, i: int) -> int:
        end = self.starts[i + 1] - 1 if i + 1 < len(self.starts) else len(self.joined)
        return end - self.starts[i]
