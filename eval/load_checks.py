"""What a simulated chat user asks and how each reply is judged, shared by `arrival load` (eval/load.py) and the
Locust users (eval/locustfile.py).

A request counts as an error when the client raises (HTTP error, connection error, timeout, failed event), or
when the final chat is not what the page would show for a good answer: the history sent plus the question and
a non-empty answer that is either a cited answer (with citation cards in the sources column) or the
assistant's refusal. An error message rendered in the chat ("the model failed...") is an error too. Each
answer's export file is then downloaded, as a click on Export does (outside the timed latency), and must be the
Markdown of that answer.

Light on purpose: the Locust process imports it, so nothing here loads Gradio, the model or the index.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arrival.assistant.answer import LEAD, NO_VALUE, REFUSAL
from arrival.assistant.server import is_loopback
from arrival.errors import ArrivalError

# The chat's events for one question, run one after the other as the page chains them (Enter, Ask or an example):
# take the question from the box, stream the answer into the chatbot, show its sources and export.
API_TAKE, API_NAME, API_SHOW = "/take_question", "/respond", "/show_answer"
API_CLEAR = "/clear_all"  # the Clear button
CLEAR_EVERY = 10  # questions before a simulated user clears its chat

# What the assistant writes (assistant/answer.py), as the chat shows it: the lead line of an answer, a refusal,
# and a near miss ("The documents discuss ... but do not give ...").
INTROS = tuple(lead.split("{", 1)[0] for lead in LEAD.values())
REFUSALS = tuple(REFUSAL.values())
NEAR_MISSES = tuple(text.split("{", 1)[0] for text in NO_VALUE.values())

# (question, on_topic): realistic questions about the bundled GFMD 2019 round-table paper (corpus/), French and
# English, and two off-topic ones the assistant should refuse.
QUESTIONS: tuple[tuple[str, bool], ...] = (
    ("Que fait la ville de Malaga pour que les migrants accèdent aux services sans pièce d'identité ?", True),
    ("Does Malaga require migrants to show an ID card to access city services?", True),
    ("Qu'est-ce que le guichet unique de Lisbonne pour les immigrants ?", True),
    ("What is Lisbon's one-stop shop for immigrants?", True),
    ("Quels mécanismes de coordination entre autorités nationales et locales le document propose-t-il ?", True),
    ("What coordination mechanisms between national and local governments does the paper recommend?", True),
    ("Quels services offre le centre d'orientation pour les immigrants de São Paulo ?", True),
    ("How does the São Paulo Municipal Council of Immigrants involve migrants in city policy?", True),
    ("Quelle part de la population mondiale vivra en ville d'ici 2050 ?", True),
    ("What share of the world's population will live in urban areas by 2050?", True),
    ("Comment l'Agence Lyon Tranquillité et Médiation a-t-elle réduit les tensions sociales ?", True),
    ("What did the city of Taoyuan introduce for migrant workers?", True),
    ("Pourquoi les villes ont-elles besoin de données désagrégées sur la migration au niveau local ?", True),
    ("Why is it hard for cities to get data on irregular migration?", True),
    ("Comment la province de Pichincha encourage-t-elle les entreprises à embaucher des migrants ?", True),
    ("What can universities do for social cohesion in arrival cities?", True),
    ("Qu'est-ce qu'une ville d'arrivée ?", True),
    ("What are the local migration observatories set up in Niger?", True),
    ("How does Amman's City Resilience Strategy address refugees?", True),
    ("Quel rôle joue le Mécanisme des maires au sein du FMMD ?", True),
    ("What is the best recipe for a chocolate cake?", False),
    ("Quel temps fera-t-il demain à Tokyo ?", False),
)


class LoadError(ArrivalError):
    """The load could not run (bad URL or option, the server did not start); the message says why."""


# -- URLs ------------------------------------------------------------------------------------------------------
def check_url(url: str) -> str:
    """The URL normalised to end with '/', or LoadError when it is not http(s) on a loopback host."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise LoadError(f"bad --url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise LoadError(f"bad --url {url!r}: expected http://127.0.0.1:PORT/")
    if not is_loopback(host):
        raise LoadError(f"refusing to load {host}: only loopback servers (127.0.0.0/8, ::1, localhost) are allowed")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy from the env


def error_name(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the chat through Gradio's API ---------------------------------------------------------------------------
@contextlib.contextmanager
def no_telemetry() -> Iterator[None]:
    """gradio_client starts a telemetry thread unless GRADIO_ANALYTICS_ENABLED is "False" when a Client is made
    (its analytics_enabled=False argument alone does not turn it off)."""
    saved = {k: os.environ.get(k) for k in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY")}
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def client(url: str, timeout: float) -> Any:
    """A `gradio_client.Client`: one Gradio session, like one browser tab."""
    from gradio_client import Client

    # token=False: no Hugging Face token is read or sent; no telemetry (see no_telemetry); no proxy from the env.
    return Client(url, token=False, verbose=False, download_files=False, analytics_enabled=False,
                  httpx_kwargs={"trust_env": False, "timeout": timeout})


def _call(client: Any, timeout: float, *args: Any, api_name: str) -> Any:
    job = client.submit(*args, api_name=api_name)
    try:
        return job.result(timeout=timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            job.cancel()
        raise


def ask(client: Any, question: str, history: list[Any], timeout: float) -> tuple[Any, ...]:
    """One question through the chat's three events, as the page runs them (the chat's defaults: no filters,
    k=5): (question box, chat history, sources, export button) once the answer is complete. The last event runs
    even when the answer failed, as the page's does."""
    box = _call(client, timeout, question, api_name=API_TAKE)[0]
    try:
        history = _call(client, timeout, history, [], [], 5, api_name=API_NAME)
    finally:
        sources, export = _call(client, timeout, api_name=API_SHOW)
    return box, history, sources, export


def clear(client: Any, timeout: float) -> None:
    """The Clear button: an empty chat, no sources, no export, the first screen again."""
    _call(client, timeout, api_name=API_CLEAR)


# -- the checks ------------------------------------------------------------------------------------------------
def _text_of(message: Any) -> str:
    """The text of a chat message as gradio_client returns it (content: str, or a list of {text, type})."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def check_reply(question: str, sent: list[Any], outputs: Any) -> tuple[str | None, str, list[Any]]:
    """(error or None, "answered" | "refused", the new history) for the final outputs of one question."""
    if not isinstance(outputs, (tuple, list)) or len(outputs) < 3:
        return f"unexpected outputs: {str(outputs)[:120]}", "", sent
    history, sources = outputs[1], outputs[2]
    if not isinstance(history, list) or len(history) != len(sent) + 2:
        n = len(history) if isinstance(history, list) else "no"
        return f"chat has {n} messages, expected {len(sent) + 2}", "", sent
    user, bot = history[-2], history[-1]
    if user.get("role") != "user" or " ".join(_text_of(user).split()) != " ".join(question.split()):
        return f"chat shows another question: {_text_of(user)[:80]!r}", "", sent
    if [_text_of(m) for m in history[:-2]] != [_text_of(m) for m in sent]:
        return "chat history changed", "", sent
    text = _text_of(bot).strip()
    if bot.get("role") != "assistant" or not text or text == "…":
        return "empty answer", "", sent
    if text in REFUSALS or text.startswith(NEAR_MISSES):
        return None, "refused", history
    if text.startswith(INTROS) and "[1]" in text:
        if not isinstance(sources, str) or 'class="cite-card"' not in sources:
            return "answer without citation cards", "", sent
        return None, "answered", history
    return f"not an answer: {text[:120]!r}", "", sent


def check_export(question: str, outputs: Any, timeout: float) -> str | None:
    """What a click on Export would download, fetched from the server: None when it is the answer's Markdown."""
    button = outputs[3] if isinstance(outputs, (tuple, list)) and len(outputs) > 3 else None
    value = button.get("value") if isinstance(button, dict) else None
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url:
        return "export: no file offered"
    try:
        check_url(url)  # built by the server from our own request: loopback too, or it is not fetched
        with opener().open(url, timeout=timeout) as r:
            body = r.read(1 << 20).decode("utf-8", errors="replace")
    except (OSError, LoadError) as exc:
        return f"export: {error_name(exc)}"
    if not body.strip():
        return f"export: empty file {Path(urllib.parse.urlsplit(url).path).name}"
    if not body.startswith("# ") or f"{' '.join(question.split())}" not in body:
        return f"export: not this answer: {body[:80]!r}"
    return None
