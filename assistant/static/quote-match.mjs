// Find a quoted sentence in the text layer of one or two PDF pages.
//
// Both sides are reduced to their letters and digits (NFKD, no accents, lower case, œ→oe, æ→ae, ß→ss), so
// whitespace, line ends, hyphenation at line ends, ligatures and quote/apostrophe styles never matter
// (assistant/viewer.py `fold_text` is the same in Python). Every folded character remembers the text item and
// the offsets it came from, so a match maps back to the spans of the text layer.
//
// The quote is matched as a few long segments in order: the longest prefix of what is left (at least 12
// characters for the first, found anywhere; at least 5 for the next ones, found within MAX_GAP folded characters
// of the previous segment). One segment is the usual case; two happen when a quote
// runs onto the next page (the running header and footer between them stay unmatched) or when the PDF's text
// layer holds a few characters the indexed text does not. A quote character found nowhere is skipped, at most
// a tenth of them. The result says how much of the quote was found.

const FOLD = { "œ": "oe", "æ": "ae", "ß": "ss", "ø": "o", "ł": "l", "đ": "d", "ı": "i", "ŀ": "l" };
const ALNUM = /[\p{L}\p{N}]/u;
const MARK = /\p{M}/u;
export const MAX_GAP = 600;
export const MIN_SEGMENT = 12;  // the first segment, found anywhere
export const MIN_NEXT = 5;  // a later one, found within MAX_GAP of the previous

export function foldChar(ch) {
  let out = "";
  for (const c of ch.normalize("NFKD")) {
    if (MARK.test(c)) continue;
    for (const d of (FOLD[c.toLowerCase()] ?? c.toLowerCase())) {
      if (ALNUM.test(d)) out += d;
    }
  }
  return out;
}

export function foldText(text) {
  let out = "";
  for (const ch of text) out += foldChar(ch);
  return out;
}

// items: [{str, page}] in reading order. Returns {text, item, start, end}: for each folded character, the item
// it came from and the UTF-16 offsets of its source character in that item's string.
export function buildStream(items) {
  let text = "";
  const item = [], start = [], end = [];
  items.forEach((it, i) => {
    const s = it.str || "";
    let at = 0;
    for (const ch of s) {
      const f = foldChar(ch);
      for (const c of f) {
        text += c;
        item.push(i); start.push(at); end.push(at + ch.length);
      }
      at += ch.length;
    }
  });
  return { text, item, start, end };
}

function longestPrefix(text, quote, from, lo, window, least) {
  // the longest quote.slice(from, from + n) (n >= least unless less is left) found at [lo, lo + window]
  const max = quote.length - from;
  const min = Math.min(least, max);
  const at = (n) => {
    const p = text.indexOf(quote.slice(from, from + n), lo);
    return p >= 0 && p - lo <= window ? p : -1;
  };
  const p = at(min);
  if (p < 0) return null;
  let best = { pos: p, len: min };
  let a = min + 1, b = max;  // found for n implies found for any shorter n: binary search
  while (a <= b) {
    const mid = (a + b) >> 1;
    const q = at(mid);
    if (q >= 0) { best = { pos: q, len: mid }; a = mid + 1; } else b = mid - 1;
  }
  return best;
}

// Returns {segments: [[start, end)], matched, total, exact}.
export function findQuote(stream, quoteText, { maxGap = MAX_GAP, maxSkip = 0.1 } = {}) {
  const quote = foldText(quoteText);
  const total = quote.length;
  const segments = [];
  if (!total || !stream.text) return { segments, matched: 0, total, exact: false };
  let from = 0, cursor = 0, skipped = 0, first = true;
  const allowSkip = Math.floor(total * maxSkip);
  while (from < total) {
    const seg = first ? longestPrefix(stream.text, quote, from, 0, Infinity, MIN_SEGMENT)
      : longestPrefix(stream.text, quote, from, cursor, maxGap, MIN_NEXT);
    if (seg === null) {
      skipped += 1; from += 1;
      if (skipped > allowSkip) break;
      continue;
    }
    segments.push([seg.pos, seg.pos + seg.len]);
    from += seg.len; cursor = seg.pos + seg.len; first = false;
  }
  const matched = segments.reduce((n, [s, e]) => n + e - s, 0);
  return { segments, matched, total, exact: matched === total && skipped === 0 };
}

// The ranges to highlight per item: Map(item index -> [[startOffset, endOffset], ...]).
export function itemRanges(stream, segments) {
  const out = new Map();
  const add = (i, s, e) => {
    if (e <= s) return;
    const list = out.get(i) || [];
    const last = list[list.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e); else list.push([s, e]);
    out.set(i, list);
  };
  for (const [s, e] of segments) {
    const i0 = stream.item[s], i1 = stream.item[e - 1];
    if (i0 === i1) { add(i0, stream.start[s], stream.end[e - 1]); continue; }
    add(i0, stream.start[s], Infinity);
    for (let i = i0 + 1; i < i1; i++) add(i, 0, Infinity);
    add(i1, 0, stream.end[e - 1]);
  }
  return out;
}
