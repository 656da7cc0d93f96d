"""Options shared by several commands, each defined once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bdp.config import DEFAULT_WATCH_INTERVAL, ISOLATION_MODES
from bdp.repo.selection import ORDERS, Scope

if TYPE_CHECKING:
    from bdp.queue.enqueue import EnqueueOptions

#: A repository argument: any path; bdp checks it and says what is wrong.
REPO = click.Path(path_type=Path)
Command = Callable[..., Any]


def watch_options(func: Command) -> Command:
    """--watch and --interval: keep polling `bd ready`."""
    interval = click.option(
        "--interval",
        default=f"{DEFAULT_WATCH_INTERVAL:g}s",
        show_default=True,
        envvar="BDP_WATCH_INTERVAL",
        help="Time between polls: 30s, 2m.",
    )
    watch = click.option("--watch", is_flag=True, help="Keep polling `bd ready` until Ctrl-C.")
    return watch(interval(func))


def budget_option(func: Command) -> Command:
    """--max-cost-per-issue USD, passed on as ``max_cost``."""
    return click.option(
        "--max-cost-per-issue",
        "max_cost",
        type=click.FloatRange(min=0, min_open=True),
        metavar="USD",
        help="Stop and reset an issue once its sessions cost this much.",
    )(func)


def isolation_option(func: Command) -> Command:
    """--isolation worktree|shared, passed on as ``isolation`` (None when not given)."""
    return click.option(
        "--isolation",
        type=click.Choice(ISOLATION_MODES),
        envvar="BDP_ISOLATION",
        help="Each run in its own git worktree, or all in the repo's work tree.",
    )(func)


def limit_option(func: Command) -> Command:
    limit = click.IntRange(0)
    return click.option("--limit", type=limit, default=0, help="At most N issues (0 = all).")(func)


def scope_options(func: Command) -> Command:
    """--ids, --epic and --order: which part of the backlog, in what order (``scope``)."""

    @functools.wraps(func)
    def with_scope(*args: Any, ids: str | None, epic: str | None, order: str, **kwargs: Any) -> Any:
        return func(*args, scope=Scope.parse(ids, epic, order), **kwargs)

    ids = click.option("--ids", metavar="A,B", help="Only these issues, when they are ready.")
    epic = click.option("--epic", metavar="ID", help="Only the ready descendants of this epic.")
    order = click.option(
        "--order",
        type=click.Choice(ORDERS),
        default="priority",
        show_default=True,
        help="Queue order: by priority, oldest first, or as --ids lists them.",
    )
    return ids(epic(order(with_scope)))


def selection_options(func: Command) -> Command:
    """Which ready issues to queue (filters and budget), passed on as one ``selection``."""

    @functools.wraps(func)
    def with_selection(
        *args: Any,
        priority: int | None,
        label: tuple[str, ...],
        type_: str | None,
        limit: int,
        max_cost: float | None,
        isolation: str | None,
        **kwargs: Any,
    ) -> Any:
        selection = enqueue_options(limit, max_cost, isolation, priority, label, type_)
        return func(*args, selection=selection, **kwargs)

    options: list[Callable[[Command], Command]] = [
        click.option("--priority", "-p", type=click.IntRange(0, 4), help="Only this priority."),
        click.option("--label", "-l", multiple=True, help="Only issues with this label (repeat)."),
        click.option("--type", "-t", "type_", help="Only this issue type (task, bug, ...)."),
        limit_option,
        budget_option,
        isolation_option,
    ]
    command: Command = with_selection
    for option in reversed(options):
        command = option(command)
    return command


def enqueue_options(
    limit: int,
    max_cost: float | None,
    isolation: str | None = None,
    priority: int | None = None,
    labels: tuple[str, ...] = (),
    issue_type: str | None = None,
) -> EnqueueOptions:
    """The `EnqueueOptions` of a command's options (imported here, to keep --help light)."""
    from bdp.queue.enqueue import EnqueueOptions
    from bdp.repo.beads import ReadyFilters

    filters = ReadyFilters(limit=limit, priority=priority, labels=labels, issue_type=issue_type)
    return EnqueueOptions(filters, max_cost, isolation=isolation)
