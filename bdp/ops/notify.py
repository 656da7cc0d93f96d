"""Notifications: tell a person (or a webhook) how each run ended and when one needs a human.

``BDP_NOTIFY`` is an ``http(s)://`` URL that receives each event as a JSON POST, or else a shell
command that gets the same JSON on stdin, as one line ending in a newline, and the main fields
as ``BDP_*`` variables: ``cat >> events.jsonl`` keeps one JSON object per line, which a script
reads line by line. A notifier that fails is logged and ignored: a broken webhook must never
change how an issue ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from bdp.config import Settings, mask_url, user_umask
from bdp.models import RunRecord
from bdp.redact import Redactor, process_redactor

log = logging.getLogger(__name__)

#: Seconds a webhook or command may take before it is given up on (a command is killed).
DEFAULT_NOTIFY_TIMEOUT = 5.0

_STDERR_CLIP = 200


@dataclass(frozen=True)
class Event:
    """One notification: a run's outcome, or a call for attention."""

    kind: Literal["outcome", "attention"]
    issue_id: str
    repo: str
    title: str = ""
    outcome: str = ""
    summary: str = ""
    cost_usd: float = 0.0
    log_path: str = ""
    attempt: int = 1
    run_id: str = ""
    reason: str = ""  # why it needs attention; empty for plain outcomes
    at: float = field(default_factory=time.time)  # Unix time

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_env(self) -> dict[str, str]:
        """The fields a shell one-liner needs, as ``BDP_*`` variables."""
        return {
            "BDP_EVENT": self.kind,
            "BDP_ISSUE": self.issue_id,
            "BDP_TITLE": self.title,
            "BDP_OUTCOME": self.outcome,
            "BDP_SUMMARY": self.summary,
            "BDP_REASON": self.reason,
            "BDP_COST_USD": f"{self.cost_usd:.4f}",
            "BDP_LOG": self.log_path,
            "BDP_REPO": self.repo,
        }

    @classmethod
    def for_outcome(cls, record: RunRecord) -> Event:
        return cls(
            "outcome",
            record.issue_id,
            record.repo,
            title=record.title,
            outcome=record.outcome.value,
            summary=record.summary,
            cost_usd=record.cost_usd,
            log_path=record.log_path,
            attempt=record.attempt,
            run_id=record.run_id,
            at=record.finished or time.time(),
        )

    @classmethod
    def attention(
        cls, issue_id: str, repo: str, reason: str, record: RunRecord | None = None, title: str = ""
    ) -> Event:
        """A call for a human; with ``record``, it carries that run's outcome, cost and log."""
        if record is not None:
            return replace(cls.for_outcome(record), kind="attention", reason=reason)
        return cls("attention", issue_id, repo, title=title, reason=reason)


class Notifier:
    """Delivers events to the ``BDP_NOTIFY`` target; failures are logged, never raised."""

    def __init__(
        self, target: str, timeout: float = DEFAULT_NOTIFY_TIMEOUT, redact: Redactor | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.is_url = target.lower().startswith(("http://", "https://"))
        self._redact = redact or process_redactor()

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier | None:
        """The configured notifier, or None when ``BDP_NOTIFY`` is unset."""
        if not settings.notify:
            return None
        return cls(settings.notify, redact=Redactor.from_env(os.environ, settings))

    @property
    def label(self) -> str:
        """The target as it may be logged: a URL with its password masked, never a command."""
        return mask_url(self.target) if self.is_url else "command"

    def __repr__(self) -> str:
        return f"Notifier({self.label!r}, timeout={self.timeout:g})"

    def send(self, event: Event) -> bool:
        """Deliver ``event``; False (and one warning) if the target failed or did not answer."""
        body = json.dumps(self._redact.tree(event.to_json())).encode()
        try:
            if self.is_url:
                self._post(body)
            else:
                self._run(body + b"\n", {k: self._redact(v) for k, v in event.to_env().items()})
        except Exception as exc:  # whatever went wrong, the run's outcome stands
            why = self._redact(_why(exc, self.timeout))
            log.warning(
                "BDP_NOTIFY %s failed for %s %s: %s", self.label, event.kind, event.issue_id, why
            )
            return False
        return True

    def _post(self, body: bytes) -> None:
        url, headers = _split_credentials(self.target)
        headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked: http(s) only
        with urllib.request.urlopen(request, timeout=self.timeout):  # noqa: S310 - as above
            pass  # urlopen raises HTTPError for 4xx/5xx; any other answer is delivery

    def _run(self, body: bytes, env: dict[str, str]) -> None:
        # A session of its own, so a timeout kills whatever the shell started too.
        with subprocess.Popen(
            ["/bin/sh", "-c", self.target],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            start_new_session=True,
            umask=user_umask(),
        ) as proc:
            try:
                _, err = proc.communicate(body, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                raise
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or [""]
            raise RuntimeError(f"command exited {proc.returncode}: {lines[-1][:_STDERR_CLIP]}")


def notify_outcome(notifier: Notifier | None, record: RunRecord) -> None:
    """Send the run's outcome (if it is news), and a call for attention when it needs a human."""
    if notifier is None or not record.outcome.is_notified:
        return
    notifier.send(Event.for_outcome(record))
    reason = record.outcome.attention_reason
    if reason:
        notifier.send(Event.attention(record.issue_id, record.repo, reason, record))


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without ``user:password@``, and a Basic auth header carrying them instead.

    urllib would otherwise take the credentials for part of the host name.
    """
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    hostport = parts.netloc.rpartition("@")[2]
    token = base64.b64encode(pair.encode()).decode()
    return urlunsplit(parts._replace(netloc=hostport)), {"Authorization": f"Basic {token}"}


def _why(exc: Exception, timeout: float) -> str:
    """A one-line cause; never ``str()`` of errors that embed the command line."""
    if isinstance(exc, subprocess.TimeoutExpired | TimeoutError) or isinstance(
        getattr(exc, "reason", None), TimeoutError
    ):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
