"""Split a document's cleaned pages into overlapping, provenance-carrying chunks.

Pages are joined with a blank line so a paragraph that runs over a page break can stay in one chunk; each
chunk records its start page and offset, its end page and offset, the nearest heading before it, and its
language. Chunks never cross documents.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass

from arrival.ingest.clean import find_headings
from arrival.ingest.lang import detect
from arrival.types import Chunk, Document

PAGE_JOIN = "\n\n"
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ": ", ", ", " ", ""]


@dataclass(frozen=True)
class JoinedText:
    """A document's cleaned pages joined into one string, with the offset where each page starts."""

    text: str
    starts: tuple[int, ...]
    numbers: tuple[int, ...]

    def locate(self, offset: int) -> tuple[int, int]:
        """(index into starts, offset within that page) for a position in the joined text."""
        i = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        return i, offset - self.starts[i]


def join_pages(doc: Document) -> JoinedText:
    parts: list[str] = []
    starts: list[int] = []
    numbers: list[int] = []
    pos = 0
    for page in doc.pages:
        if not page.text.strip():
            continue
        if parts:
            parts.append(PAGE_JOIN)
            pos += len(PAGE_JOIN)
        starts.append(pos)
        numbers.append(page.number)
        parts.append(page.text)
        pos += len(page.text)
    return JoinedText("".join(parts), tuple(starts), tuple(numbers))


class Chunker:
    """`split(doc) -> list[Chunk]` with LangChain's recursive splitter on paragraph/sentence boundaries."""

    def __init__(self, chunk_size: int = 800, chunk_overlap: int = 120) -> None:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
            add_start_index=False,
        )

    def split(self, doc: Document) -> list[Chunk]:
        joined = join_pages(doc)
        if not joined.text:
            return []
        headings = self._headings(doc, joined)
        heading_pos = [h[0] for h in headings]
        spans: list[tuple[int, int]] = []
        for lo, hi in self._sections(joined.text, heading_pos):
            spans.extend(self._split_section(joined.text, lo, hi, doc.path))
        chunks: list[Chunk] = []
        for start, end in self._merge_fragments(joined.text, spans):
            piece = joined.text[start:end]
            pi, pstart = joined.locate(start)
            pj, pend = joined.locate(end - 1)
            h = bisect.bisect_right(heading_pos, start) - 1
            chunks.append(
                Chunk(
                    doc_id=doc.doc_id,
                    source=doc.path,
                    title=doc.title,
                    text=piece,
                    page=joined.numbers[pi],
                    page_end=joined.numbers[pj],
                    start=pstart,
                    end=pend + 1,
                    heading=headings[h][1] if h >= 0 else "",
                    lang=detect(piece),
                )
            )
        return chunks

    def _split_section(self, text: str, lo: int, hi: int, path: str) -> list[tuple[int, int]]:
        """(start, end) offsets of the splitter's pieces of text[lo:hi]."""
        spans: list[tuple[int, int]] = []
        prev_start, prev_end = lo - 1, lo
        section = text[lo:hi]
        for piece in self._splitter.split_text(section):
            # Pieces come in order, each starting after the previous one. Look first where the overlap says it
            # should be (as LangChain's add_start_index does), and if stripping made the overlap longer than
            # configured, anywhere after the previous start, never before it: repeated text would otherwise map
            # two pieces to one place (same offsets, same id).
            start = text.find(piece, max(prev_start + 1, prev_end - self.chunk_overlap), hi)
            if start < 0:
                start = text.find(piece, prev_start + 1, hi)
            if start < 0:  # the splitter only returns stripped substrings; this would be a bug in it
                raise ValueError(f"{path}: chunk text not found in the document after offset {prev_start}")
            end = start + len(piece)
            prev_start, prev_end = start, end
            spans.append((start, end))
        return spans

    def _sections(self, text: str, heading_pos: list[int]) -> list[tuple[int, int]]:
        """The document cut at its headings: a passage never runs from one section into the next, so a
        section's passages are about what its heading names ("THE MEDIA", "AGENCES DE RECRUTEMENT"). A section
        shorter than a quarter chunk (a heading alone, a run of table headers) stays with the one after it."""
        cuts = sorted({0, *(p for p in heading_pos if 0 < p < len(text)), len(text)})
        out: list[tuple[int, int]] = []
        start = 0
        for b in cuts[1:]:
            if len(text[start:b].strip()) >= self.chunk_size // 4 or b == len(text):
                if text[start:b].strip():
                    out.append((start, b))
                start = b
        return out

    @property
    def max_chars(self) -> int:
        """The longest a chunk can be: chunk_size, plus a merged fragment of under a quarter of it."""
        return self.chunk_size + self.chunk_size // 4

    def _merge_fragments(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Join fragments shorter than a quarter chunk to a neighbour: a heading or a lead-in ending with ":"
        to the passage it introduces, a tail (the end of a sentence, a list item) to the passage before it.
        The recursive splitter leaves them alone when the next paragraph is too long to merge with; on their
        own they are poor search results and poor embeddings ("Adopter une approche multipartite :")."""
        small, limit = self.chunk_size // 4, self.max_chars
        out: list[tuple[int, int]] = []
        i = 0
        while i < len(spans):
            start, end = spans[i]
            if end - start < small:
                leads = not text[start:end].rstrip().endswith((".", "!", "?", ")", "»", '"'))
                if leads and i + 1 < len(spans) and spans[i + 1][1] - start <= limit:
                    out.append((start, spans[i + 1][1]))
                    i += 2
                    continue
                if out and end - out[-1][0] <= limit and end > out[-1][1]:
                    out[-1] = (out[-1][0], end)
                    i += 1
                    continue
            out.append((start, end))
            i += 1
        return out

    @staticmethod
    def _headings(doc: Document, joined: JoinedText) -> list[tuple[int, str]]:
        by_number = {p.number: p for p in doc.pages}
        out: list[tuple[int, str]] = []
        for start, number in zip(joined.starts, joined.numbers, strict=True):
            out.extend((start + off, text) for off, text in find_headings(by_number[number].text))
        return out


def document_languages(chunks: list[Chunk], min_share: float = 0.1) -> tuple[str, ...]:
    """Languages making up at least `min_share` of a document's text, most frequent first."""
    weight: Counter[str] = Counter()
    for c in chunks:
        weight[c.lang] += len(c.text)
    total = sum(weight.values()) or 1
    return tuple(lang for lang, w in weight.most_common() if w / total >= min_share)
