"""A scriptable fake Anthropic Messages API for tests, served on 127.0.0.1.

The real Claude Code CLI (bundled with claude-agent-sdk) talks to whatever
``ANTHROPIC_BASE_URL`` names; point it at a :class:`FakeApi` (see :func:`cli_env`)
and a whole agent session runs offline: the CLI executes real tools on real
files, runs hooks, and the SDK yields real message objects.

A *script* is a list of steps (:class:`ToolUse`, :class:`Text`, :class:`Status`,
:class:`Delay`). The step answering a ``POST /v1/messages`` request is step N of
the script, where N is the number of assistant turns already in the request's
messages (one per tool call, one per earlier answer); so a retried request gets the
same step again, and a follow-up message in the same session gets the next one. One-shot
answers queued with :meth:`FakeApi.fail_next` are consumed first, one request
each. :meth:`FakeApi.script` with ``match`` routes concurrent sessions by a
marker string found in the request's first user message.

Stdlib only: ``http.server.ThreadingHTTPServer`` in a background thread.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast

__all__ = [
    "DUMMY_API_KEY",
    "Delay",
    "FakeApi",
    "Finish",
    "RecordedRequest",
    "Report",
    "Status",
    "Step",
    "Text",
    "ToolUse",
    "cli_env",
    "tool_results",
]

DUMMY_API_KEY = "sk-test-not-a-real-key"
#: How the CLI tells a model that ended in text to return its structured output.
ENFORCE_NUDGE = "[structured-output-enforce]"
NOTHING_SCRIPTED = "DONE: nothing more scripted"
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Text:
    """Answer with one text block; ``stop_reason`` is ``end_turn``."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """Answer with a ``tool_use`` block (after ``text``, if given); ``stop_reason`` tool_use."""

    name: str
    input: Mapping[str, Any]
    text: str | None = None


@dataclass(frozen=True)
class Finish:
    """End the session as a model would: the structured report when the request offers the
    StructuredOutput tool, else the text line ``OUTCOME: summary`` (an older bdp)."""

    outcome: str
    summary: str

    def answer(self, body: Any) -> Text | ToolUse:
        tools = body.get("tools", []) if isinstance(body, dict) else []
        if any(isinstance(t, dict) and t.get("name") == "StructuredOutput" for t in tools):
            return Report(self.outcome, self.summary)
        return Text(f"{self.outcome}: {self.summary}")


def Report(outcome: str, summary: str, **fields: Any) -> ToolUse:
    """Answer with the session's structured report (the CLI's StructuredOutput tool)."""
    return ToolUse("StructuredOutput", {"outcome": outcome, "summary": summary, **fields})


@dataclass(frozen=True)
class Status:
    """Answer with HTTP status ``code`` and an Anthropic-style error body."""

    code: int
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def error_body(self) -> Mapping[str, Any]:
        """The JSON body to send: ``body`` if given, else a standard error object."""
        if self.body is not None:
            return self.body
        kind = _ERROR_TYPES.get(self.code, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` (or until the server stops), then answer with ``then``."""

    seconds: float
    then: Step


Step = Text | ToolUse | Status | Delay | Finish


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (secret headers removed)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any

    @property
    def is_messages(self) -> bool:
        """Whether this is a ``POST /v1/messages`` (model turn) request."""
        return self.method == "POST" and self.path.split("?")[0] == "/v1/messages"


@dataclass
class _OneShot:
    step: Step
    match: Marker | None
    at_turn: int | None = None


def tool_results(body: Any) -> list[dict[str, Any]]:
    """All ``tool_result`` blocks in a Messages request body, oldest first."""
    found: list[dict[str, Any]] = []
    messages = body.get("messages", []) if isinstance(body, dict) else []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found.extend(
                b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
            )
    return found


def _assistant_turns(body: Any) -> int:
    """How many model turns a request already holds: the index of the step to answer with.

    One per tool call so far, plus one per earlier final answer when the session continues
    with a new user message (a follow-up such as a failed quality gate). A session asked
    for structured output that ends in text is told to call the StructuredOutput tool; the
    fake answers that nudge with the same step again (a model that keeps to its text), so
    those nudges do not count: a script reads the same with or without structured output.
    """
    messages = body.get("messages", []) if isinstance(body, dict) else []
    turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    nudges = sum(1 for m in messages if ENFORCE_NUDGE in json.dumps(m))
    return turns - nudges


#: What picks a script: text the first user message contains, or a pattern it matches.
Marker = str | re.Pattern[str]


def _first_user_text(body: Any) -> str:
    """The JSON text of the first user message of a request body ("" if none)."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            return json.dumps(message, ensure_ascii=False)
    return ""


def _matches(marker: Marker, text: str) -> bool:
    if isinstance(marker, re.Pattern):
        return marker.search(text) is not None
    escaped = json.dumps(marker, ensure_ascii=False)[1:-1]
    return marker in text or escaped in text


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeApi:
    """A threaded fake Messages API on 127.0.0.1; use as a context manager."""

    def __init__(self, *, input_tokens: int = 1000, output_tokens: int = 200) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._scripts: dict[Marker | None, list[Step]] = {}
        self._one_shots: list[_OneShot] = []
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic-api",
            daemon=True,
        )

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43210`` (for ``ANTHROPIC_BASE_URL``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApi:
        """Start serving in a background thread (idempotent)."""
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; pending :class:`Delay` steps wake up and drop their connection."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------

    def script(self, steps: Sequence[Step], match: Marker | None = None) -> None:
        """Set the script for requests whose first user message contains ``match``.

        ``match=None`` sets the default script, used when no other script matches.
        Scripts are tried in the order they were first set.
        """
        with self._lock:
            self._scripts[match] = list(steps)

    def fail_next(
        self, step: Step, *, times: int = 1, match: Marker | None = None, at_turn: int | None = None
    ) -> None:
        """Answer the next ``times`` matching requests with ``step``, before any script.

        With ``at_turn``, only a request holding that many model turns matches (e.g. 1: the
        reply after the first tool call), so a one-off can hit the middle of a session.
        """
        with self._lock:
            self._one_shots.extend(_OneShot(step, match, at_turn) for _ in range(times))

    # -- inspection --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` requests arrived; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._requests) >= count, timeout)

    def messages_requests(self, match: Marker | None = None) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests, optionally only those matching ``match``."""
        return [
            r
            for r in self.requests
            if r.is_messages and (match is None or _matches(match, _first_user_text(r.body)))
        ]

    # -- used by the request handler -----------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_fake_{next(self._ids):06d}"

    def _choose(self, body: Any) -> Step:
        text = _first_user_text(body)
        with self._lock:
            turns = _assistant_turns(body)
            for index, shot in enumerate(self._one_shots):
                if shot.at_turn is not None and shot.at_turn != turns:
                    continue
                if shot.match is None or _matches(shot.match, text):
                    del self._one_shots[index]
                    return shot.step
            steps = self._script_for(text)
        position = _assistant_turns(body)
        return steps[position] if position < len(steps) else Text(NOTHING_SCRIPTED)

    def _script_for(self, text: str) -> list[Step]:
        for marker, steps in self._scripts.items():
            if marker is not None and _matches(marker, text):
                return steps
        return self._scripts.get(None, [])

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the server is stopping."""
        return not self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: FakeApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeAnthropic/1.0"

    @property
    def api(self) -> FakeApi:
        return cast(_Server, self.server).api

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    # -- HTTP verbs ----------------------------------------------------------

    def do_POST(self) -> None:
        body = self._record()
        route = self.path.split("?")[0]
        try:
            if route == "/v1/messages":
                self._answer(self.api._choose(body), body)
            elif route == "/v1/messages/count_tokens":
                self._json(200, {"input_tokens": self.api.input_tokens})
            else:
                self._json(200, {})
        except (ConnectionError, TimeoutError):
            pass  # the client went away (e.g. it timed out first)

    def do_GET(self) -> None:
        self._record()
        self._json(200, {})

    def do_HEAD(self) -> None:
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- helpers -------------------------------------------------------------

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        safe = {k: v for k, v in headers.items() if k not in _SECRET_HEADERS}
        self.api._record(RecordedRequest(self.command, self.path, safe, body))
        return body

    def _answer(self, step: Step, body: Any) -> None:
        while isinstance(step, Delay):
            if not self.api._wait(step.seconds):
                self.close_connection = True
                return
            step = step.then
        if isinstance(step, Finish):
            step = step.answer(body)
        if isinstance(step, Status):
            self._json(step.code, step.error_body(), step.headers)
        elif isinstance(body, dict) and body.get("stream") is False:
            self._json(200, self._message(step, body))
        else:
            self._stream(step, body)

    def _json(
        self, code: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", self.api._next_id("req"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _blocks(self, step: Text | ToolUse) -> list[dict[str, Any]]:
        if isinstance(step, Text):
            return [{"type": "text", "text": step.text}]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": step.text}] if step.text else []
        tool_id = self.api._next_id("toolu")
        blocks.append({"type": "tool_use", "id": tool_id, "name": step.name, "input": step.input})
        return blocks

    def _message(self, step: Text | ToolUse, body: Any) -> dict[str, Any]:
        stop = "tool_use" if isinstance(step, ToolUse) else "end_turn"
        return {
            "id": self.api._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": self._blocks(step),
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._usage(self.api.output_tokens),
        }

    def _usage(self, output_tokens: int) -> dict[str, int]:
        return {
            "input_tokens": self.api.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }

    def _stream(self, step: Text | ToolUse, body: Any) -> None:
        message = self._message(step, body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", self.api._next_id("req"))
        self.end_headers()
        start = {**message, "content": [], "stop_reason": None, "usage": self._usage(1)}
        self.wfile.write(_sse("message_start", {"type": "message_start", "message": start}))
        for index, block in enumerate(message["content"]):
            self.wfile.write(b"".join(_block_events(index, block)))
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": self.api.output_tokens},
        }
        self.wfile.write(_sse("message_delta", delta))
        self.wfile.write(_sse("message_stop", {"type": "message_stop"}))
        self.wfile.flush()
        self.close_connection = True


def _block_events(index: int, block: Mapping[str, Any]) -> list[bytes]:
    start: dict[str, Any]
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    return [
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        ),
        _sse(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        ),
        _sse("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def cli_env(api_url: str, home: Path, *, max_retries: int = 0) -> dict[str, str]:
    """Environment for the Claude Code CLI to use ``api_url`` and nothing else.

    ``home`` becomes HOME, CLAUDE_CONFIG_DIR and the XDG dirs, so tests never read
    or write the real ``~/.claude``. Pass the result as ``ClaudeAgentOptions(env=...)``
    (the SDK merges it over the inherited environment).
    """
    home.mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": api_url,
        "ANTHROPIC_API_KEY": DUMMY_API_KEY,
        "ANTHROPIC_AUTH_TOKEN": "",
        "CLAUDE_CODE_OAUTH_TOKEN": "",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }
