"""Line-end hyphenation: the document's own vocabulary, and how a line ending in a hyphen joins the next one
("inter-" + "national", "Souss-" + "Massa", "gender- and")."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_LINE_END_FRAGMENT = re.compile(r"(?<![\w-])[^\W\d_]+(?:-[^\W\d_]+)*-(?:\n|$)")


@dataclass
class Vocabulary:
    plain: set[str] = field(default_factory=set)
    hyphenated: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, pages: Sequence[Sequence[str]]) -> Vocabulary:
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


_SUSPENDED = frozenset({"and", "or", "nor", "to", "et", "ou", "à"})
_KEEP_HYPHEN_PREFIXES = frozenset({"non", "self", "cross", "well", "ex", "quasi", "multi", "half", "anti", "semi"})
_TRAILING_WORD = re.compile(r"([^\W\d_]+(?:-[^\W\d_]+)*)-$")
_LEADING_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def hyphen_join(a: str, b: str, vocab: Vocabulary) -> str | None:
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

