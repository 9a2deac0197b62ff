"""`arrival load`: the loopback-only guard and the reply checks (fast), and the full load (slow): 20 simulated
users asking questions for 60 s against a real `arrival serve` with the real model. Figures go to
artifacts/load.json (gitignored); no latency threshold is asserted, only that nothing failed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arrival.eval.load import (
    INTROS,
    QUESTIONS,
    REFUSALS,
    LoadError,
    LoadOptions,
    check_reply,
    check_url,
    markdown_table,
    run_load,
)

from .conftest import ROOT


# -- fast ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://127.0.0.1:7860", "http://127.0.0.2:80/", "http://localhost:9/",
                                 "http://[::1]:7860/", "https://LOCALHOST:8443/app"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert check_url(url).endswith("/")


@pytest.mark.parametrize("url", ["http://10.0.0.1:7860/", "http://example.com/", "http://0.0.0.0:7860/",
                                 "http://192.168.1.2/", "http://[2001:db8::1]:80/", "http://127.0.0.1.nip.io/",
                                 "http://localhost.example.com/", "http://user@8.8.8.8/"])
def test_other_hosts_are_refused(url: str) -> None:
    with pytest.raises(LoadError, match="only loopback"):
        check_url(url)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:7860", "http://127.0.0.1:99999/", "file:///etc"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(LoadError):
        check_url(url)


def test_the_cli_refuses_a_remote_url_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from arrival.cli import main

    assert main(["load", "--url", "http://203.0.113.5:7860/"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing" in err and "loopback" in err


@pytest.mark.parametrize("field,value", [("users", 0), ("seconds", 0.0), ("max_requests", 0), ("servers", 0)])
def test_bounds_are_checked(field: str, value: float) -> None:
    with pytest.raises(LoadError):
        run_load(LoadOptions(url="http://127.0.0.1:9/", **{field: value}))


def _msg(role: str, text: str) -> dict[str, object]:
    return {"role": role, "metadata": None, "content": [{"text": text, "type": "text"}], "options": None}


def test_reply_checks() -> None:
    q = QUESTIONS[0][0]
    answer = _msg("assistant", f"{INTROS[0]}\n\n- Une phrase citée. [1]")
    card = '<div class="cite-list"><article class="cite-card" id="cite-1">'
    prior = [_msg("user", "avant"), _msg("assistant", REFUSALS[1])]

    err, outcome, history = check_reply(q, prior, ("", [*prior, _msg("user", q), answer], card, None))
    assert (err, outcome, len(history)) == (None, "answered", 4)
    assert check_reply(q, [], ("", [_msg("user", q), _msg("assistant", REFUSALS[0])], "", None))[:2] == (
        None, "refused")
    bad = [
        ("", [_msg("user", q), _msg("assistant", "")], card, None),  # empty answer
        ("", [_msg("user", q), _msg("assistant", "…")], card, None),  # never finished
        ("", [_msg("user", q), answer], '<div class="cite-empty">', None),  # no citation cards
        ("", [_msg("user", "another question"), answer], card, None),  # someone else's question
        ("", [_msg("user", q), _msg("assistant", "Something went wrong (RuntimeError)")], card, None),
        ("", [answer], card, None),  # messages missing
        None,
    ]
    for outputs in bad:
        err, outcome, history = check_reply(q, [], outputs)
        assert err and outcome == "" and history == [], outputs
    # the history sent back must come back unchanged
    assert check_reply(q, prior, ("", [_msg("user", "x"), prior[1], _msg("user", q), answer], card, None))[0]


def test_markdown_table() -> None:
    table = markdown_table({"users": 20, "seconds": 60.0, "requests": 100, "errors": 0, "throughput_rps": 1.5,
                            "p50_ms": 120.0, "p95_ms": 300.5, "p99_ms": None, "server_peak_rss_mb": 700.2})
    head, rule, row = table.splitlines()[:3]
    assert head.startswith("| users |") and rule.startswith("|---:")
    assert row == "| 20 | 60 | 100 | 0 | 1.5 | 120 | 300.5 | – | 700.2 |"


def test_memory_trend_figures() -> None:
    from arrival.eval.load import _memory
    from arrival.eval.load_server import MemoryPoller

    mem = MemoryPoller(None)
    t0 = 1000.0
    mb = 2**20
    # 700 MB one minute in, then +6 MB a minute for 4 minutes, sampled every 5 s
    mem.series = [(t0 + t, int((700 + max(0.0, t - 60) / 10) * mb)) for t in range(0, 301, 5)]
    mem.last = mem.series[-1][1]
    assert mem.at(t0 + 62) == 700 * mb and mem.at(t0 - 1) == mem.series[0][1]
    figures = _memory(mem, t0, t0 + 300)
    assert figures["server_rss_1min_mb"] == 700.0 and figures["server_rss_slope_mb_per_min"] == 6.0
    assert figures["server_rss_growth_ratio"] == round(724 / 700, 3)
    short = _memory(mem, t0, t0 + 100)  # under two minutes: no trend
    assert short["server_rss_1min_mb"] is None and short["server_rss_slope_mb_per_min"] is None
    table = markdown_table({"server_rss_1min_mb": 700.0, "server_rss_end_mb": 724.0, "server_rss_growth_ratio": 1.034,
                            "server_rss_slope_mb_per_min": 6.0})
    assert "after 1 min 700 MB, at the end 724 MB (×1.034), slope 6 MB/min" in table


# -- slow: the real thing --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twenty_users_for_sixty_seconds(model_cache: Path) -> None:
    """The issue's load: 20 concurrent users for 60 s on the bundled corpus with use-m3, zero errors."""
    from arrival.index.models import fetch_use_m3

    fetch_use_m3(model_cache)  # present already in CI (make setup-test); never downloads under the network guard
    opts = LoadOptions(users=20, seconds=60.0, max_requests=5000, cache=model_cache)
    result = run_load(opts)
    out = ROOT / "artifacts" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "loadavg": os.getloadavg()}, ensure_ascii=False, indent=2) + "\n")

    assert result["errors"] == 0, (result["error_samples"], result.get("server_log_tail", ""))
    assert result["requests"] >= 20
    assert result["ok"] == result["requests"]
    assert result["off_topic_answered"] == 0  # the off-topic questions were refused every time
    assert result["server_peak_rss_mb"]  # the server's memory was measured


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_servers_on_one_postgres_database_pass_the_twenty_user_load(model_cache: Path, pg_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same load spread over two `arrival serve` processes sharing one PostgreSQL index (issue 13): both
    serve, nothing fails, the off-topic questions are refused by both."""
    from arrival.index.models import fetch_use_m3

    fetch_use_m3(model_cache)
    monkeypatch.setenv("ARRIVAL_DATABASE_URL", pg_url)  # the ingest and both servers: the same database
    result = run_load(LoadOptions(users=20, seconds=60.0, max_requests=5000, cache=model_cache, servers=2))
    out = ROOT / "artifacts" / "load-postgres-2-servers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "loadavg": os.getloadavg()}, ensure_ascii=False, indent=2) + "\n")

    assert result["backend"] == "postgres" and result["servers"] == 2
    assert result["errors"] == 0, (result["error_samples"], result.get("server_log_tail", ""))
    assert [s["errors"] for s in result["per_server"]] == [0, 0]
    assert min(s["requests"] for s in result["per_server"]) >= 10  # both servers answered their users
    assert result["ok"] == result["requests"] and result["off_topic_answered"] == 0
    assert result["server_log_problems"] == 0, result.get("server_log_tail", "")
