"""The web server: the Gradio chat mounted on a FastAPI app that also serves indexed PDFs at /pdf/{doc_id}.

One `Backend` per server holds the settings, the embedder (loaded once, lazily) and the Retriever/Assistant
shared by every browser session. Uploads are checked (PDF signature, size), stored under <home>/uploads with a
sanitized, never-colliding file name, then ingested.

Auth: when `settings.password` is set, Gradio's login protects the chat, and /pdf checks the same session
cookie against the Gradio app's token table: no valid login, no PDF (401).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arrival.errors import ArrivalError
from arrival.ingest.pdf import sha256_file
from arrival.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request

    from arrival.assistant.answer import Assistant
    from arrival.assistant.llm import LlmAssistant
    from arrival.index.embed import Embedder
    from arrival.index.retrieve import Retriever
    from arrival.index.store import DocInfo

log = logging.getLogger(__name__)

USERNAME = "arrival"
DOC_ID = re.compile(r"[0-9a-f]{16}")
UPLOADS = "uploads"
MAX_NAME_BYTES = 180
SAME_AS = "same content as "  # the Indexer's reason for a file whose twin is already indexed


# -- uploads ----------------------------------------------------------------------------------------------
class UploadError(ArrivalError):
    """An uploaded file was refused. `key` names the reason's text in assistant.i18n; `fmt` fills it."""

    def __init__(self, key: str, **fmt: object) -> None:
        from arrival.assistant.i18n import t

        super().__init__(t(key, "en", **fmt))
        self.key = key
        self.fmt = fmt


_DROP = re.compile(r'["`*<>?|:]')


def sanitize_filename(name: str) -> str:
    """A safe file name for an upload: its last path component, without control characters, path separators,
    shell/Windows-special characters or leading dots; accents and spaces kept; always ending in `.pdf`."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in name:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp") or ch.isspace():
            kept.append(" ")
        elif cat in ("Cf", "Cs", "Co", "Cn"):  # invisible format characters (e.g. RTL overrides), surrogates
            continue
        else:
            kept.append(ch)
    name = _DROP.sub("", "".join(kept))
    name = " ".join(name.split()).strip(". ")
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() != "pdf":
        stem = name
    stem = stem.strip(". ")
    raw = stem.encode("utf-8")[:MAX_NAME_BYTES]
    stem = raw.decode("utf-8", errors="ignore").rstrip(". ")
    return f"{stem or 'document'}.pdf"


def store_upload(src: Path, name: str, dest_dir: Path, max_bytes: int) -> tuple[Path, bool]:
    """Check an uploaded file and copy it into `dest_dir` under a sanitized name.

    Returns (stored path, created). A file of that name with the same content is reused (created=False); one
    with other content is never overwritten: the new file gets a "-2", "-3"... suffix instead.
    """
    try:
        size = src.stat().st_size
        with src.open("rb") as fh:
            head = fh.read(5)
    except OSError:
        raise UploadError("unreadable") from None
    if size > max_bytes:
        raise UploadError("too_big", mb=max_bytes >> 20)
    if head != b"%PDF-":
        raise UploadError("not_pdf")
    dest_dir.mkdir(parents=True, exist_ok=True)
    safe = sanitize_filename(name)
    stem = safe[: -len(".pdf")]
    digest = sha256_file(src)
    root = dest_dir.resolve()
    for i in range(1, 10_000):
        target = dest_dir / (safe if i == 1 else f"{stem}-{i}.pdf")
        if target.parent.resolve() != root or "/" in target.name or target.name.startswith("."):  # belt and braces
            raise UploadError("unreadable")
        try:
            out = target.open("xb")  # O_EXCL: never replaces a file, nor follows a planted symlink
        except FileExistsError:
            if target.is_file() and not target.is_symlink() and sha256_file(target) == digest:
                return target, False
            continue
        try:
            with out, src.open("rb") as fh:
                while block := fh.read(1 << 20):
                    out.write(block)
        except OSError:
            target.unlink(missing_ok=True)
            raise UploadError("unreadable") from None
        return target, True
    raise UploadError("unreadable")


@dataclass
class UploadResult:
    name: str  # the name the user gave
    status: str  # indexed | unchanged | failed
    reason: str = ""
    pages: int = 0
    chunks: int = 0
    stored: str = ""
    other: str = ""  # for reason "same_as": the file name of the document with the same content


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

    def assistant(self) -> Assistant | LlmAssistant:
        """The extractive assistant, or the generative one when a chat model is configured (ARRIVAL_LLM)."""
        ret = self.retriever()
        with self._lock:
            if self._assistant is None:
                from arrival.assistant.llm import make_assistant

                self._assistant = make_assistant(self.settings, ret)
            return self._assistant

    def has_index(self) -> bool:
        from arrival.index.store import IndexStore

        return IndexStore(Path(self.settings.home)).current() is not None

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
                       progress: Callable[[str, int, int], None] | None = None) -> list[UploadResult]:
        """Store then index uploaded files: (name given by the user, temporary path) pairs, one result each."""
        from arrival.index.build import Indexer

        results: list[UploadResult] = []
        with self._ingest_lock:
            stored: list[tuple[int, Path, bool]] = []
            for name, src in files:
                display = sanitize_filename(name)
                try:
                    path, created = store_upload(src, name, self.uploads_dir, self.settings.max_pdf_mb << 20)
                except UploadError as exc:
                    results.append(UploadResult(display, "failed", exc.key))
                    continue
                results.append(UploadResult(display, "", stored=str(path)))
                stored.append((len(results) - 1, path, created))
            if not stored:
                return results
            try:
                report = Indexer(self.settings, self.embedder()).ingest(
                    [p for _, p, _ in stored], wait=120.0, progress=progress)
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
        return results


# -- the app ------------------------------------------------------------------------------------------------
def _check_password(settings: Settings) -> Callable[[str, str], bool]:
    expected = settings.password.encode()

    def auth(username: str, password: str) -> bool:  # any user name; the password is what counts
        return secrets.compare_digest(password.encode(), expected)

    return auth


def _gradio_app(app: FastAPI) -> Any:
    from gradio.routes import App
    from starlette.routing import Mount

    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, App):
            return route.app
    return None


def is_logged_in(app: FastAPI, request: Request) -> bool:
    """True when the request carries a session cookie of a user that logged in to the mounted Gradio app."""
    gapp = _gradio_app(app)
    if gapp is None:
        return False
    cid = gapp.cookie_id
    token = request.cookies.get(f"access-token-{cid}") or request.cookies.get(f"access-token-unsecure-{cid}")
    return token is not None and gapp.tokens.get(token) is not None


def build_app(settings: Settings, embedder: Embedder | None = None, backend: Backend | None = None) -> FastAPI:
    """The FastAPI app: /pdf/{doc_id} plus the Gradio chat mounted at /."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from fastapi import FastAPI
    from starlette.responses import FileResponse, PlainTextResponse, Response

    from arrival.assistant.i18n import gradio_i18n
    from arrival.assistant.ui import CSS_PATH, build_blocks

    backend = backend or Backend(settings, embedder)
    app = FastAPI(title="arrival", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend

    def pdf(request: Request) -> Response:
        doc_id = str(request.path_params.get("doc_id", ""))
        if settings.password and not is_logged_in(app, request):
            return PlainTextResponse("login required", status_code=401)
        path = backend.pdf_path(doc_id)
        if path is None:
            return PlainTextResponse("no such document", status_code=404)
        return FileResponse(path, media_type="application/pdf", filename=path.name,
                            content_disposition_type="inline",
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"})

    # a plain Starlette route: served from the index by doc_id only, never from a path the client names
    app.add_route("/pdf/{doc_id}", pdf, methods=["GET", "HEAD"])

    blocks = build_blocks(backend)
    auth = _check_password(settings) if settings.password else None
    return gr.mount_gradio_app(
        app, blocks, path="/", auth=auth,
        auth_message="arrival — mot de passe / password" if auth else None,
        i18n=gradio_i18n(), css_paths=[CSS_PATH], theme=_theme(),
        max_file_size=f"{settings.max_pdf_mb}mb", footer_links=[], run_history=False, ssr_mode=False,
        show_error=False,
    )


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


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, embedder: Embedder | None = None) -> None:
    """Run the chat until interrupted. Binds the loopback interface unless told otherwise."""
    import uvicorn

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
