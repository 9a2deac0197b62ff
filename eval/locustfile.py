"""Locust users for `arrival load`: each simulated user is a Locust `User` with its own `gradio_client.Client`
(its own Gradio session), asking the questions of eval/load_checks.py through the chat's own events (take the
question, stream the answer, show its sources: the chain the page runs), so retrieval and the extractive answer
run for real, exactly as for a person at the browser. A user keeps its chat history like a browser tab does
(sending it back with each question) and clears it, with the Clear button's event, every `CLEAR_EVERY`
questions; each reply, and the export file a click on Export downloads, is checked (eval/load_checks.py).

Run by eval/load.py in a Locust process of its own (`python -m locust --headless -f eval/locustfile.py`; Locust
patches the standard library with gevent, so it never runs inside the arrival server or the `arrival load`
process). The run's spec is the JSON file named by $ARRIVAL_LOAD_SPEC: urls (user i asks server i mod their
number), users, seconds, max_requests,
request_timeout, check_exports, out. The clock starts when every user is connected; after `seconds` or
`max_requests` questions, whichever comes first, users ask nothing more, the ones with a question in flight
wait for its answer, and the last one to stop ends the run. Every request is written to `out` as JSON (the
caller computes the figures from those records, exactly, rather than from Locust's rounded histogram); the
requests are also reported to Locust's own statistics, under the name of the chat's event.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser

from arrival.eval.load_checks import (
    API_NAME,
    CLEAR_EVERY,
    QUESTIONS,
    ask,
    check_export,
    check_reply,
    clear,
    client,
    error_name,
)

SPEC_ENV = "ARRIVAL_LOAD_SPEC"


class ReplyError(Exception):
    """A reply that is not what the page would show for a good answer (reported to Locust as a failure)."""


class Run:
    """The state of one run, shared by its users (one process, greenlets: no lock needed)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.users = int(spec["users"])
        self.left = int(spec["max_requests"])
        self.seconds = float(spec["seconds"])
        self.timeout = float(spec["request_timeout"])
        self.exports = bool(spec.get("check_exports", True))
        self.out = Path(spec["out"])
        self.joined = 0  # users that started (each gets the next uid)
        self.ready = 0  # users connected
        self.live = 0  # users connected and not stopped
        self.started = Event()
        self.t0: float | None = None  # time.monotonic() when the clock started (system-wide on Linux)
        self.end: float | None = None
        self.deadline = 0.0
        self.records: list[list[Any]] = []  # [user, question, start s, latency s, error or None, outcome]
        self.connect_errors: list[str] = []
        self.written = False

    def take(self) -> bool:
        """One more question, while the time and the request budget last."""
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True

    def write(self, stuck: int) -> None:
        if self.written:
            return
        self.written = True
        end = self.end if self.end is not None else time.monotonic()
        data = {"t0": self.t0, "duration_s": round(end - self.t0, 3) if self.t0 is not None else 0.0,
                "records": self.records, "stuck": stuck, "connect_errors": self.connect_errors[:5]}
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False))
        os.replace(tmp, self.out)


RUN: Run | None = None  # set when Locust initialises (one run per Locust process)


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    global RUN
    spec_path = os.environ.get(SPEC_ENV)
    if not spec_path:
        raise SystemExit(f"{SPEC_ENV} must name the run's spec file (this locustfile is run by `arrival load`)")
    RUN = Run(json.loads(Path(spec_path).read_text(encoding="utf-8")))


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    if RUN is not None:
        RUN.write(stuck=RUN.live)  # users still in a question when Locust's own time limit stopped them


def _quit(environment: Environment) -> None:
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)  # not from a user's own greenlet, which quit() kills


class ChatUser(User):
    """One person at the chat: questions one after another, no pause (a closed loop, like the old threads)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        run = self._run()
        self.uid = run.joined
        run.joined += 1
        self.history: list[Any] = []
        self.asked = 0
        self.i = self.uid  # each user starts at a different question, then goes round the list
        self.client: Any = None
        try:
            urls = run.spec["urls"]
            self.client = client(urls[self.uid % len(urls)], run.timeout)  # users spread over the servers
        except Exception as exc:
            run.connect_errors.append(error_name(exc))
            _quit(self.environment)
            raise StopUser() from None
        run.ready += 1
        run.live += 1
        if run.ready == run.users:  # the clock starts when every user is ready; no user asks before
            run.t0 = time.monotonic()
            run.deadline = run.t0 + run.seconds
            run.started.set()
        run.started.wait()

    def _run(self) -> Run:
        if RUN is None:
            raise StopUser()
        return RUN

    @task
    def question(self) -> None:
        run = self._run()
        if not run.take():
            raise StopUser()
        qi = self.i % len(QUESTIONS)
        question = QUESTIONS[qi][0]
        error: str | None
        outcome = ""
        t = time.monotonic()
        try:
            if self.asked and self.asked % CLEAR_EVERY == 0:
                self.history = []
                clear(self.client, run.timeout)
                t = time.monotonic()  # the latency is the question's
            outputs = ask(self.client, question, self.history, run.timeout)
        except Exception as exc:  # every failure of one request is recorded, the user goes on
            latency = time.monotonic() - t
            error = error_name(exc)
        else:
            latency = time.monotonic() - t
            error, outcome, self.history = check_reply(question, self.history, outputs)
            if error is None and run.exports:  # after the clock: a click on Export is another request
                error = check_export(question, outputs, run.timeout)
                outcome = "" if error else outcome
        start = t - (run.t0 or t)
        run.records.append([self.uid, qi, round(start, 4), round(latency, 4), error, outcome])
        self.environment.events.request.fire(
            request_type="gradio", name=API_NAME, response_time=latency * 1000.0, response_length=0,
            exception=ReplyError(error) if error else None, context={"user": self.uid, "question": qi})
        self.asked += 1
        self.i += 1

    def on_stop(self) -> None:
        run = RUN
        if self.client is not None:
            with contextlib.suppress(Exception):  # a session the server already dropped is not the load's concern
                self.client.close()
            self.client = None
            if run is not None:
                run.live -= 1
                if run.live == 0 and run.t0 is not None:  # the last user out ends the run
                    run.end = time.monotonic()
                    run.write(stuck=0)
                    _quit(self.environment)
