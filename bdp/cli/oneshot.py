"""`bdp run`: the one-shot mode. Enqueue a repo's ready work, run workers in this process,
report what happens, and stop once that repo's work is done. Issues a close unblocks are
queued as soon as it lands, so a chain of dependencies is done in one run.

The in-process consumer serves the shared queue, so with a shared Redis it may also pick up
other repositories' tasks while it runs; it waits for those before exiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from huey.consumer import Consumer, ConsumerStopped

from bdp.broker.hold import Hold, current_hold
from bdp.broker.state import Marker
from bdp.models import Activity, Run, RunRecord
from bdp.queue.app import App
from bdp.queue.enqueue import TAKEN, Enqueued, EnqueueOptions, enqueue_ready, resolve_repo

#: Seconds between progress polls.
POLL_INTERVAL = 0.5
#: Polls with markers left but nothing queued or running before they count as stale.
STALE_POLLS = 10


@dataclass
class RunEvents:
    """Callbacks `bdp run` reports through (the CLI prints them)."""

    enqueued: Callable[[list[Enqueued]], None] = lambda items: None
    started: Callable[[Run], None] = lambda run: None
    finished: Callable[[RunRecord], None] = lambda record: None
    held: Callable[[Hold | None], None] = lambda hold: None  # a hold began (or ended: None)
    # the repo's running sessions and their live numbers, every poll (None: not wanted)
    progress: Callable[[list[Run], dict[str, Activity]], None] | None = None


@dataclass
class _Tracker:
    """What `bdp run` has seen of its repo's runs so far."""

    repo: str
    issue_ids: set[str]
    since: float
    seen_runs: set[str] = field(default_factory=set)
    seen_records: set[str] = field(default_factory=set)
    records: list[RunRecord] = field(default_factory=list)
    idle_polls: int = 0
    options: RunOptions = field(default_factory=lambda: RunOptions())
    next_poll: float = 0.0
    hold: Hold | None = None
    closed_since_pickup: bool = False  # an issue closed: others may have become ready


@dataclass(frozen=True)
class RunOptions:
    """How `bdp run` works: which issues, how many agents, and whether to keep watching."""

    enqueue: EnqueueOptions = field(default_factory=EnqueueOptions)
    max_agents: int = 3
    watch_interval: float | None = None  # seconds between `bd ready` polls; None: one shot


def run_repo(app: App, path: Path, options: RunOptions, events: RunEvents) -> list[RunRecord]:
    """Work through the repo's ready issues with ``max_agents`` in-process workers.

    A janitor sweep comes first (and every BDP_JANITOR_INTERVAL while it runs), so a `bdp run`
    after one that was killed finishes that one's work: its runs are found dead, their issues
    reset and queued again, and picked up here.
    """
    since = time.time()
    repo = str(resolve_repo(path, app.settings.bd))
    _sweep(app)
    enqueued = enqueue_ready(app, Path(repo), options.enqueue)
    events.enqueued(enqueued)
    waiting = {e.issue.id for e in enqueued if e.state in TAKEN}
    if not waiting and options.watch_interval is None:
        return []
    tracker = _Tracker(repo, waiting, since, options=options)
    consumer = _consumer(app, options.max_agents)
    consumer.start()
    try:
        _loop(app, consumer, tracker, events)
    finally:
        consumer.stop(graceful=True)
    _report(app, tracker, events)  # outcomes are recorded just after the markers go
    return tracker.records


def _consumer(app: App, max_agents: int) -> Consumer:
    logging.getLogger("huey").setLevel(logging.WARNING)
    app.tasks  # noqa: B018  registered before the first dequeue, even when this run queued none
    return app.huey.create_consumer(workers=max_agents, worker_type="thread", periodic=False)


def _sweep(app: App) -> None:
    from bdp.queue.janitor import Janitor

    Janitor(app.settings, app.huey, app.state, app.tasks.requeue).sweep()


def _loop(app: App, consumer: Consumer, tracker: _Tracker, events: RunEvents) -> None:
    health = time.monotonic()
    next_sweep = time.monotonic() + app.settings.janitor_interval
    try:
        while not _done(app, tracker, events):
            if time.monotonic() >= next_sweep:
                _sweep(app)
                next_sweep = time.monotonic() + app.settings.janitor_interval
            _report(app, tracker, events)
            _show_progress(app, tracker, events)
            _check_hold(app, tracker, events)
            _poll_ready(app, tracker, events)
            deadline = time.monotonic() + POLL_INTERVAL
            while time.monotonic() < deadline:
                health = consumer.loop(health)
    except ConsumerStopped:
        pass


def _report(app: App, tracker: _Tracker, events: RunEvents) -> None:
    for run in app.state.runs():
        if run.repo == tracker.repo and run.run_id not in tracker.seen_runs:
            tracker.seen_runs.add(run.run_id)
            events.started(run)
    for record in app.state.outcomes(limit=200):
        fresh = record.finished >= tracker.since and record.run_id not in tracker.seen_records
        if fresh and record.repo == tracker.repo and record.issue_id in tracker.issue_ids:
            tracker.seen_records.add(record.run_id)
            tracker.records.append(record)
            tracker.closed_since_pickup |= record.outcome.adds_ready_work
            events.finished(record)


def _show_progress(app: App, tracker: _Tracker, events: RunEvents) -> None:
    if events.progress is None:
        return
    runs = [run for run in app.state.runs() if run.repo == tracker.repo]
    events.progress(runs, app.state.activities() if runs else {})


def _check_hold(app: App, tracker: _Tracker, events: RunEvents) -> None:
    hold = current_hold(app.state, app.settings)
    if hold != tracker.hold:
        tracker.hold = hold
        events.held(hold)


def _poll_ready(app: App, tracker: _Tracker, events: RunEvents) -> None:
    """Queue issues that became ready: after each close (what it unblocked), and in watch
    mode every interval (new ones too)."""
    interval = tracker.options.watch_interval
    if interval is None:
        if tracker.closed_since_pickup:
            _pick_up_unblocked(app, tracker, events)
        return
    if time.monotonic() < tracker.next_poll:
        return
    tracker.next_poll = time.monotonic() + interval
    found = enqueue_ready(app, Path(tracker.repo), tracker.options.enqueue)
    fresh = [e for e in found if e.state == "queued"]
    if fresh:
        tracker.issue_ids |= {e.issue.id for e in fresh}
        events.enqueued(fresh)


def _pick_up_unblocked(app: App, tracker: _Tracker, events: RunEvents) -> bool:
    """Queue what `bd ready` offers now that this run has not taken yet (an issue that ended
    here and is ready again, after a reset, is left for another run); True if any. The run's
    scope holds: with --ids only those issues, with --epic only its descendants."""
    tracker.closed_since_pickup = False
    options = replace(tracker.options.enqueue, skip=frozenset(tracker.issue_ids))
    fresh = [e for e in enqueue_ready(app, Path(tracker.repo), options) if e.state == "queued"]
    if fresh:
        tracker.issue_ids |= {e.issue.id for e in fresh}
        events.enqueued(fresh)
    return bool(fresh)


def _pending(app: App, tracker: _Tracker) -> list[Marker]:
    """The repo's markers this run waits for: its issues', and any queued since it began
    (an epic's review its close queued; a task another command queued meanwhile)."""
    pending = [
        m
        for m in app.state.markers()
        if m.repo == tracker.repo and (m.issue_id in tracker.issue_ids or m.since >= tracker.since)
    ]
    tracker.issue_ids |= {m.issue_id for m in pending}
    return pending


def _done(app: App, tracker: _Tracker, events: RunEvents) -> bool:
    """All of the repo's markers are gone, or only stale ones remain (nothing can run them),
    or the queue budget is spent and none of the repo's sessions still runs.

    In watch mode never: only a signal (Ctrl-C) ends the run.
    """
    if tracker.options.watch_interval is not None:
        return False
    pending = _pending(app, tracker)
    if not pending:  # the last close may have unblocked more: those are this run's too
        _report(app, tracker, events)
        return not _pick_up_unblocked(app, tracker, events)
    running = any(r.repo == tracker.repo for r in app.state.runs())
    if tracker.hold is not None and tracker.hold.kind == "budget" and not running:
        return True  # the rest stays queued until the budget is raised
    busy = running or app.huey.pending_count() > 0 or app.huey.scheduled_count() > 0
    tracker.idle_polls = 0 if busy else tracker.idle_polls + 1
    return tracker.idle_polls > STALE_POLLS
