"""Per-run transcripts: a readable ``.log`` and a ``.jsonl`` of the SDK messages.

Files are private to the user (0600 in a 0700 folder) and pass through `bdp.redact`, which
removes secret values (API keys, tokens, passwords from the environment and the Redis URL),
so an agent that runs ``env`` cannot leak them into a log.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from bdp.config import Settings
from bdp.redact import Redactor


def logs_dir(settings: Settings) -> Path:
    path = settings.home / "logs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def log_path(settings: Settings, issue_id: str, run_id: str) -> Path:
    """Where a run's readable log goes; names sort by start time."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe_issue = re.sub(r"[^A-Za-z0-9._-]", "_", issue_id)
    return logs_dir(settings) / f"{stamp}-{safe_issue}-{run_id}.log"


def _open_private(path: Path) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


class Transcript:
    """Appends to one run's two files; each write is flushed so `bdp logs -f` can follow."""

    def __init__(self, path: Path, redact: Redactor) -> None:
        self.path = path
        self.jsonl_path = path.with_suffix(".jsonl")
        self._redact = redact
        self._log = _open_private(path)
        self._jsonl = _open_private(self.jsonl_path)

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        for part in self._redact(text).splitlines() or [""]:
            self._log.write(f"{stamp} {part}\n")

    def message(self, kind: str, payload: Mapping[str, Any]) -> None:
        record = {"ts": time.time(), "type": kind, "message": self._redact.tree(payload)}
        self._jsonl.write(json.dumps(record, default=str) + "\n")

    def close(self) -> None:
        self._log.close()
        self._jsonl.close()


def find_logs(settings: Settings, issue_id: str | None = None) -> list[Path]:
    """Readable logs, oldest first; only those of ``issue_id`` when given."""
    folder = settings.home / "logs"
    if not folder.is_dir():
        return []
    logs = sorted(folder.glob("*.log"))
    if issue_id is None:
        return logs
    safe_issue = re.sub(r"[^A-Za-z0-9._-]", "_", issue_id)
    return [p for p in logs if p.stem.split("-", 2)[-1].rsplit("-", 1)[0] == safe_issue]


_CLIP = 300


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _CLIP else text[:_CLIP] + "…"


def describe(message: Any) -> list[str]:
    """Readable lines for one SDK message (matched by class name: no SDK import here)."""
    kind = type(message).__name__
    if kind == "AssistantMessage":
        return _describe_blocks(message.content) + (
            [f"api error: {message.error}"] if getattr(message, "error", None) else []
        )
    if kind == "UserMessage" and isinstance(message.content, list):
        return _describe_blocks(message.content)
    if kind == "SystemMessage":
        data = getattr(message, "data", {}) or {}
        if message.subtype == "init":
            return [f"session started: model {data.get('model', '?')}, cwd {data.get('cwd', '?')}"]
        return [f"system {message.subtype}: {_clip(json.dumps(data, default=str))}"]
    if kind == "ResultMessage":
        cost = message.total_cost_usd or 0.0
        return [f"result {message.subtype}: {message.num_turns} turns, ${cost:.4f}"]
    return []


def _describe_blocks(blocks: Iterable[Any]) -> list[str]:
    lines = []
    for block in blocks:
        kind = type(block).__name__
        if kind == "TextBlock":
            lines.append(f"assistant: {block.text}")
        elif kind == "ToolUseBlock":
            lines.append(f"tool {block.name}: {_clip(json.dumps(block.input, default=str))}")
        elif kind == "ToolResultBlock":
            flag = " (error)" if block.is_error else ""
            lines.append(f"tool result{flag}: {_clip(str(block.content))}")
    return lines


def old_logs(settings: Settings, older_than: float) -> list[Path]:
    """The run logs last written more than ``older_than`` seconds ago, oldest first."""
    folder = settings.home / "logs"
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than
    found = [(p.stat().st_mtime, p) for p in folder.iterdir() if p.is_file()]
    return [path for mtime, path in sorted(found) if mtime < cutoff]


def prune_logs(settings: Settings, older_than: float) -> list[Path]:
    """Delete run logs older than ``older_than`` seconds; the files deleted."""
    removed = old_logs(settings, older_than)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
