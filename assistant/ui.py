"""The Gradio chat: streamed answers on the left, citation cards on the right, options and uploads below.

Document text is untrusted: everything taken from a document is passed through `html.escape` before it reaches
an HTML component, and the chat only ever shows escaped text.
"""

from __future__ import annotations

import glob
import hashlib
import html
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from arrival.assistant.i18n import TEXT, pick_lang, t
from arrival.errors import ArrivalError, IndexOpenError, LockedError, ModelError
from arrival.types import Answer, Citation, Hit

if TYPE_CHECKING:
    from arrival.assistant.server import Backend, UploadResult

log = logging.getLogger(__name__)

CSS_PATH = Path(__file__).with_name("static") / "ui.css"
CONTEXT_CHARS = 260  # passage text shown on each side of a highlighted quote


# -- rendering (pure functions, tested without a browser) -----------------------------------------------------
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


def _lang_name(code: str, lang: str) -> str:
    key = f"lang_{code}"
    return t(key, lang) if key in TEXT["en"] else code.upper()


def citation_card(c: Citation, doc_id: str, lang: str = "en") -> str:
    link = ""
    if doc_id:
        link = (f'<a class="cite-link" href="{pdf_href(doc_id, c.page)}" target="_blank" rel="noopener noreferrer">'
                f"{_esc(t('open_pdf', lang, page=c.page))} ↗</a>")
    name = Path(c.source).name
    return (
        f'<article class="cite-card" id="cite-{c.n}" data-n="{c.n}">'
        f'<header><span class="cite-n">{c.n}</span><span class="cite-title">{_esc(c.title or name)}</span></header>'
        f'<div class="cite-meta">{_esc(t("page", lang))} {c.page} · {_esc(_lang_name(c.lang, lang))}'
        f' · <span class="cite-file">{_esc(name)}</span></div>'
        f'<blockquote class="cite-passage">{highlight(c.passage, c.quote)}</blockquote>'
        f"{link}</article>"
    )


def passage_card(h: Hit, lang: str = "en") -> str:
    name = Path(h.source).name
    link = ""
    if h.doc_id:
        link = (f'<a class="cite-link" href="{pdf_href(h.doc_id, h.page)}" target="_blank" rel="noopener noreferrer">'
                f"{_esc(t('open_pdf', lang, page=h.page))} ↗</a>")
    text = h.text if len(h.text) <= 2 * CONTEXT_CHARS else h.text[: 2 * CONTEXT_CHARS] + "…"
    return (
        f'<article class="cite-card passage">'
        f'<header><span class="cite-n">·</span><span class="cite-title">{_esc(h.title or name)}</span></header>'
        f'<div class="cite-meta">{_esc(t("page", lang))} {h.page} · {_esc(_lang_name(h.lang, lang))}'
        f' · <span class="cite-file">{_esc(name)}</span></div>'
        f'<blockquote class="cite-passage">{_esc(text)}</blockquote>{link}</article>'
    )


def citation_doc_ids(answer: Answer) -> dict[int, str]:
    """The doc_id of each citation, taken from the passage it quotes."""
    by_chunk = {h.chunk_id: h.doc_id for h in answer.passages}
    by_source = {h.source: h.doc_id for h in answer.passages}
    return {c.n: by_chunk.get(c.chunk_id) or by_source.get(c.source, "") for c in answer.citations}


def render_sources(answer: Answer | None, lang: str = "en", doc_ids: dict[int, str] | None = None) -> str:
    """The right-hand column: citation cards, or the closest passages when the answer was refused."""
    if answer is None:
        return f'<div class="cite-empty">{_esc(t("no_sources", lang))}</div>'
    if answer.citations:
        ids = doc_ids if doc_ids is not None else citation_doc_ids(answer)
        cards = "".join(citation_card(c, ids.get(c.n, ""), lang) for c in answer.citations)
        return f'<div class="cite-list">{cards}</div>'
    if answer.passages:
        cards = "".join(passage_card(h, lang) for h in answer.passages)
        return f'<div class="cite-list"><p class="cite-note">{_esc(t("closest", lang))}</p>{cards}</div>'
    return f'<div class="cite-empty">{_esc(t("no_sources", lang))}</div>'


def chat_text(text: str) -> str:
    """Answer text made safe for the chat's Markdown renderer: no raw HTML from documents."""
    return html.escape(text, quote=False)


def export_markdown(answer: Answer, lang: str | None = None) -> str:
    lang = lang or answer.lang
    lines = [f"# {t('export_title', lang)}", "", f"**{t('export_question', lang)}:** {answer.question}", "",
             answer.answer.strip(), ""]
    if answer.citations:
        lines += [f"## {t('export_sources', lang)}", ""]
        for c in answer.citations:
            quote = " ".join(c.quote.split())
            lines.append(f"{c.n}. {c.title or Path(c.source).name}, {t('page', lang)} {c.page} ({c.lang}) — "
                         f"`{Path(c.source).name}`")
            lines.append(f"   > {quote}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_upload_results(results: list[UploadResult], lang: str = "en") -> str:
    if not results:
        return f'<p class="upload-note">{_esc(t("no_files", lang))}</p>'
    rows = []
    for r in results:
        reason = t(r.reason, lang, name=r.other) if r.reason in TEXT["en"] else r.reason
        detail = reason
        if r.status == "indexed":
            detail = f"{r.pages} p., {r.chunks} passages"
        status = t(r.status, lang) if r.status in ("indexed", "unchanged", "failed") else r.status
        rows.append(f'<tr class="st-{_esc(r.status)}"><td>{_esc(r.name)}</td>'
                    f'<td class="upload-status">{_esc(status)}</td><td>{_esc(detail)}</td></tr>')
    ok = sum(r.status == "indexed" for r in results)
    same = sum(r.status == "unchanged" for r in results)
    bad = sum(r.status == "failed" for r in results)
    summary = t("upload_done", lang, ok=ok, same=same, bad=bad)
    return (f'<table class="upload-results"><thead><tr><th>{_esc(t("file", lang))}</th>'
            f'<th>{_esc(t("status", lang))}</th><th>{_esc(t("detail", lang))}</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><p class="upload-note">{_esc(summary)}</p>')


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


# -- the Blocks ---------------------------------------------------------------------------------------------
def _warn(message: str) -> None:
    """A toast for the person at the browser. Gradio renders its text as HTML: escape it (file names...)."""
    gr.Warning(html.escape(message))


def _request_lang(request: gr.Request | None) -> str:
    if request is None:
        return "en"
    headers = getattr(request, "headers", None)
    return pick_lang(headers.get("accept-language") if headers is not None else None)


def document_choices(backend: Backend) -> list[tuple[str, str]]:
    """(label, filter value) for the documents dropdown. The value is the path as an escaped glob."""
    try:
        docs = list(backend.documents().values())
    except ArrivalError:
        return []
    labels = [d.title.strip() or Path(d.path).name for d in docs]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    out = []
    for d, label in zip(docs, labels, strict=True):
        if len(label) > 90:
            label = label[:88] + "…"
        if seen.get(label, 0) > 1:
            label = f"{label} ({Path(d.path).name})"
        out.append((label, glob.escape(d.path)))
    return sorted(out, key=lambda x: x[0].casefold())


def _write_export(answer: Answer, folder: Path) -> str:
    text = export_markdown(answer)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    path = folder / f"arrival-answer-{digest}.md"
    # Written aside and renamed: sessions with the same answer share the name, and Gradio may be reading it.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def build_blocks(backend: Backend) -> gr.Blocks:
    from arrival.assistant.i18n import gradio_i18n
    from arrival.index.retrieve import Filters

    i18n = gradio_i18n()
    settings = backend.settings

    exports = settings.home / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    # Gradio's copies of uploads and exports are removed after an hour (the uploads are kept under <home>/uploads)
    with gr.Blocks(title="arrival", fill_width=True, delete_cache=(3600, 3600)) as demo:
        last_answer = gr.State(None)
        with gr.Row(elem_id="arrival-header"):
            gr.Markdown(f"## arrival\n{i18n('subtitle')}", elem_id="arrival-title")
        with gr.Row(equal_height=False, elem_id="arrival-main"):
            with gr.Column(scale=3, min_width=420, elem_id="arrival-chat-col"):
                chatbot = gr.Chatbot(label=i18n("chat"), show_label=False, height=560, elem_id="arrival-chat",
                                     buttons=["copy"], render_markdown=True, sanitize_html=True,
                                     group_consecutive_messages=False)
                with gr.Row(elem_id="arrival-ask-row"):
                    question = gr.Textbox(label=i18n("question"), placeholder=i18n("placeholder"), lines=1,
                                          max_lines=4, scale=6, show_label=False, elem_id="arrival-question",
                                          autofocus=True, submit_btn=False)
                    ask = gr.Button(i18n("send"), variant="primary", scale=1, min_width=110, elem_id="arrival-ask")
                with gr.Row(elem_id="arrival-actions"):
                    export = gr.DownloadButton(i18n("export"), value=None, interactive=False, size="sm",
                                               variant="secondary", elem_id="arrival-export")
                    clear = gr.Button(i18n("clear"), size="sm", variant="secondary", elem_id="arrival-clear")
            with gr.Column(scale=2, min_width=340, elem_id="arrival-sources-col"):
                gr.Markdown(f"### {i18n('sources')}", elem_id="arrival-sources-title")
                placeholder = f'<div class="cite-empty">{i18n("no_sources")}</div>'
                sources = gr.HTML(placeholder, elem_id="arrival-sources", max_height=620,
                                  autoscroll=False)
        with gr.Accordion(i18n("options"), open=True, elem_id="arrival-options"), gr.Row():
            langs = gr.CheckboxGroup(choices=[("FR", "fr"), ("EN", "en")], value=[], label=i18n("languages"),
                                     elem_id="arrival-langs", scale=1)
            docs = gr.Dropdown(choices=[], value=[], multiselect=True, label=i18n("documents"),
                               elem_id="arrival-docs", scale=3, allow_custom_value=False)
            k = gr.Slider(1, 20, value=min(max(settings.k, 1), 20), step=1, label=i18n("k"),
                          elem_id="arrival-k", scale=1)
        with gr.Accordion(i18n("add_docs"), open=False, elem_id="arrival-add"):
            gr.Markdown(i18n("upload_help"))
            upload = gr.File(label=i18n("upload"), file_count="multiple", file_types=[".pdf"], type="filepath",
                             elem_id="arrival-upload", height=140)
            upload_results = gr.HTML("", elem_id="arrival-upload-results")

        # -- handlers -------------------------------------------------------------------------------------
        def respond(message: str, history: list[dict[str, Any]] | None, lang_filter: list[str] | None,
                    doc_filter: list[str] | None, k_value: float, request: gr.Request
                    ) -> Iterator[tuple[Any, ...]]:
            lang = _request_lang(request)
            history = list(history or [])
            q = " ".join((message or "").split())
            if not q:
                _warn(t("empty_question", lang))
                yield message, list(history), gr.skip(), gr.skip(), gr.skip()
                return
            history += [{"role": "user", "content": chat_text(q)}, {"role": "assistant", "content": "…"}]
            yield "", list(history), render_sources(None, lang), None, gr.DownloadButton(value=None, interactive=False)
            text = ""
            final: Answer | None = None
            try:
                if not backend.has_index():
                    raise IndexOpenError("no index yet")
                assistant = backend.assistant()
                filters = Filters(tuple(lang_filter or ()), tuple(doc_filter or ()))
                for part in assistant.stream(q, k=int(k_value), filters=filters):
                    if isinstance(part, Answer):
                        final = part
                    else:
                        text += part
                        history[-1] = {"role": "assistant", "content": chat_text(text)}
                        yield gr.skip(), list(history), gr.skip(), gr.skip(), gr.skip()
            except Exception as exc:
                if not isinstance(exc, ArrivalError):
                    log.exception("answering %r failed", q)
                msg = friendly_error(exc, lang)
                _warn(msg)
                history[-1] = {"role": "assistant", "content": chat_text(msg)}
                yield gr.skip(), list(history), render_sources(None, lang), None, gr.skip()
                return
            if final is None:
                return
            history[-1] = {"role": "assistant", "content": chat_text(final.answer)}
            try:
                export_value = gr.DownloadButton(value=_write_export(final, exports), interactive=True)
            except OSError:
                log.exception("could not write the export file")
                export_value = gr.DownloadButton(value=None, interactive=False)
            yield gr.skip(), list(history), render_sources(final, lang), final, export_value

        def refresh_docs(current: list[str] | None) -> Any:
            choices = document_choices(backend)
            values = {v for _, v in choices}
            return gr.Dropdown(choices=choices, value=[v for v in (current or []) if v in values])

        def on_upload(files: list[str] | str | None, current: list[str] | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, Any, Any]:  # noqa: B008
            lang = _request_lang(request)
            paths = [files] if isinstance(files, str) else list(files or [])
            if not paths:
                return render_upload_results([], lang), gr.skip(), gr.skip()
            progress(0.0, desc=t("ingesting", lang))

            def tick(path: str, done: int, total: int) -> None:
                desc = f"{t('ingesting', lang)} {Path(path).name}" if path else t("ingesting", lang)
                progress((done, total) if total else None, desc=desc, unit="PDF")

            try:
                results = backend.ingest_uploads([(Path(p).name, Path(p)) for p in paths], progress=tick)
            except Exception as exc:
                if not isinstance(exc, ArrivalError):
                    log.exception("upload failed")
                msg = friendly_error(exc, lang)
                _warn(msg)
                return f'<p class="upload-note error">{html.escape(msg)}</p>', gr.skip(), None
            bad = [r for r in results if r.status == "failed"]
            if bad:
                _warn(", ".join(f"{r.name}: {t(r.reason, lang) if r.reason in TEXT['en'] else r.reason}"
                                     for r in bad))
            return render_upload_results(results, lang), refresh_docs(current), None

        def clear_all(request: gr.Request) -> tuple[Any, ...]:
            return ([], render_sources(None, _request_lang(request)), None,
                    gr.DownloadButton(value=None, interactive=False), "")

        chat_outputs = [question, chatbot, sources, last_answer, export]
        chat_inputs = [question, chatbot, langs, docs, k]
        ask.click(respond, chat_inputs, chat_outputs, concurrency_limit=4, show_progress="hidden")
        question.submit(respond, chat_inputs, chat_outputs, concurrency_limit=4, show_progress="hidden")
        clear.click(clear_all, None, [chatbot, sources, last_answer, export, question], queue=False)
        upload.upload(on_upload, [upload, docs], [upload_results, docs, upload], concurrency_limit=1)
        demo.load(refresh_docs, [docs], [docs], queue=False)
    return demo
