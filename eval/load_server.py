"""The server side of `arrival load`: an `arrival serve` of its own on a free loopback port (over a temporary
index home where a corpus is ingested first, or over an existing home), and the resident memory of a server
process and its children, polled in a thread.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arrival.eval.load_checks import LoadError, opener

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.2  # server memory polling interval
TIMELINE_S = 5.0  # one memory figure this often in the result, to see whether it levels off

Progress = Callable[[str], None]


@dataclass
class LoadOptions:
    url: str | None = None  # a running server (loopback only); None: start one
    more_urls: tuple[str, ...] = ()  # further running servers of the same index: users are spread over all
    servers: int = 1  # servers started on the same index (the same home, or the same ARRIVAL_DATABASE_URL)
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
    http = opener()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LoadError(f"arrival serve exited with {proc.returncode}: {_tail(log, 500)}")
        try:
            with http.open(url, timeout=2) as r:
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
def started_server(opts: LoadOptions, progress: Progress | None = None
                   ) -> Iterator[tuple[list[str], list[int], dict[str, Any]]]:
    """`opts.servers` processes of `arrival serve --no-ingest` on free loopback ports, all on one index (the
    temporary home, the given one, or the PostgreSQL database of ARRIVAL_DATABASE_URL): (urls, pids, facts).
    Stopped on exit."""
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
        elif not env.get("ARRIVAL_DATABASE_URL") and not (home / "CURRENT").is_file():
            raise LoadError(f"{home}: no index there; run 'arrival ingest PATH...' first or omit --home")
        logs = [tmp / f"serve-{i + 1}.log" for i in range(opts.servers)]
        say(f"starting {opts.servers} arrival serve on free loopback ports" if opts.servers > 1
            else "starting arrival serve on a free loopback port")
        t0 = time.perf_counter()
        try:
            with contextlib.ExitStack() as stack:
                started = [stack.enter_context(serve_process(
                    ["--no-ingest", *_model_args(opts)], tmp, {**env, "GRADIO_TEMP_DIR": str(tmp / f"gradio-{i}")},
                    log, opts.start_timeout)) for i, log in enumerate(logs)]
                facts["server_start_s"] = round(time.perf_counter() - t0, 2)
                yield [url for url, _ in started], [proc.pid for _, proc in started], facts
        finally:
            text = "".join(_tail(log, 1 << 20) for log in logs)
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
        self.series: list[tuple[float, int]] = []  # (time.monotonic(), bytes): every sample
        self.cpu_s: float | None = None
        self.t0 = time.monotonic()
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
        now = time.monotonic()
        self.series.append((now, rss))
        t = now - self.t0
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

    def at(self, when: float) -> int:
        """The last sample taken at or before `when` (time.monotonic()), else the first one; 0 when none."""
        before = [rss for t, rss in self.series if t <= when]
        return before[-1] if before else (self.series[0][1] if self.series else 0)

    def slope(self, start: float, end: float) -> float | None:
        """Least-squares growth of the resident memory between two times, in bytes per second (None: too few)."""
        pts = [(t, rss) for t, rss in self.series if start <= t <= end]
        if len(pts) < 3 or pts[-1][0] - pts[0][0] <= 0:
            return None
        ts = [t for t, _ in pts]
        mean_t = sum(ts) / len(ts)
        mean_r = sum(r for _, r in pts) / len(pts)
        var = sum((t - mean_t) ** 2 for t in ts)
        return sum((t - mean_t) * (r - mean_r) for t, r in pts) / var if var else None

    def __enter__(self) -> MemoryPoller:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
