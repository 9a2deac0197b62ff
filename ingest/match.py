"""Quote matching: `normalize_for_match` folds text so that a quoted passage can be found in a page whatever its
typography (used to verify citations and to judge relevance)."""

from __future__ import annotations

import re
import unicodedata

from arrival.ingest.clean_chars import LINE_BREAKS, STRIP, WHITESPACE

__all__ = ["normalize_for_match"]

_APOSTROPHES = str.maketrans({c: "'" for c in "’‘ʼ´`′‛ʹ"})
_QUOTES = str.maketrans({c: '"' for c in "“”«»„‟″〝〞"})
_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−"})
_MATCH_HYPHENATION = re.compile(r"(?<=\w)-[^\S\n]*\n\s*(?=[^\W\d_])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[:;!?%»])")
_SPACE_AFTER_GUILLEMET = re.compile(r"(?<=«)\s+")


def _match_once(text: str) -> str:
    text = LINE_BREAKS.sub("\n", unicodedata.normalize("NFKC", text))
    text = text.replace("\u00ad", "")
    text = STRIP.sub("", text).translate(_DASHES)
    text = _MATCH_HYPHENATION.sub(lambda m: "" if text[m.end()].islower() else m.group(), text)
    text = _SPACE_AFTER_GUILLEMET.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    text = text.translate(_APOSTROPHES).translate(_QUOTES)
    text = unicodedata.normalize("NFKC", text.casefold())
    return WHITESPACE.sub(" ", text).strip()


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

