"""HTML and Markdown the chat shows, as pure functions (tested without a browser).

Document text is untrusted: everything taken from a document (text, titles, file names) is passed through
`html.escape` before it reaches an HTML component, and the chat only ever shows escaped text.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from arrival.assistant.i18n import TEXT, t
from arrival.assistant.viewer import viewer_href
from arrival.errors import ArrivalError, IndexOpenError, LockedError, ModelError
from arrival.types import Answer, Citation, Hit

if TYPE_CHECKING:
    from arrival.assistant.examples import Overview
    from arrival.assistant.library import FileProgress, LibraryRow
    from arrival.assistant.uploads import UploadResult

CONTEXT_CHARS = 260  # passage text shown on each side of a highlighted quote


def _esc(text: str) -> str:
    return html.escape(" ".join(str(text).split()), quote=True)


def highlight(passage: str, quote: str, context: int = CONTEXT_CHARS) -> str:
    """The passage around the quote, escaped, with the quote in <mark>. A quote not found in the passage is shown
    marked on its own."""
    at = passage.find(quote) if quote else -1
    if at < 0:
        return f"<mark>{_esc(quote)}</mark>" if quote else _esc(passage[: 2 * context])
    start, end = max(0, at - context), min(len(passage), at + len(quote) + context)
    before, after = passage[start:at], passage[at + len(quote):end]
    if start > 0:
        before = "…" + before[before.find(" ") + 1:] if " " in before else "…" + before
    if end < len(passage):
        after = (after[: after.rfind(" ")] if " " in after else after) + "…"
    return f"{_esc(before)} <mark>{_esc(quote)}</mark> {_esc(after)}".strip()


def pdf_href(doc_id: str, page: int) -> str:
    """Relative, so that it works under any mount path. doc_id is hex (checked by the route too)."""
    return f"pdf/{html.escape(doc_id, quote=True)}#page={int(page)}"


def lang_name(code: str, lang: str) -> str:
    key = f"lang_{code}"
    return t(key, lang) if key in TEXT["en"] else code.upper()


def source_links(doc_id: str, page: int, quote: str, title: str, lang: str, viewer: bool) -> str:
    """The links of a card: the quote in the built-in viewer (when PDF.js is installed) and the PDF itself."""
    if not doc_id:
        return ""
    raw = (f'<a class="cite-link cite-pdf" href="{pdf_href(doc_id, page)}" target="_blank" '
           f'rel="noopener noreferrer">{_esc(t("open_pdf", lang, page=page))} ↗</a>')
    if not viewer:
        return f'<div class="cite-links">{raw}</div>'
    href = html.escape(viewer_href(doc_id, page, quote, lang), quote=True)
    label = t("show_in_pdf" if quote else "show_page", lang, page=page)
    show = (f'<a class="cite-link cite-view" href="{href}" data-viewer="1" data-title="{_esc(title)}" '
            f'data-page="{int(page)}" target="_blank" rel="noopener">{_esc(label)}</a>')
    return f'<div class="cite-links">{show}{raw}</div>'


def citation_card(c: Citation, doc_id: str, lang: str = "en", viewer: bool = False) -> str:
    name = Path(c.source).name
    title = c.title or name
    return (
        f'<article class="cite-card" id="cite-{c.n}" data-n="{c.n}" aria-label="{_esc(t("source_n", lang, n=c.n))}">'
        f'<header><span class="cite-n" aria-hidden="true">{c.n}</span><span class="cite-title">{_esc(title)}</span>'
        f'</header>'
        f'<div class="cite-meta">{_esc(t("page", lang))} {c.page} · {_esc(lang_name(c.lang, lang))}'
        f' · <span class="cite-file">{_esc(name)}</span></div>'
        f'<blockquote class="cite-passage">{highlight(c.passage, c.quote)}</blockquote>'
        f"{source_links(doc_id, c.page, c.quote, title, lang, viewer)}</article>"
    )


def passage_card(h: Hit, lang: str = "en", viewer: bool = False) -> str:
    name = Path(h.source).name
    text = h.text if len(h.text) <= 2 * CONTEXT_CHARS else h.text[: 2 * CONTEXT_CHARS] + "…"
    return (
        f'<article class="cite-card passage">'
        f'<header><span class="cite-n" aria-hidden="true">·</span><span class="cite-title">{_esc(h.title or name)}'
        f'</span></header>'
        f'<div class="cite-meta">{_esc(t("page", lang))} {h.page} · {_esc(lang_name(h.lang, lang))}'
        f' · <span class="cite-file">{_esc(name)}</span></div>'
        f'<blockquote class="cite-passage">{_esc(text)}</blockquote>'
        f"{source_links(h.doc_id, h.page, '', h.title or name, lang, viewer)}</article>"
    )


def citation_doc_ids(answer: Answer) -> dict[int, str]:
    """The doc_id of each citation: its own when it carries one, else the one of the passage it quotes."""
    by_chunk = {h.chunk_id: h.doc_id for h in answer.passages}
    by_source = {h.source: h.doc_id for h in answer.passages}
    return {c.n: getattr(c, "doc_id", "") or by_chunk.get(c.chunk_id) or by_source.get(c.source, "")
            for c in answer.citations}


def viewer_note(lang: str) -> str:
    """Said once above the sources when PDF.js is not installed."""
    return f'<p class="viewer-missing" role="note">{_esc(t("viewer_missing", lang))}</p>'


def render_sources(answer: Answer | None, lang: str = "en", doc_ids: dict[int, str] | None = None,
                   viewer: bool = False) -> str:
    """The right-hand column: citation cards, or the closest passages when the answer was refused."""
    if answer is None:
        return f'<div class="cite-empty">{_esc(t("no_sources", lang))}</div>'
    if answer.citations:
        ids = doc_ids if doc_ids is not None else citation_doc_ids(answer)
        cards = "".join(citation_card(c, ids.get(c.n, ""), lang, viewer) for c in answer.citations)
        return f'<div class="cite-list">{cards}</div>'
    if answer.passages:
        cards = "".join(passage_card(h, lang, viewer) for h in answer.passages)
        return f'<div class="cite-list"><p class="cite-note">{_esc(t("closest", lang))}</p>{cards}</div>'
    return f'<div class="cite-empty">{_esc(t("no_sources", lang))}</div>'


def chat_text(text: str) -> str:
    """Answer text made safe for the chat's Markdown renderer: no raw HTML from documents."""
    return html.escape(text, quote=False)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def rewritten_note(query: str, lang: str) -> str:
    """The line above an answer to a follow-up: what was searched."""
    shown = _MD_SPECIAL.sub(r"\\\1", html.escape(" ".join(query.split()), quote=False))
    return f"*{t('understood_as', lang)}* « {shown} »\n\n"


def _sources_markdown(answer: Answer, lang: str, level: str) -> list[str]:
    if not answer.citations:
        return []
    lines = [f"{level} {t('export_sources', lang)}", ""]
    for c in answer.citations:
        quote = " ".join(c.quote.split())
        lines.append(f"{c.n}. {c.title or Path(c.source).name}, {t('page', lang)} {c.page} ({c.lang}) — "
                     f"`{Path(c.source).name}`")
        lines.append(f"   > {quote}")
        lines.append("")
    return lines


def export_markdown(answer: Answer, lang: str | None = None) -> str:
    """One answer, its question and its sources."""
    lang = lang or answer.lang
    lines = [f"# {t('export_title', lang)}", "", f"**{t('export_question', lang)}:** {answer.question}", "",
             answer.answer.strip(), "", *_sources_markdown(answer, lang, "##")]
    return "\n".join(lines).rstrip() + "\n"


def export_conversation(answers: Sequence[Answer], lang: str) -> str:
    """The conversation since the chat was last cleared: each question as searched, its answer and sources."""
    if len(answers) == 1:
        return export_markdown(answers[0], lang)
    lines = [f"# {t('export_conversation', lang)}", ""]
    for i, a in enumerate(answers, 1):
        lines += [f"## {i}. {a.question}", "", a.answer.strip(), "", *_sources_markdown(a, lang, "###")]
    return "\n".join(lines).rstrip() + "\n"


def _reason(reason: str, lang: str, other: str = "") -> str:
    return t(reason, lang, name=other) if reason in TEXT["en"] else reason


def render_upload_results(results: Sequence[UploadResult], lang: str = "en") -> str:
    if not results:
        return f'<p class="upload-note">{_esc(t("no_files", lang))}</p>'
    rows = []
    for r in results:
        detail = _reason(r.reason, lang, r.other)
        if r.status == "indexed":
            detail = f"{r.pages} p., {r.chunks} passages"
        status = t(r.status, lang) if r.status in ("indexed", "unchanged", "failed") else r.status
        rows.append(f'<tr class="st-{_esc(r.status)}"><td>{_esc(r.name)}</td>'
                    f'<td class="upload-status">{_esc(status)}</td><td>{_esc(detail)}</td></tr>')
    ok = sum(r.status == "indexed" for r in results)
    same = sum(r.status == "unchanged" for r in results)
    bad = sum(r.status == "failed" for r in results)
    summary = t("upload_done", lang, ok=ok, same=same, bad=bad)
    return (f'<table class="upload-results"><thead><tr><th scope="col">{_esc(t("file", lang))}</th>'
            f'<th scope="col">{_esc(t("status", lang))}</th><th scope="col">{_esc(t("detail", lang))}</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table><p class="upload-note">{_esc(summary)}</p>')


def render_upload_progress(files: Sequence[FileProgress], lang: str = "en") -> str:
    """One progress bar per uploaded file, with its stage or its result."""
    items = []
    for f in files:
        pct = round(100 * f.fraction)
        if f.status == "indexed":
            detail = t("upload_indexed", lang, pages=f.pages, chunks=f.chunks)
        elif f.status in ("unchanged", "failed"):
            reason = _reason(f.reason, lang, f.other)
            detail = f"{t(f.status, lang)}{' — ' + reason if reason else ''}"
        else:
            detail = t(f"stage_{f.stage}", lang)
        items.append(
            f'<li class="up-file st-{_esc(f.status or "working")}"><span class="up-name">{_esc(f.name)}</span>'
            f'<progress max="100" value="{pct}" aria-label="{_esc(f.name)}"'
            f' aria-valuetext="{_esc(detail)}">{pct}%</progress>'
            f'<span class="up-detail">{_esc(detail)}</span></li>')
    return f'<ul class="upload-progress" aria-live="polite">{"".join(items)}</ul>'


def _when(ts: float) -> tuple[str, str]:
    if not ts:
        return "", ""
    d = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return d.isoformat(timespec="seconds"), d.strftime("%Y-%m-%d %H:%M UTC")


def render_library(rows: Sequence[LibraryRow], lang: str = "en", query: str = "") -> str:
    """The library table: every indexed document, and the uploads that failed (with why)."""
    head = "".join(f'<th scope="col">{_esc(t(k, lang))}</th>'
                   for k in ("lib_title", "lib_lang", "lib_pages", "lib_passages", "lib_added", "lib_status"))
    body = []
    for r in rows:
        iso, shown = _when(r.added)
        langs = ", ".join(lang_name(x, lang) for x in r.languages) or "—"
        status = t("indexed", lang) if r.status == "indexed" else f'{t("failed", lang)}: {_reason(r.reason, lang)}'
        pages = str(r.pages) if r.status == "indexed" else "—"
        chunks = str(r.chunks) if r.status == "indexed" else "—"
        body.append(
            f'<tr class="lib-{_esc(r.status)}" data-doc="{_esc(r.doc_id)}">'
            f'<th scope="row"><span class="lib-title">{_esc(r.title)}</span>'
            f'<span class="lib-file">{_esc(r.name)}</span></th>'
            f'<td class="lib-lang">{_esc(langs)}</td><td class="lib-pages">{pages}</td>'
            f'<td class="lib-chunks">{chunks}</td><td class="lib-added"><time datetime="{iso}">{_esc(shown)}</time>'
            f'</td><td class="lib-status">{_esc(status)}</td></tr>')
    if not body:
        empty = t("lib_no_match", lang, q=query) if query else t("lib_empty", lang)
        body.append(f'<tr><td colspan="6" class="lib-empty">{_esc(empty)}</td></tr>')
    caption = t("lib_caption", lang, n=sum(r.status == "indexed" for r in rows))
    return (f'<table class="library"><caption>{_esc(caption)}</caption><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def render_overview(ov: Overview | None, lang: str = "en") -> str:
    """The first screen's line: what is indexed."""
    if ov is None or not ov.documents:
        return f'<p class="overview">{_esc(t("overview_empty", lang))}</p>'
    langs = ", ".join(f"{lang_name(code, lang)} ({n})" for code, n in ov.languages)
    text = t("overview", lang, docs=ov.documents, pages=ov.pages, langs=langs)
    return f'<p class="overview">{_esc(text)}</p>'


def render_search_results(query: str, hits: Sequence[Hit], lang: str = "en", viewer: bool = False,
                          seconds: float | None = None) -> str:
    """The search view: ranked passages with their score, language and document."""
    if not query:
        return f'<p class="search-note">{_esc(t("search_help", lang))}</p>'
    if not hits:
        return f'<p class="search-note">{_esc(t("search_none", lang))}</p>'
    head = "".join(f'<th scope="col">{_esc(t(k, lang))}</th>'
                   for k in ("res_rank", "res_score", "res_lang", "res_doc", "res_passage"))
    rows = []
    for h in hits:
        name = Path(h.source).name
        text = " ".join(h.text.split())
        if len(text) > 600:
            text = text[:600] + "…"
        rows.append(
            f'<tr><td class="res-rank">{h.rank}</td><td class="res-score">{h.score:.3f}</td>'
            f'<td class="res-lang">{_esc(lang_name(h.lang, lang))}</td>'
            f'<td class="res-doc"><span class="lib-title">{_esc(h.title or name)}</span>'
            f'<span class="lib-file">{_esc(name)} · {_esc(t("page", lang))} {h.page}</span>'
            f'{source_links(h.doc_id, h.page, "", h.title or name, lang, viewer)}</td>'
            f'<td class="res-text">{_esc(text)}</td></tr>')
    took = f" ({seconds * 1000:.0f} ms)" if seconds is not None else ""
    caption = t("search_caption", lang, n=len(hits), q=query) + took
    return (f'<table class="search-results"><caption>{_esc(caption)}</caption><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def friendly_error(exc: BaseException, lang: str) -> str:
    """One readable line for the person at the browser; never a traceback."""
    if isinstance(exc, ModelError):
        return t("model_error", lang, reason=str(exc))
    if isinstance(exc, LockedError):
        return t("busy", lang)
    if isinstance(exc, IndexOpenError) and "no index yet" in str(exc):
        return t("no_index", lang)
    if isinstance(exc, ArrivalError):
        return str(exc)
    return t("error", lang, reason=type(exc).__name__)
