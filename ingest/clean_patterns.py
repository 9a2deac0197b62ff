"""Line patterns shared by the cleaning steps and the heading finder: letters, sentence ends, list bullets,
function words."""

from __future__ import annotations

import re

HAS_LETTER = re.compile(r"[^\W\d_]")
SENTENCE_END = re.compile(r"[.!?;,]$")
BULLET = re.compile(
    r"(?:[•▪■●◦‣∙○□▫➢➤►▶✓✔❖◆◇*›]|[-–—](?=\s))"
    r"|(?:\d{1,2}(?:\.\d{1,2})*[.)]|\d{1,2}\.\d{1,2}[a-z]?:|\d{1,2}\.[a-z]:|\(\d{1,2}\))(?=\s|$)"
    r"|(?:\(?[a-z]\)|[a-z]\.|\(?[ivx]{1,4}\))(?=\s|$)"
)
ROMAN = r"(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
TERMINAL = re.compile(rf"[.!?…:;»”\"')\]](?:{ROMAN}|\d{{1,3}})?$")
_FUNCTION_WORDS_TEXT = (
    "a an the of to in for on and or nor with by at from as into such that which their its our is are "
    "be not including between than per via this these those through within across against about "
    "le la les l un une des du de d et ou à au aux en par pour sur dans avec que qui ce cette ces leur "
    "leurs son sa ses est sont ne pas entre selon vers chez dont"
)
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
