"""Options shared by several commands, each defined once, and the duration option type.

A short flag means one thing in every command (tests/cli/test_options.py walks them all):
``-n`` agents, ``-t`` issue type, ``-p`` priority, ``-l`` label (the last three as `bd ready`
has them), ``-w`` watch, ``-f`` follow, ``-v`` verbose, ``-h`` help.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bdp.config import ISOLATION_MODES
from bdp.durations import parse_duration
from bdp.repo.selection import ORDERS, Scope

if TYPE_CHECKING:
    from bdp.queue.enqueue import EnqueueOptions

#: A repository argument: any path; bdp checks it and says what is wrong.
REPO = click.Path(path_type=Path)
Command = Callable[..., Any]


class Duration(click.ParamType[float, "str | float"]):
    """A duration option's value in seconds: 90s, 10m, 2h, 7d, 1h30m.

    A bare number is in ``bare_unit`` (which the option's help names), or refused when that is
    None. A bad value raises ConfigError while click parses, which the group's error boundary
    turns into one ``Error:`` line (exit 2) naming the option, like a bad setting.
    """

    name = "duration"

    def __init__(self, bare_unit: str | None) -> None:
        self.bare_unit = bare_unit

    def convert(
        self, value: str | float, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value  # click converts a default it has already converted
        label = max(param.opts, key=len) if param is not None else "duration"
        return parse_duration(str(value), label, self.bare_unit)


def watch_options(func: Command) -> Command:
    """--watch and --interval: keep polling `bd ready` (``interval`` None: the setting's)."""
    interval = click.option(
        "--interval",
        type=Duration("s"),
        help="Time between polls: 30s, 2m; a bare number is seconds. "
        "[default: BDP_WATCH_INTERVAL or the config file, else 30s]",
    )
    watch = click.option(
        "--watch", "-w", is_flag=True, help="Keep polling `bd ready` until Ctrl-C."
    )
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
