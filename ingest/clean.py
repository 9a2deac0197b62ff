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

This module runs the cleaning steps, each in a module of its own: `clean_chars` (characters), `clean_furniture`
(running headers/footers, page numbers, breadcrumb tabs), `clean_hyphens` (the document's vocabulary, line-end
hyphens), `clean_paragraphs` (lines -> paragraphs, lists, notes, headings); `clean_patterns` holds the line
patterns they share. The two other functions live in `headings` and `match`, and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

from arrival.ingest.clean_chars import normalize_chars, split_lines
from arrival.ingest.clean_furniture import strip_furniture
from arrival.ingest.clean_hyphens import Vocabulary
from arrival.ingest.clean_paragraphs import assemble
from arrival.ingest.headings import find_headings
from arrival.ingest.match import normalize_for_match

__all__ = ["clean_pages", "find_headings", "normalize_for_match"]


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
        pages = [split_lines(normalize_chars(p)) if isinstance(p, str) else [] for p in raw_pages]
    except TypeError:
        return []
    pages = strip_furniture(pages)
    vocab = Vocabulary.build(pages)
    return [assemble(lines, vocab) for lines in pages]

