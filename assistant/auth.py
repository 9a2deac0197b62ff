"""The password login: an ASGI middleware in front of the whole app (chat, Gradio's API, /pdf, the viewer, PDF.js).

With `settings.password` set, every request needs the session cookie that `POST /login` hands out for the right
password; without it a page request (the chat's address, or anything asked for as HTML) is sent to the login form
and anything else gets 401. The cookie is signed (HMAC-SHA256) with a key made when the server starts, carries its
expiry (12 hours) and is HttpOnly and SameSite=Lax; restarting the server logs everyone out. Failed attempts are
slowed down (half a second each) and limited per client address (10 a minute). The login form is in the
browser's language (French or English).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import secrets
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from arrival.assistant.i18n import pick_lang, t

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "arrival_session"
SESSION_S = 12 * 3600
FAIL_DELAY_S = 0.5
MAX_FAILS = 10  # per client address and minute
MAX_FORM_BYTES = 4096
OPEN_PATHS = ("/login", "/logout")


class Sessions:
    """Signed, expiring session tokens: "<expiry>.<nonce>.<signature>"."""

    def __init__(self, key: bytes | None = None, lifetime_s: float = SESSION_S) -> None:
        self.key = key or secrets.token_bytes(32)
        self.lifetime_s = lifetime_s

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self.key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, now: float | None = None) -> str:
        payload = f"{int((now or time.time()) + self.lifetime_s)}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._sign(payload)}"

    def valid(self, token: str | None, now: float | None = None) -> bool:
        if not token or token.count(".") != 2:
            return False
        payload, _, sig = token.rpartition(".")
        if not hmac.compare_digest(sig, self._sign(payload)):
            return False
        try:
            expiry = int(payload.split(".", 1)[0])
        except ValueError:
            return False
        return expiry > (now or time.time())


def _cookies(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k:
                    out.setdefault(k, v)
    return out


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers") or []:
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


def _safe_next(target: str) -> str:
    """Only a path on this server: never "//host" or "https://..." (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_page(lang: str, root: str, target: str, error: str = "") -> str:
    e = html.escape
    err = f'<p class="err" role="alert">{e(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>arrival — {e(t("login_title", lang))}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f5f5fb; margin: 0; display: grid; place-items: center;
  min-height: 100vh; color: #1f2937; }}
main {{ background: white; padding: 2rem; border-radius: 12px; box-shadow: 0 2px 12px rgb(0 0 0 / 0.08);
  width: min(22rem, 90vw); }}
h1 {{ margin: 0 0 0.3rem 0; font-size: 1.4rem; }} p {{ margin: 0 0 1rem 0; color: #4b5563; }}
label {{ display: block; font-weight: 600; margin-bottom: 0.3rem; }}
input {{ width: 100%; box-sizing: border-box; padding: 0.55rem; font-size: 1rem; border: 1px solid #9ca3af;
  border-radius: 6px; }}
button {{ margin-top: 1rem; width: 100%; padding: 0.6rem; font-size: 1rem; border: 0; border-radius: 6px;
  background: #4338ca; color: white; font-weight: 600; cursor: pointer; }}
button:focus-visible, input:focus-visible {{ outline: 3px solid #f59e0b; outline-offset: 2px; }}
.err {{ color: #b91c1c; font-weight: 600; }}
</style></head>
<body><main><h1>arrival</h1><p>{e(t("login_help", lang))}</p>{err}
<form method="post" action="{e(root)}/login">
<input type="hidden" name="next" value="{e(target)}">
<label for="password">{e(t("password", lang))}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">{e(t("login", lang))}</button>
</form></main></body></html>"""


class LoginMiddleware:
    """Everything behind the password, except the login form itself."""

    def __init__(self, app: ASGIApp, password: str, sessions: Sessions | None = None) -> None:
        self.app = app
        self.expected = hashlib.sha256(password.encode()).digest()
        self.sessions = sessions or Sessions()
        self._fails: dict[str, deque[float]] = {}

    def logged_in(self, scope: Scope) -> bool:
        return self.sessions.valid(_cookies(scope).get(COOKIE))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        root = str(scope.get("root_path") or "").rstrip("/")
        path = str(scope.get("path") or "/")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if scope["type"] == "http" and path in OPEN_PATHS:
            await (self._login(scope, receive, send, root) if path == "/login" else self._logout(send, root))
            return
        if self.logged_in(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        accept = _header(scope, b"accept")
        if scope.get("method") == "GET" and ("text/html" in accept or path == "/"):  # a page: the login form
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            where = f"{root}/login?next={urllib.parse.quote(target, safe='')}"
            await _respond(send, 303, b"", [(b"location", where.encode())])
            return
        await _respond(send, 401, b"login required", [(b"content-type", b"text/plain; charset=utf-8")])

    async def _login(self, scope: Scope, receive: Receive, send: Send, root: str) -> None:
        lang = pick_lang(_header(scope, b"accept-language"))
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope.get("method") != "POST":
            target = _safe_next(query.get("next", ["/"])[0])
            await _html(send, 200, login_page(lang, root, target))
            return
        body = await _read_body(receive, MAX_FORM_BYTES)
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace")) if body is not None else {}
        target = _safe_next(form.get("next", ["/"])[0])
        client = str((scope.get("client") or ("?",))[0])
        recent = self._fails.setdefault(client, deque())
        now = time.monotonic()
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= MAX_FAILS:
            await _html(send, 429, login_page(lang, root, target, t("too_many_logins", lang)))
            return
        given = hashlib.sha256(form.get("password", [""])[0].encode()).digest()
        if not hmac.compare_digest(given, self.expected):
            recent.append(now)
            await asyncio.sleep(FAIL_DELAY_S)
            await _html(send, 401, login_page(lang, root, target, t("wrong_password", lang)))
            return
        recent.clear()
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (f"{COOKIE}={self.sessions.issue()}; Path={root or '/'}; Max-Age={int(self.sessions.lifetime_s)}; "
                  f"HttpOnly; SameSite=Lax{secure}")
        await _respond(send, 303, b"", [(b"location", (root + target).encode()), (b"set-cookie", cookie.encode())])

    async def _logout(self, send: Send, root: str) -> None:
        cookie = f"{COOKIE}=; Path={root or '/'}; Max-Age=0; HttpOnly; SameSite=Lax"
        await _respond(send, 303, b"", [(b"location", f"{root}/login".encode()), (b"set-cookie", cookie.encode())])


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            return None
        chunks.append(part)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _html(send: Send, status: int, page: str) -> None:
    await _respond(send, status, page.encode(), [(b"content-type", b"text/html; charset=utf-8"),
                                                 (b"x-frame-options", b"DENY")])
