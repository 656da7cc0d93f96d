"""`bdp say` and `bdp stop`: steer a running agent, from any machine sharing the broker."""

from __future__ import annotations

import click

from bdp.cli.main import app_from_env, main
from bdp.cli.output import echo


@main.command()
@click.argument("issue_id", metavar="ISSUE")
@click.argument("message", nargs=-1, required=True)
def say(issue_id: str, message: tuple[str, ...]) -> None:
    """Send a message to the agent working on an issue.

    It reaches the session within a few seconds, on whichever machine it
    runs: with the result of the agent's next tool call, or as a new turn
    once its answer ends. It is kept in the run's log (`bdp logs`), with
    secrets redacted; at most 4,000 characters.

    \b
    Example:
        bdp say acme-k3x "use the retry helper in net/retry.py, not a new one"
        bdp say acme-k3x "$(cat guidance.txt)"
    """
    from bdp.run.steering import say as send

    for run in send(app_from_env().state, issue_id, " ".join(message)):
        echo(f"sent to run {run.run_id} of {issue_id} ({run.host}/{run.worker})")


@main.command()
@click.argument("issue_id", metavar="ISSUE")
@click.option("--requeue", is_flag=True, help="Queue its next attempt instead of leaving it.")
def stop(issue_id: str, requeue: bool) -> None:
    """Stop the agent working on an issue, and reset the issue.

    The run's worker, on whichever machine, ends it within a few seconds as
    INTERRUPTED: the issue goes back to open and unassigned, with a comment
    saying who stopped it, and the run's locks are freed. With --requeue the
    issue is queued again as its next attempt instead of left for a person.
    A run already landing its work finishes first.

    \b
    Example:
        bdp stop acme-k3x
        bdp stop acme-k3x --requeue     # start it over
    """
    from bdp.run.steering import request_stop

    for run in request_stop(app_from_env().state, issue_id, requeue):
        then = "queued again" if requeue else "left open"
        echo(
            f"asked run {run.run_id} of {issue_id} ({run.host}/{run.worker}) to stop; "
            f"the issue is reset and {then} once it has"
        )
