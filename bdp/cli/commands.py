"""The `bdp` command line: parse options, call one function elsewhere, render the result.

User mistakes surface as one ``Error: ...`` line and a non-zero exit, converted in exactly
one place (`BdpGroup.invoke`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from bdp.config import DEFAULT_WATCH_INTERVAL, Settings, parse_duration
from bdp.errors import BdpError, BrokerUnavailable

if TYPE_CHECKING:  # the commands import these lazily, to keep `bdp --help` fast
    from bdp.cli.oneshot import Progress
    from bdp.queue.app import App
    from bdp.repo.beads import ReadyFilters

_REPO = click.Path(path_type=Path)


class BdpGroup(click.Group):
    """Turns BdpError (and an unreachable broker) into click's one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BdpError as error:
            raise _click_error(error) from None
        except Exception as error:  # redis-py's errors are not OSErrors; anything else re-raises
            broker = _broker_error(error)
            if broker is None:
                raise
            raise _click_error(broker) from None


class _UsageFailure(click.ClickException):
    """A setting or option has a value bdp cannot use."""

    exit_code = 2


def _click_error(error: BdpError) -> click.ClickException:
    kind = _UsageFailure if error.exit_code == _UsageFailure.exit_code else click.ClickException
    return kind(str(error))


def _broker_error(error: Exception) -> BrokerUnavailable | None:
    """A BrokerUnavailable for connection failures of Redis or SQLite, else None."""
    if type(error).__module__.startswith("redis"):
        return BrokerUnavailable(
            f"cannot reach Redis at {_settings_label()}: {error}",
            "start redis-server, or fix BDP_REDIS_URL (unset it to use local SQLite)",
        )
    if isinstance(error, sqlite3.OperationalError):
        return BrokerUnavailable(
            f"cannot use the queue database {_settings_label()}: {error}",
            "check BDP_HOME is writable",
        )
    return None


def _settings_label() -> str:
    try:
        return Settings.from_env().broker_label
    except BdpError:
        return "the configured broker"


def _app(**overrides: object) -> App:
    from bdp.queue.app import App

    return App.create(Settings.from_env(None, **overrides))


def _filters(
    priority: int | None, label: tuple[str, ...], type_: str | None, limit: int
) -> ReadyFilters:
    from bdp.repo.beads import ReadyFilters

    return ReadyFilters(limit=limit, priority=priority, labels=label, issue_type=type_)


def _watch_options(func: Any) -> Any:
    interval = click.option(
        "--interval",
        default=f"{DEFAULT_WATCH_INTERVAL:g}s",
        show_default=True,
        envvar="BDP_WATCH_INTERVAL",
        help="Time between polls: 30s, 2m.",
    )
    func = interval(func)
    return click.option("--watch", is_flag=True, help="Keep polling `bd ready` until Ctrl-C.")(func)


def _budget_option(func: Any) -> Any:
    return click.option(
        "--max-cost-per-issue", "max_cost", type=click.FloatRange(min=0, min_open=True),
        metavar="USD", help="Stop and reset an issue once its sessions cost this much.",
    )(func)  # fmt: skip


def _filter_options(func: Any) -> Any:
    options = [
        click.option("--priority", "-p", type=click.IntRange(0, 4), help="Only this priority."),
        click.option("--label", "-l", multiple=True, help="Only issues with this label (repeat)."),
        click.option("--type", "-t", "type_", help="Only this issue type (task, bug, ...)."),
        click.option(
            "--limit", type=click.IntRange(0), default=0, help="At most N issues (0 = all)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(cls=BdpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bdp")
def main() -> None:
    """Work through a beads backlog with many Claude agents at once.

    \b
    Example:
        bdp run ~/src/myrepo -n 4        # one shot: enqueue, work, summarise
        bdp enqueue ~/src/myrepo         # or queue work for huey_consumer workers
        huey_consumer bdp.consumer.huey -w 4 -k thread
    """


@main.command()
@click.argument("repo", type=_REPO)
@_filter_options
@click.option("--dry-run", is_flag=True, help="Show what would be queued; queue nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_budget_option
@_watch_options
def enqueue(repo: Path, priority: int | None, label: tuple[str, ...], type_: str | None,
            limit: int, dry_run: bool, as_json: bool, max_cost: float | None, watch: bool,
            interval: str) -> None:  # fmt: skip
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

    filters = _filters(priority, label, type_, limit)
    if watch:
        seconds = parse_duration(interval, "--interval")
        with contextlib.suppress(KeyboardInterrupt):
            watch_ready(_app(), repo, filters, seconds, _print_fresh, max_cost, _warn)
        return
    results = enqueue_ready(_app(), repo, filters, dry_run, max_cost)
    if as_json:
        rows = [{"id": r.issue.id, "title": r.issue.title, "priority": r.issue.priority,
                 "state": r.state} for r in results]  # fmt: skip
        click.echo(json.dumps(rows, indent=2))
        return
    _print_enqueued(results)


def _warn(message: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} warning: {message}", err=True)


def _print_fresh(results: list[Any]) -> None:
    if results:
        _print_enqueued(results)


def _print_enqueued(results: list[Any]) -> None:
    from rich.console import Console

    from bdp.cli.render import enqueue_table

    console = Console()
    if not results:
        console.print("No ready issues.")
        return
    console.print(enqueue_table(results))
    counts: dict[str, int] = {}
    for item in results:
        counts[item.state] = counts.get(item.state, 0) + 1
    console.print(", ".join(f"{n} {state}" for state, n in counts.items()))


@main.command()
@click.argument("repo", type=_REPO)
@click.option("--max-agents", "-n", type=click.IntRange(1, 64), default=3, show_default=True,
              help="Agents working at once.")  # fmt: skip
@click.option("--timeout", "-t", default="30", show_default=True, envvar="BDP_TIMEOUT",
              help="Per-issue timeout: minutes, or 90s / 2m / 1h.")  # fmt: skip
@click.option("--verbose", "-v", is_flag=True, help="Show each run's log file as it starts.")
@click.option("--limit", type=click.IntRange(0), default=0, help="At most N issues (0 = all).")
@_budget_option
@_watch_options
def run(repo: Path, max_agents: int, timeout: str, verbose: bool, limit: int,
        max_cost: float | None, watch: bool, interval: str) -> None:  # fmt: skip
    """Work through REPO's ready issues now, then summarise.

    Enqueues the ready issues, runs MAX_AGENTS workers in this process and exits
    when the repo's queued work is done: status 0 if nothing failed, 1 otherwise.
    With --watch it keeps picking up newly ready issues until Ctrl-C.

    \b
    Example:
        bdp run ~/src/myrepo -n 4 -t 45
        bdp run ~/src/myrepo --watch --interval 1m
    """
    from bdp.cli.oneshot import RunOptions, run_repo

    source = click.get_current_context().get_parameter_source("timeout")
    name = "BDP_TIMEOUT" if source is ParameterSource.ENVIRONMENT else "--timeout"
    app = _app(timeout=parse_duration(timeout, name))
    progress = _progress(verbose)
    every = parse_duration(interval, "--interval") if watch else None
    options = RunOptions(_filters(None, (), None, limit), max_agents, every, max_cost)
    records = run_repo(app, repo, options, progress)
    failed = _print_summary(records)
    sys.exit(1 if failed else 0)


def _progress(verbose: bool) -> Progress:
    from rich.console import Console

    from bdp.cli.oneshot import Progress
    from bdp.cli.render import clock

    console = Console()

    def started(run: Any) -> None:
        extra = f"  log: {run.log_path}" if verbose else ""
        console.print(f"{clock(run.started)} [magenta]started[/] {run.issue_id} {run.title}{extra}")

    def finished(record: Any) -> None:
        console.print(f"{clock(record.finished)} [bold]{record.outcome.value}[/] "
                      f"{record.issue_id}: {record.summary}")  # fmt: skip

    def held(hold: Any) -> None:
        if hold is None:
            console.print(f"{clock(time.time())} [green]resumed[/]: the hold is over")
        else:
            console.print(f"{clock(time.time())} [yellow]holding[/]: {hold.describe()}")

    return Progress(enqueued=_print_enqueued, started=started, finished=finished, held=held)


def _print_summary(records: list[Any]) -> bool:
    from rich.console import Console

    from bdp.cli.render import outcome_table, summary_line
    from bdp.models import Outcome

    console = Console()
    if records:
        console.print(outcome_table(records, "bdp run"))
    console.print(summary_line(records))
    return any(r.outcome in (Outcome.FAILED, Outcome.TIMED_OUT) for r in records)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--watch", "-w", is_flag=True, help="Keep the view live until Ctrl-C.")
@click.option("--interval", default="2s", show_default=True, help="Refresh period of --watch.")
def status(as_json: bool, watch: bool, interval: str) -> None:
    """Show the queue, running agents, locks and recent results.

    Running agents show their current tool, turns, tokens and cost so far;
    issues whose last run needs a person are listed under "needs attention",
    and a spent budget or a usage-limit pause is shown as a HOLD.

    \b
    Example:
        bdp status
        bdp status --watch            # live view, Ctrl-C to leave
        BDP_REDIS_URL=redis://queuehost:6379/0 bdp status --json
    """
    from bdp.ops.status import collect_status

    settings = Settings.from_env()
    if as_json:
        click.echo(json.dumps(collect_status(settings).to_json(), indent=2))
        return
    from rich.console import Console

    from bdp.cli.render import live_status, print_status

    if watch:
        period = parse_duration(interval, "--interval")
        live_status(Console(), lambda: collect_status(settings), period)
        return
    print_status(Console(), collect_status(settings))


@main.command()
@click.option("--agent", "issue_id", help="Only runs of this issue id.")
@click.option("--tail", "-n", type=click.IntRange(1), help="Only the last N lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the run goes on.")
@click.option("--json", "as_json", is_flag=True, help="The raw SDK messages, one JSON per line.")
def logs(issue_id: str | None, tail: int | None, follow: bool, as_json: bool) -> None:
    """Show what an agent did (default: the latest run).

    \b
    Example:
        bdp logs                      # the latest run
        bdp logs --agent acme-k3x -n 50
        bdp logs -f                   # follow the latest run live
        bdp logs --agent acme-k3x --json | jq .type
    """
    from bdp.agent.transcript import find_logs

    settings = Settings.from_env()
    found = find_logs(settings, issue_id)
    if not found:
        which = f"issue {issue_id}" if issue_id else "any run"
        raise BdpError(f"no logs found for {which} in {settings.home / 'logs'}",
                       "runs write logs there once a worker has started them")  # fmt: skip
    path = found[-1].with_suffix(".jsonl") if as_json else found[-1]
    if not path.exists():
        raise BdpError(f"{path} does not exist", "the run has not sent a message yet")
    _print_log(path, tail, follow)


def _print_log(path: Path, tail: int | None, follow: bool) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines[-tail:] if tail else lines:
        click.echo(line)
    if not follow:
        return
    with path.open(encoding="utf-8") as handle:
        handle.seek(0, 2)
        while True:
            line = handle.readline()
            if line:
                click.echo(line.rstrip("\n"))
            else:
                time.sleep(0.2)


@main.command()
@click.option("--locks", "locks_only", is_flag=True, help="Only the sweep: locks, runs, markers.")
@click.option("--logs", "logs_only", is_flag=True, help="Only delete old run logs.")
@click.option("--older-than", default="7d", show_default=True,
              help="Age of logs to delete: 7d, 12h, 30m.")  # fmt: skip
@click.option("--force", is_flag=True, help="Also free locks and runs of live agents.")
def clean(locks_only: bool, logs_only: bool, older_than: str, force: bool) -> None:
    """Free orphaned locks, reset abandoned issues, prune logs.

    Runs the janitor's sweep now: locks whose run is dead, runs with no
    heartbeat, issues claimed by bdp with no run, stale enqueue markers.
    Without --force it never touches a live run.

    \b
    Example:
        bdp clean                     # sweep, and delete logs older than 7 days
        bdp clean --logs --older-than 2d
        bdp clean --locks --force     # free everything, e.g. after a crash
    """
    settings = Settings.from_env()
    age = parse_duration(older_than, "--older-than")
    if not logs_only:
        _sweep(force)
    if not locks_only:
        from bdp.queue.janitor import clean_logs

        removed = clean_logs(settings, age)
        click.echo(f"deleted {len(removed)} log files older than {older_than}")


def _sweep(force: bool) -> None:
    from bdp.queue.janitor import Janitor

    app = _app()
    report = Janitor(app.settings, app.huey, app.state, app.tasks.requeue).sweep(force=force)
    click.echo(f"janitor: {report.summary()}")
    for label, items in (("freed lock", report.freed_locks), ("reset", report.reset),
                         ("requeued", report.requeued), ("needs a human", report.needs_human),
                         ("cleared marker", report.cleared_markers)):  # fmt: skip
        for item in items:
            click.echo(f"  {label}: {item}")


@main.command()
def metrics() -> None:
    """Print metrics in Prometheus text format.

    Queue depth, running sessions, outcomes by kind, session durations, cost,
    tokens and janitor actions, summed over every consumer sharing the broker.

    \b
    Example:
        bdp metrics
        bdp metrics > /var/lib/node_exporter/textfile/bdp.prom
    """
    from bdp.ops.metrics import render_metrics

    click.echo(render_metrics(_app()), nl=False)
