"""`bdp run` as it goes: a live panel on a terminal, one line per event everywhere else.

On a terminal, finished runs scroll by as lines above a panel that shows how far the run is
(x of N issues done), each running agent (issue, elapsed, current tool, turns, cost) and the
run's cost so far; the panel never grows past the terminal's height. Piped or redirected,
the same events are printed one per line, so a log file or CI shows what happened.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bdp.broker.hold import Hold
from bdp.cli.oneshot import RunEvents
from bdp.cli.render import age, clock, styled
from bdp.cli.run_summary import outcome_group
from bdp.models import Activity, Run, RunRecord
from bdp.queue.enqueue import Enqueued

#: Lines of the panel besides its agents' rows (headline, table header and edges, a margin).
_PANEL_LINES = 6


class RunView:
    """The progress of one `bdp run`, drawn on ``console``."""

    def __init__(self, console: Console, repo: str, verbose: bool = False) -> None:
        self.console, self.repo, self.verbose = console, repo, verbose
        self.queued: set[str] = set()
        self.done: set[str] = set()
        self.running: dict[str, Run] = {}
        self.activities: dict[str, Activity] = {}
        self.workers: dict[str, str] = {}  # run id -> worker, for the summary's timeline
        self.spent = 0.0
        self.started_at = time.time()
        self._live: Live | None = None

    def __enter__(self) -> RunView:
        if self.console.is_terminal:
            self._live = Live(console=self.console, auto_refresh=False, transient=True)
            self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def events(self) -> RunEvents:
        return RunEvents(
            enqueued=self.enqueued,
            started=self.started,
            finished=self.finished,
            held=self.held,
            progress=self.progress,
        )

    def enqueued(self, items: list[Enqueued]) -> None:
        fresh = [item for item in items if item.state in ("queued", "already queued", "running")]
        self.queued |= {item.issue.id for item in fresh}
        for item in fresh:
            self._line(
                f"{clock(time.time())} [cyan]{item.state}[/] {item.issue.id} {item.issue.title}"
            )
        if not items:
            self._line("No ready issues.")

    def started(self, run: Run) -> None:
        self.running[run.run_id] = run
        self.workers[run.run_id] = run.worker
        self.queued.add(run.issue_id)
        log = f"  log: {run.log_path}" if self.verbose else ""
        title = escape(run.title)
        self._line(f"{clock(run.started)} [magenta]started[/] {run.issue_id} {title}{log}")

    def finished(self, record: RunRecord) -> None:
        self.running.pop(record.run_id, None)
        self.activities.pop(record.run_id, None)
        self.queued.add(record.issue_id)
        self.spent += record.cost_usd + record.review_cost_usd
        if outcome_group(record.outcome) != "skipped":
            self.done.add(record.issue_id)
        cost = f"${record.cost_usd:.4f}"
        took = f"{age(record.duration)} {record.turns} turns {cost}"
        self._line(
            f"{clock(record.finished)} {styled(record.outcome.value)} {record.issue_id} "
            f"{took}: {escape(record.summary)}"
        )

    def held(self, hold: Hold | None) -> None:
        if hold is None:
            self._line(f"{clock(time.time())} [green]resumed[/]: the hold is over")
        else:
            self._line(f"{clock(time.time())} [yellow]holding[/]: {escape(hold.describe())}")

    def progress(self, runs: list[Run], activities: dict[str, Activity]) -> None:
        """The live numbers of the repo's running sessions (polled by `bdp run`)."""
        for run in runs:
            self.running.setdefault(run.run_id, run)
            self.workers.setdefault(run.run_id, run.worker)
        self.activities = {run_id: a for run_id, a in activities.items() if run_id in self.running}
        if self._live is not None:
            self._live.update(self.panel(), refresh=True)

    def panel(self) -> RenderableType:
        """The live panel: how far the run is, then one row per running agent."""
        live_cost = sum(a.cost_usd for a in self.activities.values())
        elapsed = age(time.time() - self.started_at)
        done = f"{len(self.done)}/{max(len(self.queued), len(self.done))} done"
        head = Text.assemble(
            ("bdp run ", "bold"),
            (done, "bold green"),
            f"  {len(self.running)} running  {elapsed}  ${self.spent + live_cost:.4f}  {self.repo}",
            no_wrap=True,
            overflow="ellipsis",  # the repo's path is cut at the end, never the counts
        )
        return Group(head, self._agents_table())

    def _agents_table(self) -> Table:
        runs = sorted(self.running.values(), key=lambda r: r.started)
        widest = max((len(run.issue_id) for run in runs), default=5)
        table = Table(box=None, pad_edge=False, expand=False)
        table.add_column("issue", no_wrap=True, min_width=widest)  # ids are never cut
        for name in ("elapsed", "turns", "cost"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("tool", no_wrap=True, overflow="ellipsis", max_width=40)
        table.add_column("title", no_wrap=True, overflow="ellipsis")
        rows = max(1, self.console.size.height - _PANEL_LINES)
        for run in runs[:rows]:
            activity = self.activities.get(run.run_id, Activity())
            table.add_row(
                run.issue_id,
                age(time.time() - run.started),
                str(activity.turns),
                f"${activity.cost_usd:.4f}",
                escape(activity.tool or "thinking"),
                escape(run.title),
            )
        if len(runs) > rows:
            table.add_row(f"… and {len(runs) - rows} more", "", "", "", "", "")
        return table

    def _line(self, markup: str) -> None:
        """One event, as a line (above the live panel on a terminal)."""
        self.console.print(markup, highlight=False, soft_wrap=True)
        if self._live is not None:
            self._live.update(self.panel(), refresh=True)

    def print_summary(self, records: list[RunRecord], ready_again: int) -> int:
        """The end of the run: its runs, every outcome counted, the timeline, what next;
        the exit status."""
        from bdp.cli.render import outcome_table
        from bdp.cli.run_summary import RunTotals, next_steps, summary_lines, timeline

        totals = RunTotals.of(records, time.time() - self.started_at)
        console = self.console
        if records:
            console.print(outcome_table(records, "bdp run"))
        for line in summary_lines(totals):
            console.print(line, highlight=False, soft_wrap=True)
        lanes = timeline(records, self.workers)
        if len(lanes) > 1:
            console.print("timeline (# closed, x failed, ! needs attention):", highlight=False)
            for lane in lanes:
                console.print(escape(lane), highlight=False, soft_wrap=True)
        for step in next_steps(totals, ready_again):
            console.print(f"next: {escape(step)}", highlight=False, soft_wrap=True)
        return totals.exit_code
