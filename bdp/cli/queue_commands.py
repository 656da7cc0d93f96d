"""`bdp enqueue` and `bdp run`: put a repo's ready issues on the queue, or work them now."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from bdp.cli.main import app_from_env, main
from bdp.cli.options import (
    REPO,
    budget_option,
    enqueue_options,
    isolation_option,
    limit_option,
    selection_options,
    watch_options,
)
from bdp.cli.output import console as output_console
from bdp.cli.output import echo, echo_json
from bdp.config import parse_duration

if TYPE_CHECKING:
    from bdp.cli.oneshot import RunEvents
    from bdp.models import RunRecord
    from bdp.queue.enqueue import Enqueued, EnqueueOptions


@main.command()
@click.argument("repo", type=REPO)
@selection_options
@click.option("--dry-run", is_flag=True, help="Show what would be queued; queue nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@watch_options
def enqueue(
    repo: Path,
    selection: EnqueueOptions,
    dry_run: bool,
    as_json: bool,
    watch: bool,
    interval: str,
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
    """
    from bdp.queue.enqueue import enqueue_ready, watch_ready

    if watch:
        seconds = parse_duration(interval, "--interval")
        with contextlib.suppress(KeyboardInterrupt):
            watch_ready(app_from_env(), repo, selection, seconds, _WatchPrinter())
        return
    results = enqueue_ready(app_from_env(), repo, replace(selection, dry_run=dry_run))
    if as_json:
        rows = [_enqueued_json(item) for item in results]
        echo_json(rows)
        return
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
    "-t",
    default="30",
    show_default=True,
    envvar="BDP_TIMEOUT",
    help="Per-issue timeout: minutes, or 90s / 2m / 1h.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show each run's log file as it starts.")
@limit_option
@budget_option
@isolation_option
@watch_options
def run(
    repo: Path,
    max_agents: int,
    timeout: str,
    verbose: bool,
    limit: int,
    max_cost: float | None,
    isolation: str | None,
    watch: bool,
    interval: str,
) -> None:
    """Work through REPO's ready issues now, then summarise.

    Enqueues the ready issues, runs MAX_AGENTS workers in this process and exits
    when the repo's queued work is done: status 0 if nothing failed, 1 otherwise.
    With --watch it keeps picking up newly ready issues until Ctrl-C.

    \b
    Example:
        bdp run ~/src/myrepo -n 4 -t 45
        bdp run ~/src/myrepo --watch --interval 1m
        bdp run ~/src/myrepo --isolation worktree   # each run lands via its own branch
    """
    from bdp.cli.oneshot import RunOptions, run_repo

    source = click.get_current_context().get_parameter_source("timeout")
    name = "BDP_TIMEOUT" if source is ParameterSource.ENVIRONMENT else "--timeout"
    app = app_from_env(timeout=parse_duration(timeout, name))
    every = parse_duration(interval, "--interval") if watch else None
    options = RunOptions(enqueue_options(limit, max_cost, isolation), max_agents, every)
    records = run_repo(app, repo, options, _run_printer(verbose))
    failed = _print_summary(records)
    sys.exit(1 if failed else 0)


def _run_printer(verbose: bool) -> RunEvents:
    """Prints each run's start and end, and holds, as `bdp run` goes."""
    from bdp.cli.oneshot import RunEvents
    from bdp.cli.render import clock

    console = output_console()

    def started(run: Any) -> None:
        extra = f"  log: {run.log_path}" if verbose else ""
        console.print(f"{clock(run.started)} [magenta]started[/] {run.issue_id} {run.title}{extra}")

    def finished(record: Any) -> None:
        outcome = f"[bold]{record.outcome.value}[/]"
        console.print(f"{clock(record.finished)} {outcome} {record.issue_id}: {record.summary}")

    def held(hold: Any) -> None:
        if hold is None:
            console.print(f"{clock(time.time())} [green]resumed[/]: the hold is over")
        else:
            console.print(f"{clock(time.time())} [yellow]holding[/]: {hold.describe()}")

    return RunEvents(enqueued=_print_enqueued, started=started, finished=finished, held=held)


def _print_summary(records: list[RunRecord]) -> bool:
    """The outcome table and summary line; True when a run failed."""
    from bdp.cli.render import outcome_table, summary_line

    console = output_console()
    if records:
        console.print(outcome_table(records, "bdp run"))
    console.print(summary_line(records))
    return any(r.outcome.fails_run_command for r in records)
