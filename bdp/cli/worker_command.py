"""`bdp worker`: serve the queue from this terminal (Huey's consumer, bdp's defaults)."""

from __future__ import annotations

import os

import click

from bdp.cli.main import app_from_env, main
from bdp.cli.output import echo

#: Workers of `bdp worker` without ``-n``: as many agents as `bdp run` starts.
DEFAULT_WORKERS = 3
#: Threads (the default: sessions wait on the CLI, not the CPU) or forked processes.
WORKER_KINDS = ("thread", "process")


@main.command()
@click.option(
    "--max-agents",
    "--workers",
    "-n",
    "workers",
    type=click.IntRange(1),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Agents this consumer runs at once.",
)
@click.option(
    "--kind",
    "-k",
    type=click.Choice(WORKER_KINDS),
    default="thread",
    show_default=True,
    help="Run workers as threads or forked processes.",
)
def worker(workers: int, kind: str) -> None:
    """Run a consumer: take queued issues and work them.

    The same consumer as `huey_consumer bdp.consumer.huey`, in this process:
    it logs one start line, one line per finished run, and a heartbeat that
    `bdp status` lists. Ctrl-C lets running sessions wrap up; twice stops now.

    \b
    Example:
        bdp worker                    # 3 agents, threads
        bdp worker -n 8               # -n: agents at once, as for bdp run
        BDP_REDIS_URL=redis://queuehost:6379/0 bdp worker -n 4 -k process
    """
    from bdp.queue.serve import serve
    from bdp.run.preflight import require, worker_checks

    app = app_from_env()
    for warning in require(worker_checks(app.settings, os.environ)):
        echo(f"warning: {warning.line()}", err=True)
    serve(app, workers, kind)
