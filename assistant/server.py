"""The web server: the Gradio chat mounted on a FastAPI app that also serves indexed PDFs at /pdf/{doc_id}, the PDF
viewer at /viewer/ with PDF.js at /pdfjs/ (assistant/viewer.py), and the chat's own script at /arrival-static/.

One `Backend` per server holds the settings, the embedder (loaded once, lazily) and the Retriever/Assistant
shared by every browser session. Uploads are checked (PDF signature, size), stored under <home>/uploads with a
sanitized, never-colliding file name, then ingested.

Auth: when `settings.password` is set, a login middleware (assistant/auth.py) guards every path — the chat,
Gradio's API, /pdf, the viewer and PDF.js — with a signed session cookie. Bound to an address other than loopback
without a password, `arrival serve` refuses to start unless told `--public-without-password`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arrival.assistant.uploads import (  # re-exported: the tests and eval/ use them from here
    SAME_AS,
    UploadError,
    UploadResult,
    sanitize_filename,
    store_upload,
)
from arrival.errors import ArrivalError
from arrival.settings import Settings

__all__ = ["Backend", "UploadError", "UploadResult", "build_app", "bundled_corpus", "exposure_refusal",
           "exposure_warning", "index_is_empty", "is_loopback", "sanitize_filename", "serve", "store_upload"]

if TYPE_CHECKING:
    from fastapi import FastAPI

    from arrival.assistant.answer import Assistant
    from arrival.assistant.llm import LlmAssistant
    from arrival.index.build import Indexer
    from arrival.index.embed import Embedder
    from arrival.index.retrieve import Retriever
    from arrival.index.view import DocInfo

log = logging.getLogger(__name__)

USERNAME = "arrival"
DOC_ID = re.compile(r"[0-9a-f]{16}")
UPLOADS = "uploads"


# -- the shared backend -----------------------------------------------------------------------------------
@dataclass
class Backend:
    """Everything a server shares between sessions. The model is loaded once, on first use."""

    settings: Settings
    _embedder: Embedder | None = None
    _retriever: Retriever | None = field(default=None, init=False)
    _assistant: Assistant | LlmAssistant | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ingest_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    cache: dict[str, Any] = field(default_factory=dict, init=False)  # per-generation results (assistant/examples)
    cache_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def ingest_lock(self) -> threading.Lock:
        """Held while this server writes the index (uploads, removals): one at a time."""
        return self._ingest_lock

    @property
    def uploads_dir(self) -> Path:
        return Path(self.settings.home) / UPLOADS

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from arrival.index.embed import load_embedder

                s = self.settings
                self._embedder = load_embedder(s.model, s.cache, s.threads, s.batch_size)
            return self._embedder

    def retriever(self) -> Retriever:
        emb = self.embedder()
        with self._lock:
            if self._retriever is None:
                from arrival.index.retrieve import Retriever

                self._retriever = Retriever.from_settings(self.settings, emb)
            return self._retriever

    def indexer(self) -> Indexer:
        """A writer with the same embedders as the retriever (loaded once per server)."""
        from arrival.index.build import Indexer

        ret = self.retriever()
        return Indexer(self.settings, ret.embedder, ret.second)

    def assistant(self) -> Assistant | LlmAssistant:
        """The extractive assistant, or the generative one when a chat model is configured (ARRIVAL_LLM)."""
        ret = self.retriever()
        with self._lock:
            if self._assistant is None:
                from arrival.assistant.llm import make_assistant

                self._assistant = make_assistant(self.settings, ret)
            return self._assistant

    def has_index(self) -> bool:
        from arrival.index.backend import open_backend

        return open_backend(self.settings).has_index()

    def documents(self) -> dict[str, DocInfo]:
        """The indexed documents by doc_id; empty when there is no index yet."""
        if not self.has_index():
            return {}
        return self.retriever().snapshot().documents()

    def pdf_path(self, doc_id: str) -> Path | None:
        """The file of an indexed document, if it is still the one that was indexed (same size)."""
        if not DOC_ID.fullmatch(doc_id):
            return None
        try:
            info = self.documents().get(doc_id)
        except ArrivalError:
            return None
        if info is None:
            return None
        path = Path(info.abspath)
        try:
            st = path.stat()
        except OSError:
            return None
        if not path.is_file() or st.st_size != info.size:
            return None
        return path

    def ingest_uploads(self, files: Sequence[tuple[str, Path]],
                       progress: Callable[[str, int, int], None] | None = None,
                       events: Callable[[int, str], None] | None = None) -> list[UploadResult]:
        """Store then index uploaded files: (name given by the user, temporary path) pairs, one result each.

        `progress` gets the Indexer's (path, done, total); `events` gets (index of the file, stage) with stage
        checking, reading (stored, waiting to be parsed), indexing (parsed, being embedded), writing (the new
        index generation) and done. Failures are recorded for the library (assistant/library.py)."""
        from arrival.assistant.failures import record_results

        def event(i: int, stage: str) -> None:
            if events is not None:
                events(i, stage)

        results: list[UploadResult] = []
        with self._ingest_lock:
            stored: list[tuple[int, Path, bool]] = []
            for i, (name, src) in enumerate(files):
                display = sanitize_filename(name)
                event(i, "checking")
                try:
                    path, created = store_upload(src, name, self.uploads_dir, self.settings.max_pdf_mb << 20)
                except UploadError as exc:
                    results.append(UploadResult(display, "failed", exc.key))
                    event(i, "done")
                    continue
                results.append(UploadResult(display, "", stored=str(path)))
                stored.append((len(results) - 1, path, created))
                event(i, "reading")
            if stored:
                by_stored = {str(path): i for i, path, _ in stored}

                def tick(path: str, done: int, total: int) -> None:
                    if progress is not None:
                        progress(path, done, total)
                    if path in by_stored:
                        event(by_stored[path], "indexing")
                    elif not path:
                        for i, _, _ in stored:
                            event(i, "writing")

                try:
                    report = self.indexer().ingest(
                        [p for _, p, _ in stored], wait=120.0, progress=tick)
                except BaseException:
                    for _, path, created in stored:
                        if created:
                            path.unlink(missing_ok=True)
                    raise
                by_path = {f.path: f for f in report.files}
                for i, path, created in stored:
                    f = by_path.get(str(path))
                    r = results[i]
                    if f is None:
                        r.status, r.reason = "failed", "not processed"
                    else:
                        r.status, r.reason, r.pages, r.chunks = f.status, f.reason, f.pages, f.chunks
                        if f.status == "unchanged" and f.reason.startswith(SAME_AS):
                            r.reason, r.other = "same_as", Path(f.reason[len(SAME_AS):]).name
                    # a new copy that failed, or that duplicates a document already indexed elsewhere, is not kept
                    if created and (r.status == "failed" or (r.status == "unchanged" and r.reason)):
                        path.unlink(missing_ok=True)
                        r.stored = ""
                    event(i, "done")
        record_results(self.settings.home, [(r.name, r.status, r.reason) for r in results])
        return results


# -- the app ------------------------------------------------------------------------------------------------
HEAD = '<script type="module" src="arrival-static/app.js"></script>'


def build_app(settings: Settings, embedder: Embedder | None = None, backend: Backend | None = None) -> FastAPI:
    """The FastAPI app: /pdf/{doc_id}, the viewer, plus the Gradio chat mounted at /; behind the login when a
    password is set."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import FileResponse, PlainTextResponse, Response

    from arrival.assistant.auth import LoginMiddleware
    from arrival.assistant.i18n import gradio_i18n
    from arrival.assistant.ui import CSS_PATH, build_blocks
    from arrival.assistant.viewer import add_routes

    backend = backend or Backend(settings, embedder)
    app = FastAPI(title="arrival", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend

    def pdf(request: Request) -> Response:
        doc_id = str(request.path_params.get("doc_id", ""))
        path = backend.pdf_path(doc_id)
        if path is None:
            return PlainTextResponse("no such document", status_code=404)
        return FileResponse(path, media_type="application/pdf", filename=path.name,
                            content_disposition_type="inline",
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"})

    # a plain Starlette route: served from the index by doc_id only, never from a path the client names
    app.add_route("/pdf/{doc_id}", pdf, methods=["GET", "HEAD"])
    add_routes(app)

    blocks = build_blocks(backend)
    app = gr.mount_gradio_app(
        app, blocks, path="/", i18n=gradio_i18n(), css_paths=[CSS_PATH], theme=_theme(), head=HEAD,
        max_file_size=f"{settings.max_pdf_mb}mb", footer_links=[], run_history=False, ssr_mode=False,
        show_error=False,
    )
    if settings.password:
        app.add_middleware(LoginMiddleware, password=settings.password)
    return app


def _theme() -> Any:
    """Soft colours with the system's fonts: the page loads nothing from outside this server."""
    import gradio as gr

    sans = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", font=sans, font_mono=mono).set(
        button_primary_background_fill="*primary_600", button_primary_background_fill_hover="*primary_700",
        button_primary_text_color="white")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (brackets allowed) or localhost."""
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(settings: Settings, host: str) -> str | None:
    if is_loopback(host) or settings.password:
        return None
    return (f"serving on {host} without a password: anyone who can reach this address can read the documents "
            f"and add new ones; set ARRIVAL_PASSWORD to require one")


def exposure_refusal(settings: Settings, host: str, public_without_password: bool = False) -> str | None:
    """Why `serve` refuses to start (one line), or None: a non-loopback address needs a password, or the
    explicit `--public-without-password`."""
    if is_loopback(host) or settings.password or public_without_password:
        return None
    return (f"refusing to serve on {host} without a password: set ARRIVAL_PASSWORD, or pass "
            f"--public-without-password to serve it to anyone who can reach this address")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, embedder: Embedder | None = None,
          public_without_password: bool = False) -> None:
    """Run the chat until interrupted. Binds the loopback interface unless told otherwise."""
    import uvicorn

    from arrival.errors import SettingsError

    refusal = exposure_refusal(settings, host, public_without_password)
    if refusal:
        raise SettingsError(refusal)
    warning = exposure_warning(settings, host)
    if warning:
        log.warning("%s", warning)
    if settings.llm:  # a misconfigured chat model fails here, in one line, not at the first question
        from arrival.assistant.llm import load_chat_model

        load_chat_model(settings.llm, settings.llm_base_url, check_only=True)
    app = build_app(settings, embedder)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def bundled_corpus() -> Path:
    """The demo documents indexed when a server starts on an empty index (ARRIVAL_CORPUS overrides)."""
    env = os.environ.get("ARRIVAL_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "corpus"


def index_is_empty(backend: Backend) -> bool:
    if not backend.has_index():
        return True
    try:
        return not backend.documents()
    except ArrivalError:
        return False  # an index that cannot be opened is reported by the page, not replaced
