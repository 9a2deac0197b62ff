"""Load test behind `arrival load`: simulated users asking questions in the Gradio chat at the same time.

A library: it runs the load and returns a plain dict of figures; it never prints (`eval/load_cli.py` does the
talking).

The users are Locust users (eval/locustfile.py), run by Locust in a process of its own (Locust patches the
standard library with gevent; neither this process nor the server is patched). Each has its own Gradio session
and asks French and English questions about the bundled GFMD paper through the chat's own event; every reply
and every answer's export file is checked (eval/load_checks.py says what counts as an error).

The run is bounded: it stops issuing questions after `seconds` or `max_requests`, whichever comes first, and
each request gives up after `request_timeout`; Locust's own time limit backs that up. Only loopback URLs are
accepted. Without a URL the load starts its own `arrival serve --no-ingest` on a free loopback port, over a
temporary index home where the bundled corpus (or `corpus`) is ingested first, or over an existing home, and
stops it at the end (eval/load_server.py). Memory is the resident set of the server process and its children,
polled every 0.2 s: its peak, and for long runs (`make soak`) its value one minute into the load, at the end
and its slope in between.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ArrivalError
from arrival.eval.load_checks import (
    INTROS,
    QUESTIONS,
    REFUSALS,
    LoadError,
    ask,
    check_reply,
    check_url,
    client,
    error_name,
    no_telemetry,
)
from arrival.eval.load_server import (
    LoadOptions,
    MemoryPoller,
    Progress,
    find_server_pid,
    serve_process,
    started_server,
)

__all__ = ["INTROS", "QUESTIONS", "REFUSALS", "LoadError", "LoadOptions", "check_reply", "check_url",
           "load_against", "markdown_table", "run_load", "serve_process"]

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
MAX_USERS = 200
MAX_SECONDS = 3600.0
ERROR_SAMPLES = 10
CONNECT_ALLOWANCE_S = 120.0  # for the users to open their Gradio sessions before the clock starts
SOAK_MARK_S = 60.0  # the soak figures compare the server's memory one minute into the load with the end


def _check(opts: LoadOptions) -> None:
    if not 1 <= opts.users <= MAX_USERS:
        raise LoadError(f"--users must be between 1 and {MAX_USERS}, got {opts.users}")
    if not 0 < opts.seconds <= MAX_SECONDS:
        raise LoadError(f"--seconds must be more than 0 and at most {MAX_SECONDS:.0f}, got {opts.seconds:g}")
    if opts.max_requests < 1:
        raise LoadError(f"--max-requests must be at least 1, got {opts.max_requests}")
    if opts.request_timeout <= 0:
        raise LoadError("the request timeout must be positive")
    if not 1 <= opts.servers <= 8:
        raise LoadError(f"--servers must be between 1 and 8, got {opts.servers}")
    if opts.servers > 1 and opts.url is not None:
        raise LoadError("--servers starts servers; with running ones, give each with --url")


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 1) if values else None


def _mb(n: float) -> float | None:
    return round(n / 2**20, 1) if n else None


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(r.ru_utime + r.ru_stime)


def _warmup(url: str, opts: LoadOptions) -> float:
    """One untimed question (it loads the model); its latency in ms. LoadError if it fails."""
    try:
        c = client(url, opts.request_timeout)
    except Exception as exc:
        raise LoadError(f"cannot connect to {url}: {error_name(exc)}") from None
    try:
        t = time.monotonic()
        question = QUESTIONS[0][0]
        error, _, _ = check_reply(question, [], ask(c, question, [], opts.request_timeout))
        ms = round((time.monotonic() - t) * 1000.0, 1)
    except Exception as exc:
        raise LoadError(f"the warm-up question failed: {error_name(exc)}") from None
    finally:
        c.close()
    if error:
        raise LoadError(f"the warm-up question failed: {error}")
    return ms


def run_users(urls: list[str], opts: LoadOptions, tmp: Path) -> dict[str, Any]:
    """The Locust run (user i on server i mod len(urls)): its records ({t0, duration_s, records, stuck,
    connect_errors}); LoadError if it broke."""
    out, spec, log = tmp / "records.json", tmp / "spec.json", tmp / "locust.log"
    url = urls[0]
    spec.write_text(json.dumps({"urls": urls, "users": opts.users, "seconds": opts.seconds,
                                "max_requests": opts.max_requests, "request_timeout": opts.request_timeout,
                                "check_exports": opts.check_exports, "out": str(out)}))
    run_time = int(opts.seconds + CONNECT_ALLOWANCE_S + opts.request_timeout) + 30  # a backstop, never the bound
    cmd = [sys.executable, "-m", "locust", "--headless", "-f", str(LOCUSTFILE), "--host", url,
           "--users", str(opts.users), "--spawn-rate", str(opts.users), "--run-time", f"{run_time}s",
           "--stop-timeout", str(int(opts.request_timeout) + 5), "--only-summary", "--loglevel", "WARNING",
           "--exit-code-on-error", "0"]
    env = {**os.environ, "ARRIVAL_LOAD_SPEC": str(spec), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    with log.open("wb") as fh:
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                  timeout=run_time + 60, check=False)
        except subprocess.TimeoutExpired:
            raise LoadError(f"Locust did not stop within {run_time + 60} s") from None
    text = log.read_text(errors="replace")
    if not out.is_file():
        tail = " ".join(text.strip().splitlines()[-3:])[-500:]
        raise LoadError(f"Locust exited with {done.returncode} and no result: {tail or 'no output'}")
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if data.get("connect_errors"):
        raise LoadError(f"cannot connect to {' or '.join(urls)}: {data['connect_errors'][0]}")
    data["returncode"] = done.returncode
    return data


def _memory(mem: MemoryPoller, t0: float | None, end: float) -> dict[str, Any]:
    """Start, one-minute, end and slope figures of the server's memory over the load (None where not measured)."""
    if not mem.series or t0 is None:
        return {"server_rss_start_mb": _mb(mem.last), "server_rss_1min_mb": None,
                "server_rss_slope_mb_per_min": None, "server_rss_growth_ratio": None}
    one = t0 + SOAK_MARK_S
    long_enough = end - t0 >= 2 * SOAK_MARK_S
    slope = mem.slope(one, end) if long_enough else None
    rss_1min = mem.at(one) if long_enough else 0
    return {
        "server_rss_start_mb": _mb(mem.at(t0)),
        "server_rss_1min_mb": _mb(rss_1min),
        "server_rss_slope_mb_per_min": round(slope * 60 / 2**20, 2) if slope is not None else None,
        "server_rss_growth_ratio": round(mem.last / rss_1min, 3) if rss_1min and mem.last else None,
    }


def load_against(urls: str | list[str], opts: LoadOptions, pid: int | None, progress: Progress | None = None
                 ) -> dict[str, Any]:
    """Run the users against servers that are up (several: the same index behind each, users spread over them).
    `pid`: the first server's process, for its memory (None: not measured)."""
    import psutil

    say = progress or (lambda _msg: None)
    urls = [check_url(u) for u in ([urls] if isinstance(urls, str) else urls)]
    url = urls[0]
    me = psutil.Process()
    with no_telemetry(), MemoryPoller(pid) as mem, tempfile.TemporaryDirectory(prefix="arrival-locust-") as tmp:
        warmup_ms = None
        if opts.warmup:
            say("warm-up question" + (" on each server" if len(urls) > 1 else ""))
            warmup_ms = max(_warmup(u, opts) for u in urls)
        load_before = _loadavg()
        cpu0, children0 = me.cpu_times(), _children_cpu()
        say(f"{opts.users} Locust users asking for {opts.seconds:g} s (at most {opts.max_requests} questions)")
        data = run_users(urls, opts, Path(tmp))
        end = time.monotonic()
        cpu1, children1 = me.cpu_times(), _children_cpu()
    records = data["records"]  # [user, question, start s, latency s, error or None, outcome]
    wall = float(data["duration_s"])
    stuck = int(data.get("stuck", 0))
    lat = [float(r[3]) for r in records if r[4] is None]
    errors = [str(r[4]) for r in records if r[4] is not None]
    kinds = Counter(e.split(":", 1)[0] for e in errors)  # "export", an exception's type, or the reply check
    by_q = [(QUESTIONS[int(r[1])][1], r[5]) for r in records if r[4] is None]
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
        **_memory(mem, data.get("t0"), end),
        "server_peak_rss_mb": _mb(mem.peak),
        "server_rss_end_mb": _mb(mem.last),
        "server_cpu_s": round(mem.cpu_s, 1) if mem.cpu_s is not None else None,
        "client_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system) + children1 - children0, 1),
        "memory_samples": mem.samples,
        "server_rss_timeline_mb": [[round(t, 1), _mb(b)] for t, b in mem.timeline],
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": _loadavg(),
        "url": url,
        "servers": len(urls),
        "per_server": [{"url": u, "requests": sum(1 for r in records if int(r[0]) % len(urls) == i),
                        "errors": sum(1 for r in records if int(r[0]) % len(urls) == i and r[4] is not None)}
                       for i, u in enumerate(urls)],
        "generator": f"locust {_locust_version()}",
    }
    return result


def _locust_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("locust")
    except PackageNotFoundError:
        return "?"


def run_load(opts: LoadOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the load (starting a server when opts.url is None) and return the figures. Raises LoadError."""
    _check(opts)
    if opts.url is not None:
        urls = [check_url(u) for u in (opts.url, *opts.more_urls)]  # refuse before anything else happens
        result = load_against(urls, opts, find_server_pid(urls[0]), progress)
        result["started_server"] = False
        return result
    with started_server(opts, progress) as (urls, pids, facts):
        result = load_against(urls, opts, pids[0], progress)
    result["started_server"] = True
    result["model"] = opts.model or _default_model()
    result["backend"] = "postgres" if os.environ.get("ARRIVAL_DATABASE_URL") else "embedded"
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
    """The figures as a small Markdown table, then one line of context (and the memory trend of a long run)."""
    def cell(v: Any) -> str:
        return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    row = "| " + " | ".join(cell(result.get(key)) for key, _ in COLUMNS) + " |"
    notes = (f"\n{result.get('answered', 0)} answered, {result.get('refused', 0)} refused; "
             f"warm-up {cell(result.get('warmup_ms'))} ms; load average {cell(result.get('loadavg_1m_before'))} "
             f"before, {cell(result.get('loadavg_1m_after'))} after, {cell(result.get('cpus'))} CPUs\n")
    if result.get("server_rss_1min_mb") is not None:
        notes += (f"server RSS after 1 min {cell(result['server_rss_1min_mb'])} MB, at the end "
                  f"{cell(result.get('server_rss_end_mb'))} MB (×{cell(result.get('server_rss_growth_ratio'))}), "
                  f"slope {cell(result.get('server_rss_slope_mb_per_min'))} MB/min\n")
    errors = "".join(f"error: {e}\n" for e in result.get("error_samples", []))
    return "\n".join([head, rule, row]) + "\n" + notes + errors
