"""The Gradio page: three tabs.

- Chat: a first screen (what is indexed, four example questions from the documents), streamed answers on the
  left, citation cards on the right; a citation opens its page in the PDF viewer beside the answer, the quote
  highlighted (assistant/viewer.py, static/viewer.js). Follow-up questions are rewritten from the conversation
  (assistant/followup.py) and the question actually searched is shown above the answer.
- Search: ranked passages with their scores, filters, CSV/JSONL export (assistant/ui_search.py).
- Library: every indexed document, failed uploads, removal, uploads with a progress bar per file
  (assistant/ui_library.py).

Labels follow the browser's language (gr.I18n); text rendered by the server follows the request's
Accept-Language (assistant/i18n.py). Rendering is in assistant/render.py: everything from a document is escaped.

Session state: Gradio keeps a table of components per session. A property update (`gr.update(...)`, `gr.skip()`,
a component returned by a handler) replaces the component in that table by a new object with a new id; the next
time the component is read as an input or given a plain value, Gradio also files the replacement under its own
id, and that entry is never removed. A component the chat reads or gives plain values to (the question box, the
sources) therefore never gets an update, and one that gets updates (the export button, the first screen, the
example buttons) is never read. The chat used to stream into the question box and the sources with `gr.skip()`:
two entries per question in every session (20 load users, 5 minutes: 1,062 questions, 1,066 Textbox and 1,071
HTML objects more alive at the end). A question is now three steps: take it from the box, stream the answer into
the chatbot only, then show its sources and export once (tests/test_ui_session.py counts the table).
"""

from __future__ import annotations

import html
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from arrival.assistant.exports import write_export
from arrival.assistant.followup import rewrite
from arrival.assistant.i18n import t
from arrival.assistant.render import (  # re-exported: the tests and eval/ import them from here
    chat_text,
    citation_card,
    citation_doc_ids,
    export_conversation,
    export_markdown,
    friendly_error,
    highlight,
    passage_card,
    pdf_href,
    render_overview,
    render_sources,
    render_upload_results,
    rewritten_note,
    viewer_note,
)
from arrival.assistant.ui_common import document_choices, refresh_dropdown, request_lang, warn
from arrival.assistant.viewer import pdfjs_dir
from arrival.errors import ArrivalError, IndexOpenError
from arrival.types import Answer

if TYPE_CHECKING:
    from arrival.assistant.server import Backend

__all__ = ["CSS_PATH", "build_blocks", "chat_text", "citation_card", "citation_doc_ids", "document_choices",
           "export_conversation", "export_markdown", "friendly_error", "highlight", "passage_card", "pdf_href",
           "render_sources", "render_upload_results"]

log = logging.getLogger(__name__)

CSS_PATH = Path(__file__).with_name("static") / "ui.css"
EXAMPLES = 4
MAX_TURNS = 20  # answers remembered for follow-ups and the export
BUSY_S = 600.0  # a question asked while the session's answer is under way is left in the box, for at most this long
BUSY = "an answer is under way in this session"
EXAMPLE_IDS = {f"arrival-example-{i}": i for i in range(EXAMPLES)}


def viewer_panel(lang: str) -> str:
    """The viewer beside the answer (hidden until a citation is clicked; static/app.js opens and closes it)."""
    e = html.escape
    if pdfjs_dir() is None:
        return viewer_note(lang)
    return (f'<section id="arrival-viewer-panel" class="viewer-panel" hidden aria-labelledby="arrival-viewer-heading">'
            f'<div class="viewer-head"><h3 id="arrival-viewer-heading" tabindex="-1">{e(t("viewer_title", lang))}'
            f'<span class="viewer-doc"></span></h3>'
            f'<button type="button" class="viewer-close" aria-label="{e(t("viewer_close", lang))}" '
            f'title="{e(t("viewer_close", lang))}">×</button></div>'
            f'<iframe name="arrival-viewer" class="viewer-frame" title="{e(t("viewer_frame", lang))}" '
            f'src="about:blank"></iframe></section>')


def example_updates(backend: Backend) -> tuple[Any, ...]:
    """The first screen: the overview, an update per example button (hidden when there is no example), and the
    examples' questions (the buttons are never read: a click takes its question from this list)."""
    from arrival.assistant.examples import overview

    try:
        ov = overview(backend)
    except ArrivalError:
        ov = None
    texts = [e.text for e in ov.examples][:EXAMPLES] if ov else []
    buttons = [gr.update(value=texts[i], visible=True) if i < len(texts) else gr.update(visible=False)
               for i in range(EXAMPLES)]
    return (ov, *buttons, texts)


def build_blocks(backend: Backend) -> gr.Blocks:
    from arrival.assistant.i18n import gradio_i18n
    from arrival.assistant.ui_library import build_library_tab
    from arrival.assistant.ui_search import build_search_tab
    from arrival.index.retrieve import Filters

    i18n = gradio_i18n()
    settings = backend.settings
    exports = Path(settings.home) / "exports"
    viewer_on = pdfjs_dir() is not None

    # Gradio's copies of uploads and exports are removed after an hour (the uploads are kept under <home>/uploads)
    with gr.Blocks(title="arrival", fill_width=True, delete_cache=(3600, 3600)) as demo:
        last_answer = gr.State(None)
        conversation = gr.State([])  # the answers so far (their question as searched): follow-ups, the export
        asked = gr.State(None)  # the question taken from the box (or an example) for the answer under way
        export_file = gr.State(None)  # the conversation's Markdown, written with the last answer
        busy = gr.State(0.0)  # time.monotonic() when the session's answer under way was asked (0: none)
        example_texts = gr.State([])  # the example buttons' questions
        with gr.Row(elem_id="arrival-header"):
            gr.Markdown(f"## arrival\n{i18n('subtitle')}", elem_id="arrival-title")
        with gr.Tabs(elem_id="arrival-tabs"):
            with gr.Tab(i18n("tab_chat"), id="chat", elem_id="arrival-tab-chat"):
                with gr.Row(equal_height=False, elem_id="arrival-main"):
                    with gr.Column(scale=3, min_width=300, elem_id="arrival-chat-col"):
                        with gr.Column(elem_id="arrival-welcome") as welcome:
                            overview_html = gr.HTML("", elem_id="arrival-overview", js_on_load=None)
                            gr.Markdown(i18n("examples_title"), elem_id="arrival-examples-title")
                            with gr.Row(elem_id="arrival-examples"):
                                example_buttons = [
                                    gr.Button("", visible=False, size="sm", variant="secondary", min_width=200,
                                              elem_id=f"arrival-example-{i}", elem_classes=["arrival-example"])
                                    for i in range(EXAMPLES)]
                        chatbot = gr.Chatbot(label=i18n("chat"), show_label=False, height=520, elem_id="arrival-chat",
                                             buttons=["copy"], render_markdown=True, sanitize_html=True,
                                             group_consecutive_messages=False)
                        with gr.Row(elem_id="arrival-ask-row"):
                            question = gr.Textbox(label=i18n("question"), placeholder=i18n("placeholder"), lines=1,
                                                  max_lines=4, scale=6, show_label=False, elem_id="arrival-question",
                                                  autofocus=True, submit_btn=False, min_width=160)
                            ask = gr.Button(i18n("send"), variant="primary", scale=1, min_width=90,
                                            elem_id="arrival-ask")
                        with gr.Row(elem_id="arrival-actions"):
                            export = gr.DownloadButton(i18n("export"), value=None, interactive=False, size="sm",
                                                       variant="secondary", elem_id="arrival-export")
                            clear = gr.Button(i18n("clear"), size="sm", variant="secondary", elem_id="arrival-clear")
                    with gr.Column(scale=2, min_width=300, elem_id="arrival-sources-col"):
                        panel = gr.HTML("", elem_id="arrival-viewer", js_on_load=None)
                        gr.Markdown(f"### {i18n('sources')}", elem_id="arrival-sources-title")
                        placeholder = f'<div class="cite-empty">{i18n("no_sources")}</div>'
                        sources = gr.HTML(placeholder, elem_id="arrival-sources", max_height=620, autoscroll=False,
                                          js_on_load=None)
                with gr.Accordion(i18n("options"), open=False, elem_id="arrival-options"), gr.Row():
                    langs = gr.CheckboxGroup(choices=[("FR", "fr"), ("EN", "en")], value=[], label=i18n("languages"),
                                             elem_id="arrival-langs", scale=1, min_width=200)
                    docs = gr.Dropdown(choices=[], value=[], multiselect=True, label=i18n("documents"),
                                       elem_id="arrival-docs", scale=3, allow_custom_value=False, min_width=240)
                    k = gr.Slider(1, 20, value=min(max(settings.k, 1), 20), step=1, label=i18n("k"),
                                  elem_id="arrival-k", scale=1, min_width=200)
            with gr.Tab(i18n("tab_search"), id="search", elem_id="arrival-tab-search"):
                search_docs = build_search_tab(backend, i18n, exports)
            with gr.Tab(i18n("tab_library"), id="library", elem_id="arrival-tab-library") as library_tab:
                library = build_library_tab(backend, i18n)

        # -- the chat: take the question, stream the answer into the chatbot, then show its sources ---------
        def take_question(message: str, texts: list[str] | None, started: float, last: Answer | None,
                          event: gr.EventData, request: gr.Request) -> tuple[Any, ...]:
            """Enter, Ask or an example: the question moves to `asked` and the box is cleared; the sources, the
            export and the first screen are reset. While the session's answer is under way the question is not
            taken: the box keeps it and the chain stops here (an error nobody sees; `.success` below)."""
            lang = request_lang(request)
            if started and time.monotonic() - started < BUSY_S:
                raise gr.Error(BUSY, visible=False, print_exception=False)
            text = message
            example = EXAMPLE_IDS.get(str(getattr(getattr(event, "target", None), "elem_id", "") or ""))
            if example is not None:
                text = texts[example] if texts and example < len(texts) else ""
            if not " ".join((text or "").split()):  # an empty question: respond says why, the rest is left as it is
                return message, "", render_sources(last, lang, viewer=viewer_on), gr.skip(), gr.skip(), 0.0
            return ("", text, render_sources(None, lang), gr.update(value=None, interactive=False),
                    gr.update(visible=False), time.monotonic())

        def respond(message: str | None, history: list[dict[str, Any]] | None, lang_filter: list[str] | None,
                    doc_filter: list[str] | None, k_value: float, conv: list[Answer] | None = None,
                    request: gr.Request | None = None) -> Iterator[tuple[Any, ...]]:
            """The answer streamed into the chatbot: (history, last answer, conversation, export file); the three
            states are set once, at the end."""
            lang = request_lang(request)
            history = list(history or [])
            conv = list(conv or [])
            keep = gr.skip()  # a state left as it is (a State is never replaced, unlike a component)
            q = " ".join((message or "").split())
            if not q:
                warn(t("empty_question", lang))
                yield history, keep, keep, keep
                return
            asked_q = rewrite(q, conv[-1].question if conv and history else "")
            note = rewritten_note(asked_q.query, lang) if asked_q.rewritten else ""
            history += [{"role": "user", "content": chat_text(q)}, {"role": "assistant", "content": note + "…"}]
            yield list(history), keep, keep, keep
            text = ""
            final: Answer | None = None
            try:
                if not backend.has_index():
                    raise IndexOpenError("no index yet")
                assistant = backend.assistant()
                filters = Filters(tuple(lang_filter or ()), tuple(doc_filter or ()))
                for part in assistant.stream(asked_q.query, k=int(k_value), filters=filters):
                    if isinstance(part, Answer):
                        final = part
                    else:
                        text += part
                        history[-1] = {"role": "assistant", "content": note + chat_text(text)}
                        yield list(history), keep, keep, keep
            except Exception as exc:
                if not isinstance(exc, ArrivalError):
                    log.exception("answering %r failed", asked_q.query)
                msg = friendly_error(exc, lang)
                warn(msg)
                history[-1] = {"role": "assistant", "content": chat_text(msg)}
                yield list(history), None, keep, None
                return
            if final is None:
                yield list(history), None, keep, None
                return
            history[-1] = {"role": "assistant", "content": note + chat_text(final.answer)}
            path: str | None = None
            try:
                turns = [*conv, final][-MAX_TURNS:] if history[:-2] else [final]
                path = str(write_export(exports, "arrival-conversation", ".md",
                                        export_conversation(turns, final.lang)))
            except OSError:
                log.exception("could not write the export file")
            conv = [*(conv if history[:-2] else []), final][-MAX_TURNS:]
            yield list(history), final, conv, path

        def show_answer(last: Answer | None, path: str | None, request: gr.Request) -> tuple[Any, ...]:
            """The sources of the last answer and its export, once the answer is complete; the session is free."""
            ready = bool(path) and Path(str(path)).is_file()  # exports older than a day are removed
            return (render_sources(last, request_lang(request), viewer=viewer_on),
                    gr.update(value=path if ready else None, interactive=ready), 0.0)

        def clear_all(request: gr.Request) -> tuple[Any, ...]:
            return ([], render_sources(None, request_lang(request)), None, gr.update(value=None, interactive=False),
                    "", [], gr.update(visible=True), None)

        def on_load(current: list[str] | None, current_search: list[str] | None, request: gr.Request
                    ) -> tuple[Any, ...]:
            from arrival.assistant.examples import summary

            lang = request_lang(request)
            try:
                ov = summary(backend)
            except ArrivalError:
                ov = None
            return (refresh_dropdown(backend, current), refresh_dropdown(backend, current_search), viewer_panel(lang),
                    render_overview(ov, lang))

        def load_examples() -> tuple[Any, ...]:
            return tuple(example_updates(backend)[1:])

        triggers = [ask.click, question.submit, *(b.click for b in example_buttons)]
        gr.on(triggers, take_question, [question, example_texts, busy, last_answer],
              [question, asked, sources, export, welcome, busy], queue=False, show_progress="hidden").success(
            respond, [asked, chatbot, langs, docs, k, conversation], [chatbot, last_answer, conversation, export_file],
            concurrency_limit=4, show_progress="hidden").then(
            show_answer, [last_answer, export_file], [sources, export, busy], queue=False, show_progress="hidden")
        clear.click(clear_all, None, [chatbot, sources, last_answer, export, question, conversation, welcome,
                                      export_file], queue=False)
        demo.load(on_load, [docs, search_docs], [docs, search_docs, panel, overview_html], queue=False)
        first_screen = [*example_buttons, example_texts]
        demo.load(load_examples, None, first_screen, show_progress="hidden")

        def load_overview(request: gr.Request) -> str:
            from arrival.assistant.examples import summary

            return render_overview(summary(backend), request_lang(request))

        library.connect(demo, library_tab, dropdowns=(docs, search_docs), first_screen=(overview_html, first_screen),
                        load_overview=load_overview, load_examples=load_examples)
    return demo
