"""`bdp doctor`: every check bdp makes before it claims work, in one table."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bdp.cli.main import app_from_env, main
from bdp.cli.options import REPO
from bdp.cli.output import console, echo_json
from bdp.config import Settings
from bdp.errors import BdpError

if TYPE_CHECKING:
    from bdp.run.preflight import Check


@main.command()
@click.argument("repo", type=REPO, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(repo: Path | None, as_json: bool) -> None:
    """Check that bdp can work here, before anything is claimed.

    Runs every check `bdp run` and consumers make: the Claude CLI, credentials,
    the OS sandbox, bd and the broker; with REPO also its beads workspace and
    git identity.

    Exits 1 when a check failed (`bdp run` and consumers would refuse to start);
    warnings do not count.

    \b
    Example:
        bdp doctor ~/src/myrepo
        bdp doctor --json
    """
    from bdp.run.preflight import check_broker, worker_checks

    app = app_from_env()
    checks = [*worker_checks(app.settings, os.environ), check_broker(app.state)]
    if repo is not None:
        named = {check.name for check in checks}
        checks += [c for c in _repo_checks(app.settings, repo) if c.name not in named]
    if as_json:
        echo_json([check.to_json() for check in checks])
    else:
        _print(checks)
    sys.exit(1 if any(check.failed for check in checks) else 0)


def _repo_checks(settings: Settings, repo: Path) -> list[Check]:
    from bdp.queue.enqueue import resolve_repo
    from bdp.run.preflight import Check, repo_checks

    try:
        root = resolve_repo(repo, settings.bd)
    except BdpError as error:
        return [Check("repo", "failed", error.message, error.hint)]
    return repo_checks(settings, root)


def _print(checks: list[Check]) -> None:
    from rich.markup import escape
    from rich.table import Table

    colour = {"ok": "green", "warning": "yellow", "failed": "bold red"}
    table = Table(title="bdp doctor", title_justify="left")
    for column in ("check", "status", "detail", "what to do"):
        table.add_column(column, overflow="fold")
    for check in checks:
        status = f"[{colour[check.status]}]{check.status}[/]"
        table.add_row(check.name, status, escape(check.detail), escape(check.fix))
    console().print(table)
