"""`bdp status`, `bdp logs`, `bdp metrics` and `bdp clean`: look at the queue, tidy it up."""

from __future__ import annotations

import click

from bdp.cli.ending import skip_teardown
from bdp.cli.main import app_from_env, main
from bdp.cli.options import Duration
from bdp.cli.output import console as output_console
from bdp.cli.output import echo, echo_json
from bdp.config import Settings
from bdp.durations import format_duration
from bdp.errors import BdpError


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--watch", "-w", is_flag=True, help="Keep the view live until Ctrl-C.")
@click.option(
    "--interval",
    type=Duration("s"),
    default="2s",
    show_default=True,
    help="Refresh period of --watch; a bare number is seconds.",
)
def status(as_json: bool, watch: bool, interval: float) -> None:
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
    if not watch:
        skip_teardown()
    if as_json:
        echo_json(collect_status(settings).to_json())
        return
    if watch:
        from bdp.cli.status_watch import watch_status

        watch_status(output_console(), lambda: collect_status(settings), interval)
        return
    from bdp.cli.status_view import print_status

    print_status(output_console(), collect_status(settings))


@main.command()
@click.option("--agent", "issue_id", help="Only runs of this issue id.")
@click.option("--tail", type=click.IntRange(1), help="Only the last N lines.")
@click.option(
    "--follow", "-f", is_flag=True, help="Follow every running run until they have all ended."
)
@click.option("--json", "as_json", is_flag=True, help="The raw SDK messages, one JSON per line.")
def logs(issue_id: str | None, tail: int | None, follow: bool, as_json: bool) -> None:
    """Show what an agent did (default: the latest run).

    With -f, every run going on this machine is followed, each line led by
    its issue id; runs that start meanwhile are picked up, and it ends when
    they all have (--agent follows that issue's runs only). With nothing
    running it shows the latest run's log.

    \b
    Example:
        bdp logs                      # the latest run
        bdp logs --agent acme-k3x --tail 50
        bdp logs -f                   # follow the running runs until they end
        bdp logs --agent acme-k3x --json | jq .type
    """
    settings = Settings.from_env()
    if follow and _follow_running(settings, issue_id, tail, as_json):
        return
    from bdp.agent.transcript import find_logs

    found = find_logs(settings, issue_id)
    if not found:
        which = f"issue {issue_id}" if issue_id else "any run"
        raise BdpError(
            f"no logs found for {which} in {settings.home / 'logs'}",
            "runs write logs there once a worker has started them",
        )
    path = found[-1].with_suffix(".jsonl") if as_json else found[-1]
    if not path.exists():
        raise BdpError(f"{path} does not exist", "the run has not sent a message yet")
    if follow:
        which = f"of {issue_id} " if issue_id else ""
        echo(f"no run {which}is running here; the latest log is {path.name}", err=True)
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines[-tail:] if tail else lines:
        echo(line)


def _follow_running(settings: Settings, issue_id: str | None, tail: int | None, raw: bool) -> bool:
    """Follow the runs going on this machine until they end; False when none is going."""
    from bdp.cli.log_follow import LogFollower, here
    from bdp.ops.live_runs import live_runs

    suffix = ".jsonl" if raw else ".log"
    runs = here(lambda: live_runs(settings))
    follower = LogFollower(runs, echo, issue_id, suffix, prefixed=not raw, tail=tail)
    follower.look()
    if not follower.followed:
        return False
    try:
        follower.follow()
    except KeyboardInterrupt:
        pass
    finally:
        follower.close()
    return True


@main.command()
@click.option("--locks", "locks_only", is_flag=True, help="Only the sweep: locks, runs, markers.")
@click.option("--logs", "logs_only", is_flag=True, help="Only delete old run logs.")
@click.option(
    "--older-than",
    type=Duration(None),
    default="7d",
    show_default=True,
    help="Age of logs to delete, with a unit: 7d, 12h, 30m.",
)
@click.option("--force", is_flag=True, help="Also free locks and runs of live agents.")
@click.option("--dry-run", is_flag=True, help="List the logs it would delete; sweep nothing.")
def clean(locks_only: bool, logs_only: bool, older_than: float, force: bool, dry_run: bool) -> None:
    """Free orphaned locks, reset abandoned issues, prune logs.

    Runs the janitor's sweep now: locks whose run is dead, runs with no
    heartbeat, issues claimed by bdp with no run, stale enqueue markers.
    Without --force it never touches a live run. Every log it deletes is
    listed; --dry-run lists them and deletes nothing (the sweep has no dry
    run, so it is left out: `bdp status` shows locks and runs).

    \b
    Example:
        bdp clean                     # sweep, and delete logs older than 7 days
        bdp clean --logs --older-than 2d --dry-run
        bdp clean --locks --force     # free everything, e.g. after a crash
    """
    settings = Settings.from_env()
    if not logs_only:
        if dry_run:
            echo("janitor: no sweep in a dry run (`bdp status` shows locks and runs)")
        else:
            _sweep(force)
    if not locks_only:
        from bdp.agent.transcript import old_logs, prune_logs

        age = format_duration(older_than)
        if dry_run:
            found = old_logs(settings, older_than)
            echo(f"would delete {len(found)} log files older than {age} (dry run)")
        else:
            found = prune_logs(settings, older_than)
            echo(f"deleted {len(found)} log files older than {age}")
        for path in found:
            echo(f"  {path}")


def _sweep(force: bool) -> None:
    from bdp.queue.janitor import Janitor

    app = app_from_env()
    report = Janitor(app.settings, app.huey, app.state, app.tasks.requeue).sweep(force=force)
    echo(f"janitor: {report.summary()}")
    for label, items in report.listed():
        for item in items:
            echo(f"  {label}: {item}")


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

    skip_teardown()
    echo(render_metrics(Settings.from_env()), nl=False)
