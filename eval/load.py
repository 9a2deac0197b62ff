"""Load test behind `arrival load`: simulated users asking questions in the Gradio chat at the same time.

A library: it runs the load and returns a plain dict of figures; it never prints (`eval/load_cli.py` does the
talking).

Each simulated user is a thread with its own `gradio_client.Client` (its own Gradio session), asking questions
from a fixed list of French and English questions about the bundled GFMD paper (two of them off-topic, which
the assistant should refuse) through the chat's own `respond` event, so retrieval and the extractive answer
run for real, exactly as for a person at the browser. A user keeps its chat history like a browser tab does
(sending it back with each question) and clears it every `CLEAR_EVERY` questions.

A request counts as an error when the client raises (HTTP error, connection error, timeout, failed event), or
when the final chat is not what the page would show for a good answer: the history sent plus the question and
a non-empty answer that is either a cited answer (with citation cards in the sources column) or the
assistant's refusal. An error message rendered in the chat ("the model failed...") is an error too. Each
answer's export file is then downloaded, as a click on Export does (outside the timed latency), and must be the
Markdown of that answer.

The run is bounded: it stops issuing questions after `seconds` or `max_requests`, whichever comes first, and
each request gives up after `request_timeout`. Only loopback URLs are accepted. Without a URL the load starts
its own `arrival serve --no-ingest` on a free loopback port, over a temporary index home where the bundled
corpus is ingested first (or over an existing home), and stops it at the end. Peak memory is the resident set
of the server process and its children, polled every 0.2 s.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arrival.assistant.server import is_loopback
from arrival.errors import ArrivalError

ROOT = Path(__file__).resolve().parents[1]
API_NAME = "/respond"  # the chat's event (the Send button; Enter in the question box is /respond_1, the same fn)
CLEAR_EVERY = 10  # questions before a simulated user clears its chat
POLL_S = 0.2  # server memory polling interval
TIMELINE_S = 5.0  # one memory figure this often in the result, to see whether it levels off
MAX_USERS = 200
MAX_SECONDS = 3600.0
ERROR_SAMPLES = 10

# What the assistant writes (assistant/answer.py), as the chat shows it.
INTROS = ("D'après les documents :", "According to the documents:")
REFUSALS = ("Je n'ai pas trouvé de réponse dans les documents.", "I could not find this in the documents.")

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


@dataclass
class LoadOptions:
    url: str | None = None  # a running server (loopback only); None: start one
    users: int = 20
    seconds: float = 60.0
    max_requests: int = 5000
    request_timeout: float = 120.0
    home: Path | None = None  # serve this existing index home instead of ingesting the corpus into a temporary one
    corpus: Path | None = None  # folder ingested into the temporary home (default: the bundled corpus/)
    model: str | None = None  # embedder spec for the started server (default: settings, i.e. use-m3)
    threads: int | None = None
    cache: Path | None = None  # model cache for the started server (default: $ARRIVAL_CACHE or ~/.cache/arrival)
    warmup: bool = True  # one untimed question first (loads the model), so the figures are the steady state
    check_exports: bool = True  # also download each answer's export file, as a click on Export does, and check it
    start_timeout: float = 300.0  # ingest + server start


Progress = Callable[[str], None]


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


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy from the env


# -- the server ------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def _server_env(home: Path, tmp: Path, opts: LoadOptions) -> dict[str, str]:
    # GRADIO_TEMP_DIR, TMPDIR: Gradio's cache and the answers' export files go away with the temporary folder
    env = {**os.environ, "ARRIVAL_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_TEMP_DIR": str(tmp / "gradio"), "TMPDIR": str(tmp),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for var in ("ARRIVAL_PASSWORD", "ARRIVAL_LLM"):  # the load logs in as nobody and measures the extractive path
        env.pop(var, None)
    if opts.cache is not None:
        env["ARRIVAL_CACHE"] = str(opts.cache)
    return env


def _model_args(opts: LoadOptions) -> list[str]:
    args: list[str] = []
    if opts.model:
        args += ["--model", opts.model]
    if opts.threads is not None:
        args += ["--threads", str(opts.threads)]
    return args


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    opener = _opener()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LoadError(f"arrival serve exited with {proc.returncode}: {_tail(log, 500)}")
        try:
            with opener.open(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise LoadError(f"arrival serve did not answer within {timeout:.0f} s: {_tail(log, 500)}")


@contextlib.contextmanager
def serve_process(args: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float
                  ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`arrival serve ARGS` on a free loopback port, output to `log`: (url, process) once the page answers
    (LoadError if it exits or stays silent for `timeout` s). Terminated, then killed if need be, on exit."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "arrival.cli", "serve", *args, "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_up(url, proc, log, timeout)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def started_server(opts: LoadOptions, progress: Progress | None = None) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """`arrival serve --no-ingest` on a free loopback port: (url, pid, facts). Stopped on exit."""
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="arrival-load-") as tmp_name:
        tmp = Path(tmp_name)
        facts: dict[str, Any] = {}
        home = opts.home.resolve() if opts.home is not None else tmp / "home"
        env = _server_env(home, tmp, opts)
        cmd = [sys.executable, "-m", "arrival.cli"]
        if opts.home is None:
            from arrival.assistant.server import bundled_corpus

            corpus = (opts.corpus or bundled_corpus()).resolve()
            if not corpus.is_dir():
                raise LoadError(f"no corpus folder at {corpus}")
            say(f"ingesting {corpus}")
            t0 = time.perf_counter()
            try:
                done = subprocess.run([*cmd, "ingest", str(corpus), "--quiet", *_model_args(opts)], cwd=tmp,
                                      env=env, capture_output=True, text=True, timeout=opts.start_timeout)
            except subprocess.TimeoutExpired:
                raise LoadError(f"ingesting {corpus} took more than {opts.start_timeout:.0f} s") from None
            if done.returncode != 0:
                raise LoadError(f"ingesting {corpus} failed: {(done.stderr or done.stdout).strip()[-500:]}")
            facts["ingest_s"] = round(time.perf_counter() - t0, 2)
            facts["corpus"] = str(corpus)
        elif not (home / "CURRENT").is_file():
            raise LoadError(f"{home}: no index there; run 'arrival ingest PATH...' first or omit --home")
        log = tmp / "serve.log"
        say("starting arrival serve on a free loopback port")
        t0 = time.perf_counter()
        try:
            with serve_process(["--no-ingest", *_model_args(opts)], tmp, env, log, opts.start_timeout
                               ) as (url, proc):
                facts["server_start_s"] = round(time.perf_counter() - t0, 2)
                yield url, proc.pid, facts
        finally:
            text = _tail(log, 1 << 20)
            problems = [line for line in text.splitlines()
                        if any(w in line for w in ("Traceback", "ERROR", "WARNING", "Exception", "Error:"))]
            facts["server_log_problems"] = len(problems)
            facts["server_log_tail"] = text[-3000:]


def find_server_pid(url: str) -> int | None:
    """The pid listening on the URL's port on this machine, when the OS lets us see it."""
    import psutil

    port = urllib.parse.urlsplit(url).port or (443 if url.startswith("https") else 80)
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    except (psutil.AccessDenied, OSError):
        return None
    return None


class MemoryPoller:
    """Peak resident set size (bytes) of a process and its children, polled in a thread."""

    def __init__(self, pid: int | None, interval: float = POLL_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.first = 0
        self.last = 0
        self.samples = 0
        self.timeline: list[tuple[float, int]] = []  # (seconds since the poller started, bytes) every TIMELINE_S
        self.cpu_s: float | None = None
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-rss", daemon=True)
        self._cpu0: float | None = None

    def _cpu(self, proc: Any) -> float | None:
        import psutil

        try:
            t = proc.cpu_times()
            total = float(t.user + t.system)
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += float(c.user + c.system)
            return total
        except psutil.Error:
            return None

    def sample(self, proc: Any) -> None:
        import psutil

        try:
            rss = int(proc.memory_info().rss)
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += int(child.memory_info().rss)
        except psutil.Error:
            return
        self.first = self.first or rss
        self.last = rss
        self.peak = max(self.peak, rss)
        self.samples += 1
        t = time.monotonic() - self._t0
        if not self.timeline or t - self.timeline[-1][0] >= TIMELINE_S:
            self.timeline.append((t, rss))

    def _run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        self._cpu0 = self._cpu(proc)
        while True:
            self.sample(proc)
            if self._stop.wait(self.interval):
                break
        self.sample(proc)
        end = self._cpu(proc)
        if end is not None and self._cpu0 is not None:
            self.cpu_s = end - self._cpu0

    def __enter__(self) -> MemoryPoller:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


# -- the users -------------------------------------------------------------------------------------------------
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
    if text in REFUSALS:
        return None, "refused", history
    if text.startswith(INTROS) and "[1]" in text:
        if not isinstance(sources, str) or 'class="cite-card"' not in sources:
            return "answer without citation cards", "", sent
        return None, "answered", history
    return f"not an answer: {text[:120]!r}", "", sent


@dataclass
class Record:
    user: int
    question: int
    start: float  # monotonic, relative to the run's start
    latency: float  # seconds
    error: str | None
    outcome: str  # answered | refused | ""


class _Bound:
    """Hands out request slots until the time or the request budget runs out."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.seconds = seconds
        self.left = max_requests
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.seconds

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                return False
            self.left -= 1
            return True


def _client(url: str, timeout: float) -> Any:
    from gradio_client import Client

    # token=False: no Hugging Face token is read or sent; no telemetry (see run_load); no proxy from the env.
    return Client(url, token=False, verbose=False, download_files=False, analytics_enabled=False,
                  httpx_kwargs={"trust_env": False, "timeout": timeout})


def _ask(client: Any, question: str, history: list[Any], timeout: float) -> Any:
    job = client.submit(question, history, [], [], 5, api_name=API_NAME)
    try:
        return job.result(timeout=timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            job.cancel()
        raise


def check_export(question: str, outputs: Any, timeout: float) -> str | None:
    """What a click on Export would download, fetched from the server: None when it is the answer's Markdown."""
    button = outputs[3] if isinstance(outputs, (tuple, list)) and len(outputs) > 3 else None
    value = button.get("value") if isinstance(button, dict) else None
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url:
        return "export: no file offered"
    try:
        check_url(url)  # built by the server from our own request: loopback too, or it is not fetched
        with _opener().open(url, timeout=timeout) as r:
            body = r.read(1 << 20).decode("utf-8", errors="replace")
    except (OSError, LoadError) as exc:
        return f"export: {_error_name(exc)}"
    if not body.strip():
        return f"export: empty file {Path(urllib.parse.urlsplit(url).path).name}"
    if not body.startswith("# ") or f"{' '.join(question.split())}" not in body:
        return f"export: not this answer: {body[:80]!r}"
    return None


def _error_name(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _user(uid: int, client: Any, bound: _Bound, start: threading.Barrier, records: list[Record],
          lock: threading.Lock, timeout: float, exports: bool) -> None:
    history: list[Any] = []
    asked = 0
    i = uid  # each user starts at a different question, then goes round the list
    try:
        start.wait()
    except threading.BrokenBarrierError:
        return
    while bound.take():
        qi = i % len(QUESTIONS)
        question = QUESTIONS[qi][0]
        if asked and asked % CLEAR_EVERY == 0:
            history = []
        t = time.monotonic()
        try:
            outputs = _ask(client, question, history, timeout)
        except Exception as exc:  # every failure of one request is recorded, the user goes on
            rec = Record(uid, qi, t - bound.t0, time.monotonic() - t, _error_name(exc), "")
        else:
            latency = time.monotonic() - t
            error, outcome, history = check_reply(question, history, outputs)
            if error is None and exports:  # after the clock: a click on Export is another request
                error = check_export(question, outputs, timeout)
                outcome = "" if error else outcome
            rec = Record(uid, qi, t - bound.t0, latency, error, outcome)
        with lock:
            records.append(rec)
        asked += 1
        i += 1


# -- the run ---------------------------------------------------------------------------------------------------
def _check(opts: LoadOptions) -> None:
    if not 1 <= opts.users <= MAX_USERS:
        raise LoadError(f"--users must be between 1 and {MAX_USERS}, got {opts.users}")
    if not 0 < opts.seconds <= MAX_SECONDS:
        raise LoadError(f"--seconds must be more than 0 and at most {MAX_SECONDS:.0f}, got {opts.seconds:g}")
    if opts.max_requests < 1:
        raise LoadError(f"--max-requests must be at least 1, got {opts.max_requests}")
    if opts.request_timeout <= 0:
        raise LoadError("the request timeout must be positive")


@contextlib.contextmanager
def _no_telemetry() -> Iterator[None]:
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


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 1) if values else None


def _mb(n: int) -> float | None:
    return round(n / 2**20, 1) if n else None


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def load_against(url: str, opts: LoadOptions, pid: int | None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the users against a server that is up. `pid`: the server process, for its memory (None: not measured)."""
    import psutil

    say = progress or (lambda _msg: None)
    url = check_url(url)
    me = psutil.Process()
    with _no_telemetry(), MemoryPoller(pid) as mem:
        warmup_ms = None
        if opts.warmup:
            say("warm-up question")
            client = _client(url, opts.request_timeout)
            try:
                t = time.monotonic()
                question = QUESTIONS[0][0]
                error, _, _ = check_reply(question, [], _ask(client, question, [], opts.request_timeout))
                warmup_ms = round((time.monotonic() - t) * 1000.0, 1)
            except Exception as exc:
                raise LoadError(f"the warm-up question failed: {_error_name(exc)}") from None
            finally:
                client.close()
            if error:
                raise LoadError(f"the warm-up question failed: {error}")
        say(f"connecting {opts.users} users")
        clients: list[Any] = []
        try:
            for _ in range(opts.users):
                clients.append(_client(url, opts.request_timeout))
        except Exception as exc:
            for c in clients:
                c.close()
            raise LoadError(f"cannot connect to {url}: {_error_name(exc)}") from None
        rss_start = mem.last
        records: list[Record] = []
        lock = threading.Lock()
        barrier = threading.Barrier(opts.users + 1)
        bound = _Bound(opts.seconds, opts.max_requests)

        def run(uid: int) -> None:
            _user(uid, clients[uid], bound, barrier, records, lock, opts.request_timeout, opts.check_exports)

        threads = [threading.Thread(target=run, args=(u,), name=f"load-user-{u}", daemon=True)
                   for u in range(opts.users)]
        for th in threads:
            th.start()
        load_before = _loadavg()
        cpu0 = me.cpu_times()
        say(f"{opts.users} users asking for {opts.seconds:g} s (at most {opts.max_requests} questions)")
        bound.start()  # the clock starts when every user is ready; no user asks before the barrier
        barrier.wait()
        for th in threads:
            th.join(timeout=opts.seconds + opts.request_timeout + 30)
        wall = time.monotonic() - bound.t0
        cpu1 = me.cpu_times()
        stuck = sum(th.is_alive() for th in threads)
        for c in clients:
            c.close()
    lat = [r.latency for r in records if r.error is None]
    errors = [r.error for r in records if r.error is not None]
    kinds = Counter(e.split(":", 1)[0] for e in errors)  # "export", an exception's type, or the reply check
    by_q = [(QUESTIONS[r.question][1], r.outcome) for r in records if r.error is None]
    result: dict[str, Any] = {
        "users": opts.users,
        "seconds": opts.seconds,
        "max_requests": opts.max_requests,
        "requests": len(records),
        "ok": len(lat),
        "errors": len(errors) + stuck,
        "error_kinds": dict(kinds) | ({"user thread stuck": stuck} if stuck else {}),
        "error_samples": list(dict.fromkeys(errors))[:ERROR_SAMPLES],
        "duration_s": round(wall, 2),
        "throughput_rps": round(len(records) / wall, 2) if wall > 0 else None,
        "p50_ms": _pct(lat, 50),
        "p95_ms": _pct(lat, 95),
        "p99_ms": _pct(lat, 99),
        "mean_ms": round(float(np.mean(lat)) * 1000.0, 1) if lat else None,
        "max_ms": round(max(lat) * 1000.0, 1) if lat else None,
        "warmup_ms": warmup_ms,
        "answered": sum(1 for _, o in by_q if o == "answered"),
        "refused": sum(1 for _, o in by_q if o == "refused"),
        "on_topic_refused": sum(1 for on, o in by_q if on and o == "refused"),
        "off_topic_answered": sum(1 for on, o in by_q if not on and o == "answered"),
        "exports_checked": opts.check_exports,
        "server_pid_found": pid is not None,
        "server_rss_start_mb": _mb(rss_start),
        "server_peak_rss_mb": _mb(mem.peak),
        "server_rss_end_mb": _mb(mem.last),
        "server_cpu_s": round(mem.cpu_s, 1) if mem.cpu_s is not None else None,
        "client_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1),
        "memory_samples": mem.samples,
        "server_rss_timeline_mb": [[round(t, 1), _mb(b)] for t, b in mem.timeline],
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": _loadavg(),
        "url": url,
    }
    return result


def run_load(opts: LoadOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the load (starting a server when opts.url is None) and return the figures. Raises LoadError."""
    _check(opts)
    if opts.url is not None:
        url = check_url(opts.url)  # refuse before anything else happens
        result = load_against(url, opts, find_server_pid(url), progress)
        result["started_server"] = False
        return result
    with started_server(opts, progress) as (url, pid, facts):
        result = load_against(url, opts, pid, progress)
    result["started_server"] = True
    result["model"] = opts.model or _default_model()
    result.update({k: v for k, v in facts.items() if k != "server_log_tail"})
    if result["errors"] or facts.get("server_log_problems"):
        result["server_log_tail"] = facts.get("server_log_tail", "")
    return result


def _default_model() -> str:
    from arrival.settings import load_settings

    try:
        return load_settings().model
    except ArrivalError:
        return "use-m3"


COLUMNS = (("users", "users"), ("seconds", "seconds"), ("requests", "requests"), ("errors", "errors"),
           ("throughput_rps", "req/s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"),
           ("server_peak_rss_mb", "server peak RSS MB"))


def markdown_table(result: dict[str, Any]) -> str:
    """The figures as a small Markdown table, then one line of context."""
    def cell(v: Any) -> str:
        return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    row = "| " + " | ".join(cell(result.get(key)) for key, _ in COLUMNS) + " |"
    notes = (f"\n{result.get('answered', 0)} answered, {result.get('refused', 0)} refused; "
             f"warm-up {cell(result.get('warmup_ms'))} ms; load average {cell(result.get('loadavg_1m_before'))} "
             f"before, {cell(result.get('loadavg_1m_after'))} after, {cell(result.get('cpus'))} CPUs\n")
    errors = "".join(f"error: {e}\n" for e in result.get("error_samples", []))
    return "\n".join([head, rule, row]) + "\n" + notes + errors
