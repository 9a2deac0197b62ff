"""`arrival load`: simulated users asking questions in the chat at the same time (eval/load.py, Locust users in
eval/locustfile.py), printed as a Markdown table or JSON, and written as JSON to --output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `load` subcommand to the `arrival` parser."""
    p = sub.add_parser(
        "load", parents=[common], help="load-test the chat with concurrent simulated users (loopback only)",
        description="Concurrent simulated users, each with its own Gradio session, ask French and English "
                    "questions about the bundled GFMD paper through the chat's own event until the time or the "
                    "request budget runs out (the users are Locust users, run in a Locust process of their own). "
                    "Reports requests, errors, throughput, p50/p95/p99 latency and the server's peak resident "
                    "memory (and, for runs of 2 minutes or more, its value after the first minute, at the end and "
                    "its slope). Without --url, indexes the bundled corpus (or --corpus) into a temporary home, "
                    "or into the PostgreSQL database of ARRIVAL_DATABASE_URL (or uses --home), and starts "
                    "'arrival serve' (--servers N: N of them, users spread over them) on free loopback ports for "
                    "the run. Only loopback URLs are accepted.")
    p.add_argument("--url", metavar="URL", action="append",
                   help="a running chat on this machine, e.g. http://127.0.0.1:7860/ (default: start one); give it "
                        "once per server to spread the users over several servers of one index")
    p.add_argument("--servers", type=int, default=1, metavar="N",
                   help="start N servers on the same index (the same home, or the PostgreSQL database of "
                        "ARRIVAL_DATABASE_URL) and spread the users over them (default 1)")
    p.add_argument("--users", type=int, default=20, metavar="N", help="concurrent simulated users (default 20)")
    p.add_argument("--seconds", type=float, default=60.0, metavar="S",
                   help="stop asking after this many seconds (default 60)")
    p.add_argument("--max-requests", type=int, default=5000, metavar="N",
                   help="stop asking after this many questions in all (default 5000)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="give up on one question after this many seconds (default 120)")
    p.add_argument("--no-warmup", action="store_true",
                   help="do not ask one untimed question first (the first answers then include loading the model)")
    p.add_argument("--no-export-check", action="store_true",
                   help="do not download each answer's export file (as a click on Export does) to check it")
    p.add_argument("--corpus", type=Path, metavar="DIR",
                   help="folder of PDFs indexed for the started server (default: the bundled corpus)")
    p.add_argument("--output", type=Path, metavar="FILE", help="also write the full result as JSON to FILE")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=cmd_load)


def cmd_load(args: argparse.Namespace) -> int:
    from arrival.eval.load import LoadOptions, markdown_table, run_load

    opts = LoadOptions(
        url=args.url[0] if args.url else None, more_urls=tuple(args.url[1:]) if args.url else (),
        servers=args.servers, users=args.users, seconds=args.seconds, max_requests=args.max_requests,
        request_timeout=args.timeout, home=Path(args.home) if getattr(args, "home", None) else None,
        model=getattr(args, "model", None), threads=getattr(args, "threads", None), warmup=not args.no_warmup,
        check_exports=not args.no_export_check, corpus=args.corpus,
    )
    result = run_load(opts, progress=None if getattr(args, "quiet", False) else _say)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(markdown_table(result))
    return 1 if result["errors"] else 0


def _say(message: str) -> None:
    sys.stderr.write(f"load: {message}\n")
    sys.stderr.flush()
