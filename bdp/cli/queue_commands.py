"""`bdp enqueue` and `bdp run`: put a repo's ready issues on the queue, or work them now."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bdp.cli.main import app_from_env, main
from bdp.cli.options import (
    REPO,
    Duration,
    budget_option,
    enqueue_options,
    isolation_option,
    limit_option,
    scope_options,
    selection_options,
    watch_options,
)
from bdp.cli.output import console as output_console
from bdp.cli.output import echo, echo_json
from bdp.config import Settings
from bdp.errors import BdpError

if TYPE_CHECKING:
    from bdp.cli.oneshot import RunOptions
    from bdp.models import RunRecord
    from bdp.queue.app import App
    from bdp.queue.enqueue import Enqueued, EnqueueOptions
    from bdp.repo.selection import Scope


@main.command()
@click.argument("repo", type=REPO)
@selection_options
@scope_options
@click.option("--dry-run", is_flag=True, help="Show what would be queued; queue nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@watch_options
def enqueue(
    repo: Path,
    selection: EnqueueOptions,
    scope: Scope,
    dry_run: bool,
    as_json: bool,
    watch: bool,
    interval: float | None,
) -> None:
    """Queue one task per ready issue of REPO.

    Running it again never queues an issue twice: issues already queued or
    running are reported as such. With --watch it keeps polling `bd ready` and
    queues issues as they appear or get unblocked, until Ctrl-C.

    \b
    Example:
        bdp enqueue ~/src/myrepo --priority 1 --label backend
        bdp enqueue . --dry-run --json
        bdp enqueue ~/src/myrepo --watch --interval 1m
        bdp enqueue ~/src/myrepo --max-cost-per-issue 2.50
        bdp enqueue ~/src/myrepo --epic acme-9qd --order created
        bdp enqueue ~/src/myrepo --ids acme-k3x,acme-7fp --order input
    """
    from bdp.queue.enqueue import enqueue_ready, watch_ready

    selection = replace(selection, scope=scope)
    app = app_from_env()
    preflight(app.settings, repo, worker=False)
    if watch:
        seconds = interval or app.settings.watch_interval
        with contextlib.suppress(KeyboardInterrupt):
            watch_ready(app, repo, selection, seconds, _WatchPrinter())
        return
    results = enqueue_ready(app, repo, replace(selection, dry_run=dry_run))
    _show_enqueued(results, as_json)


def _show_enqueued(results: list[Enqueued], as_json: bool) -> None:
    """What enqueue did (or would do), as a table or JSON rows."""
    if as_json:
        echo_json([_enqueued_json(item) for item in results])
    else:
        _print_enqueued(results)


def _enqueued_json(item: Enqueued) -> dict[str, Any]:
    issue = item.issue
    return {"id": issue.id, "title": issue.title, "priority": issue.priority, "state": item.state}


class _WatchPrinter:
    """Prints what `bdp enqueue --watch` queued, and its failed polls on stderr."""

    def queued(self, items: list[Enqueued]) -> None:
        if items:
            _print_enqueued(items)

    def warn(self, message: str) -> None:
        echo(f"{time.strftime('%H:%M:%S')} warning: {message}", err=True)


def _print_enqueued(results: list[Enqueued]) -> None:
    from bdp.cli.render import enqueue_table

    console = output_console()
    if not results:
        console.print("No ready issues.")
        return
    console.print(enqueue_table(results))
    counts: dict[str, int] = {}
    for item in results:
        counts[item.state] = counts.get(item.state, 0) + 1
    console.print(", ".join(f"{n} {state}" for state, n in counts.items()))


@main.command()
@click.argument("repo", type=REPO)
@click.option(
    "--max-agents",
    "-n",
    type=click.IntRange(1, 64),
    default=3,
    show_default=True,
    help="Agents working at once.",
)
@click.option(
    "--timeout",
    type=Duration("m"),
    help="Time limit per issue: 45m, 90s, 1h30m; a bare number is minutes. "
    "[default: BDP_TIMEOUT or the config file, else 30m]",
)
@click.option("--verbose", "-v", is_flag=True, help="Show each run's log file as it starts.")
@limit_option
@budget_option
@isolation_option
@scope_options
@click.option("--dry-run", is_flag=True, help="Show what would be queued; queue and run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs' records as JSON at the end.")
@watch_options
def run(
    repo: Path,
    max_agents: int,
    timeout: float | None,
    verbose: bool,
    limit: int,
    max_cost: float | None,
    isolation: str | None,
    scope: Scope,
    dry_run: bool,
    as_json: bool,
    watch: bool,
    interval: float | None,
) -> None:
    """Work through REPO's ready issues now, then summarise.

    Enqueues the ready issues, runs MAX_AGENTS workers in this process and exits
    when the repo's queued work is done: status 0 when every issue closed, 1 when
    something failed, 3 when something needs a person (blocked, unfinished).
    With --watch it keeps picking up newly ready issues until Ctrl-C. Epics are
    never given to an agent; bdp closes one when all its children are closed.

    \b
    Example:
        bdp run ~/src/myrepo -n 4 --timeout 45m
        bdp run ~/src/myrepo --watch --interval 1m
        bdp run ~/src/myrepo --isolation worktree   # each run lands via its own branch
        bdp run ~/src/myrepo --epic acme-9qd        # only that epic's issues
        bdp run ~/src/myrepo --ids acme-k3x,acme-7fp --dry-run --json
    """
    from bdp.cli.oneshot import RunOptions
    from bdp.queue.enqueue import enqueue_ready

    app = app_from_env(timeout=timeout)
    selection = replace(enqueue_options(limit, max_cost, isolation), scope=scope)
    preflight(app.settings, repo, worker=not dry_run)  # before anything is claimed
    if dry_run:
        _show_enqueued(enqueue_ready(app, repo, replace(selection, dry_run=True)), as_json)
        return
    every = (interval or app.settings.watch_interval) if watch else None
    sys.exit(_work(app, repo, RunOptions(selection, max_agents, every), as_json, verbose))


def _work(app: App, repo: Path, options: RunOptions, as_json: bool, verbose: bool) -> int:
    """Run the repo's work, shown live (or as JSON at the end); the exit status."""
    from bdp.cli.oneshot import RunEvents, run_repo
    from bdp.cli.run_summary import RunTotals
    from bdp.cli.run_view import RunView

    if as_json:
        records = run_repo(app, repo, options, RunEvents())
        echo_json([record.to_json() for record in records])
        return RunTotals.of(records, 0.0).exit_code
    with RunView(output_console(), str(repo), verbose) as view:
        records = run_repo(app, repo, options, view.events())
    return view.print_summary(records, _ready_again(app, repo, options.enqueue, records))


def _ready_again(app: App, repo: Path, selection: EnqueueOptions, records: list[RunRecord]) -> int:
    """Issues this run worked on that `bd ready` offers again (reset here, left for the next
    run); 0 when bd cannot say."""
    from bdp.queue.enqueue import enqueue_ready

    worked = {record.issue_id for record in records if not record.outcome.closes_issue}
    if not worked:
        return 0
    try:
        ready = enqueue_ready(app, repo, replace(selection, dry_run=True))
    except BdpError:
        return 0
    return sum(item.issue.id in worked and item.state == "would queue" for item in ready)


def preflight(settings: Settings, repo: Path, worker: bool) -> None:
    """The checks before anything is queued or claimed: the repo's, and with ``worker`` a
    session's too; a failure is the command's one `Error:` line, warnings go to stderr."""
    from bdp.queue.enqueue import resolve_repo
    from bdp.run.preflight import repo_checks, require, worker_checks

    checks = repo_checks(settings, resolve_repo(repo, settings.bd))  # a bad path: one line
    if worker:
        checks += worker_checks(settings, os.environ)
    for warning in require(checks):
        echo(f"warning: {warning.line()}", err=True)
