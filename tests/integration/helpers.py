"""Helpers shared by the integration tests: run bdp as a subprocess, script sessions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.fake_api import FakeApi, Report, ToolUse

BDP = str(Path(sys.executable).parent / "bdp")


def bdp(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `bdp` console script; never raises on a failing exit."""
    return subprocess.run(
        [BDP, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def bdp_json(env: dict[str, str], *args: str) -> Any:
    done = bdp(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def marker(issue_id: str) -> str:
    """Text only the prompt of ``issue_id``'s own session contains (the CLI adds git history
    to the first message, so a bare id could match another issue's session)."""
    return f"Implement beads issue {issue_id} in"


def script_write_then_done(api: FakeApi, issue_id: str, filename: str) -> None:
    """The session for ``issue_id`` writes ``filename`` then reports DONE."""
    api.script(
        [
            ToolUse("Write", {"file_path": filename, "content": f"work for {issue_id}\n"}),
            Report("DONE", f"added {filename}"),
        ],
        match=marker(issue_id),
    )


def first_turns(api: FakeApi, issue_id: str) -> int:
    """How many sessions started for ``issue_id`` (requests carrying no tool result yet)."""
    from tests.support.fake_api import tool_results

    return sum(1 for r in api.messages_requests(match=marker(issue_id)) if not tool_results(r.body))
