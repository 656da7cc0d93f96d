"""`bdp status --watch`: the status redrawn every interval, cut to fit the terminal.

On a terminal the view is redrawn in place and never taller than the screen: the longest
lists give up rows first, each cut counted ("… and N more"), so the headline and the
consumers stay in sight. Piped or redirected there is no screen to redraw (a live display
would print nothing until it stopped), so each interval prints a plain snapshot instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from bdp.cli.render import clock
from bdp.cli.status_view import PRIORITY, Rows, status_view, wanted_rows
from bdp.ops.status import StatusReport

#: Lines left free below the live view (where the cursor sits).
MARGIN = 1
#: Rows each list kept on a small terminal shows at least, before another list is let go.
FEW_ROWS = 3


def fitted(console: Console, report: StatusReport) -> Group:
    """The status view cut to be no taller than the console (uncut when it fits whole).

    The lists are kept in `PRIORITY` order: as many as fit with `FEW_ROWS` rows each, then
    each of those with as many rows as fit (the same cap for all); a list left out is one
    "… and N more" line.
    """
    height = max(1, console.size.height - MARGIN)
    options = console.options.update(height=None)  # measure the view, not the screen

    def view(cap: int, lists: Sequence[str]) -> Group:
        return status_view(report, Rows().capped(cap, lists))

    def fits(group: Group) -> bool:
        return len(console.render_lines(group, options, pad=False)) <= height

    most = max(wanted_rows(report).values(), default=0)
    if fits(whole := view(most, PRIORITY)):
        return whole
    kept = next(
        (PRIORITY[:n] for n in range(len(PRIORITY), 0, -1) if fits(view(FEW_ROWS, PRIORITY[:n]))),
        PRIORITY[:1],
    )
    low, high = 0, most  # the largest cap that fits, between one that does and one that not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(view(middle, kept)) else (low, middle)
    return view(low, kept)


def watch_status(console: Console, collect: Callable[[], StatusReport], interval: float) -> None:
    """Show the status every ``interval`` seconds until Ctrl-C."""
    try:
        if console.is_terminal:
            _live(console, collect, interval)
        else:
            _snapshots(console, collect, interval)
    except KeyboardInterrupt:
        pass


def _live(console: Console, collect: Callable[[], StatusReport], interval: float) -> None:
    with Live(fitted(console, collect()), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            live.update(fitted(console, collect()), refresh=True)


def _snapshots(console: Console, collect: Callable[[], StatusReport], interval: float) -> None:
    while True:
        report = collect()
        console.print(Text(f"--- bdp status at {clock(report.now)} ---"))
        console.print(status_view(report))
        console.file.flush()
        time.sleep(interval)
