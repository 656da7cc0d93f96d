"""In-process apps for the queue's unit tests: a MemoryHuey with a stub agent.

`immediate=True` runs a task inside the call that enqueues it, so the whole pipeline (bd
stand-in, stub agent, real git) runs in the test process; a non-immediate MemoryHuey keeps
tasks queued so their bookkeeping can be inspected, then a worker is stepped by hand.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from huey import MemoryHuey

from bdp.agent.session import SessionRequest, StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.queue.app import App


def make_app(settings: Settings, immediate: bool) -> App:
    """An app on a fresh MemoryHuey whose stub agent writes one file per issue."""
    huey = MemoryHuey("test-tasks", immediate=immediate)
    stub = StubAgentRunner(summary="did it")

    def one_file_per_issue(request: SessionRequest) -> None:
        stub.files = {f"done-{request.issue.id}.txt": "done\n"}

    stub.on_run = one_file_per_issue
    return App(settings, huey, State(huey), agent=lambda _settings: stub)


def head(repo: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
