"""Unit tests for bdp/queue/janitor.py: one sweep at a time, on a real SQLite Huey in tmp_path.

bd is the in-memory `MemoryBeads` double; runs are registered straight into the state, alive or
dead by their heartbeat and pid. No redis-server, no claude CLI.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from bdp.agent.session import StubAgentRunner
from bdp.broker import state as state_module
from bdp.broker.claims import Lease, RedisClaims
from bdp.broker.state import State
from bdp.cli import main
from bdp.config import Settings
from bdp.errors import BeadsError
from bdp.models import Issue, Outcome, Run, TaskArgs
from bdp.ops.status import collect_status
from bdp.queue import janitor as janitor_module
from bdp.queue import janitor_locks
from bdp.queue.app import App
from bdp.queue.janitor import Janitor, SweepReport
from bdp.repo import known_repos
from bdp.repo.beads import Beads
from bdp.repo.epics import CHANGES_ASKED, EpicProgress
from bdp.repo.locks import Holder, LockTable, lock_name
from bdp.repo.memory_beads import MemoryBeads
from bdp.repo.pending import PendingClose, pending_closes
from bdp.repo.procs import RUN_ENV, end_run_processes
from bdp.repo.shared_locks import SharedLockTable
from bdp.repo.worktree import create as create_worktree
from bdp.repo.worktree import tip, worktrees_dir
from tests.support.processes import wait_for

HOST = socket.gethostname()
WORKER = "w1"
ACTOR = f"bdp/{HOST}/{WORKER}"  # how a worker on this host claims (bdp.run.work.actor_name)
ISSUE = "t-1"
STALE = 5.0
LONG_AGO = 60.0  # seconds: well past STALE
NOTHING = SweepReport().summary()


class CountingBeads(MemoryBeads):
    """MemoryBeads that also lists every reset, to show a reset happened exactly once."""

    def __init__(self, issues: list[Issue] | None = None) -> None:
        super().__init__(issues)
        self.resets: list[str] = []

    def reset(self, issue_id: str, actor: str) -> None:
        self.resets.append(issue_id)
        super().reset(issue_id, actor)


class WindowOn(CountingBeads):
    """Another janitor's view of the same issues; runs ``after_show`` once, after a `show`."""

    def __init__(self, shared: CountingBeads, after_show: Callable[[], None]) -> None:
        super().__init__()
        self.issues, self.comments, self.resets = shared.issues, shared.comments, shared.resets
        self._after_show: Callable[[], None] | None = after_show

    def show(self, issue_id: str) -> Issue:
        issue = super().show(issue_id)
        hook, self._after_show = self._after_show, None
        if hook:
            hook()
        return issue


def stamp(seconds_ago: float = 0.0) -> str:
    """An RFC 3339 UTC time, as bd prints ``updated_at``."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def claimed(issue_id: str = ISSUE, assignee: str = ACTOR, seconds_ago: float = LONG_AGO) -> Issue:
    """An issue claimed by ``assignee`` ``seconds_ago`` (when bd last updated it)."""
    issue = Issue(issue_id, f"Issue {issue_id}")
    return replace(issue, status="in_progress", assignee=assignee, updated_at=stamp(seconds_ago))


def a_run(tree: Path, **changes: Any) -> Run:
    """A live run of ISSUE by this process on this host; ``changes`` make it otherwise."""
    now = time.time()
    run = Run(
        run_id="run-1",
        issue_id=ISSUE,
        repo=str(tree),
        title=f"Issue {ISSUE}",
        host=HOST,
        pid=os.getpid(),
        worker=WORKER,
        attempt=1,
        started=now - 30,
        deadline=now + 600,
        heartbeat=now,
    )
    return replace(run, **changes)


def _a_dead_pid() -> int:
    """The pid of a process of ours that has exited (no live process has it now)."""
    with subprocess.Popen(["true"]) as gone:
        gone.wait()
    return gone.pid


DEAD_PID = _a_dead_pid()


def dead_run(tree: Path, **changes: Any) -> Run:
    """A run of this host whose worker is gone and whose heartbeat stopped LONG_AGO s ago."""
    return a_run(tree, **{"heartbeat": time.time() - LONG_AGO, "pid": DEAD_PID, **changes})


def make_app(settings: Settings) -> App:
    return App.create(settings, agent=lambda _settings: StubAgentRunner())


def janitor_of(app: App, beads: Beads) -> Janitor:
    return Janitor(app.settings, app.huey, app.state, app.tasks.requeue, beads=lambda _r: beads)


def queued(app: App) -> list[tuple[str, tuple[Any, ...]]]:
    """Each pending task's name, and the repo, issue and attempt its payload carries."""
    return [(task.name, named(task)) for task in app.huey.pending()]


def named(task: Any) -> tuple[str, str, int]:
    args = TaskArgs.from_task(*task.args)
    return (args.repo, args.issue_id, args.attempt)


def holder(run_id: str) -> Holder:
    return Holder.here(run_id, ISSUE)


def unowned_lock(table: LockTable, path: str, age: float) -> Path:
    """A lock directory without an owner record (a crash mid-acquire), ``age`` seconds old."""
    directory = table.root / lock_name(path)
    directory.mkdir(parents=True)
    then = time.time() - age
    os.utime(directory, (then, then))
    return directory


@contextmanager
def stamped_long_ago() -> Iterator[None]:
    """What bdp.broker.state writes inside the block is stamped LONG_AGO seconds in the past."""
    then = time.time() - LONG_AGO
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_module, "time", SimpleNamespace(time=lambda: then))
        yield


def sweep_together(janitors: list[Janitor]) -> list[SweepReport]:
    """Run one sweep of each janitor, each in its own thread, all released at once."""
    barrier = threading.Barrier(len(janitors))
    reports: list[SweepReport] = []
    errors: list[BaseException] = []

    def sweep(janitor: Janitor) -> None:
        try:
            barrier.wait(timeout=10)
            reports.append(janitor.sweep())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sweep, args=(j,), daemon=True) for j in janitors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return reports


def listed(reports: list[SweepReport], field: str) -> list[str]:
    return sorted(item for report in reports for item in getattr(report, field))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", stale_after=STALE, max_attempts=3)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository path; the janitor only needs it to exist."""
    path = tmp_path / "tree"
    path.mkdir()
    return path


@pytest.fixture
def app(settings: Settings, tree: Path) -> App:
    """The app, with ``tree`` remembered as a repo with queued work (as any worker does)."""
    app = make_app(settings)
    app.state.remember_repo(str(tree))
    return app


@pytest.fixture
def beads() -> CountingBeads:
    return CountingBeads()


@pytest.fixture
def janitor(app: App, beads: CountingBeads) -> Janitor:
    return janitor_of(app, beads)


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    return proc.pid


# -- dead runs ---------------------------------------------------------------------------------


def test_a_dead_run_is_unregistered_reset_requeued_and_recorded_as_abandoned(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path
) -> None:
    # Given a run of t-1 whose heartbeat stopped a minute ago, and its running marker
    beads.issues[ISSUE] = claimed()
    run = dead_run(tree)
    app.state.register(run)
    app.state.mark_running(str(tree), ISSUE, "task-of-the-dead-run")

    # When the janitor sweeps
    report = janitor.sweep()

    # Then the run is no longer registered
    assert app.state.runs() == []
    # And the issue is open and unassigned again, with a comment naming the run
    issue = beads.issues[ISSUE]
    assert (issue.status, issue.assignee) == ("open", "")
    [comment] = beads.comments[ISSUE]
    assert run.run_id in comment
    assert "queued again as attempt 2" in comment
    # And one task runs it again as attempt 2, the marker pointing at that task
    [task] = app.huey.pending()
    assert (task.name, named(task)) == ("run_issue", (str(tree), ISSUE, 2))
    marker = app.state.marker(str(tree), ISSUE)
    assert marker is not None
    assert (marker.state, marker.task_id) == ("queued", task.id)
    # And the run is recorded as ABANDONED, and the report says what was done
    [record] = app.state.outcomes()
    assert (record.run_id, record.outcome, record.attempt) == (run.run_id, Outcome.ABANDONED, 1)
    assert (report.reset, report.requeued, report.needs_human) == ([ISSUE], [ISSUE], [])


def test_a_run_on_this_host_whose_process_is_gone_is_dead_despite_a_fresh_heartbeat(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path, dead_pid: int
) -> None:
    beads.issues[ISSUE] = claimed()
    app.state.register(a_run(tree, pid=dead_pid))

    report = janitor.sweep()

    assert app.state.runs() == []
    assert report.requeued == [ISSUE]
    assert beads.issues[ISSUE].status == "open"


def test_a_run_on_another_host_with_a_fresh_heartbeat_is_left_alone(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path, dead_pid: int
) -> None:
    # Given a run on another machine, whose pid means nothing here, beating just now
    beads.issues[ISSUE] = claimed(assignee=f"bdp/other-host/{WORKER}")
    run = a_run(tree, host="other-host", pid=dead_pid)
    app.state.register(run)

    # When the janitor sweeps
    report = janitor.sweep()

    # Then the run, its claim and the queue are as they were
    assert [r.run_id for r in app.state.runs()] == [run.run_id]
    assert beads.issues[ISSUE].status == "in_progress"
    assert beads.resets == []
    assert app.huey.pending() == []
    assert report.summary() == NOTHING


def test_a_live_run_on_this_host_is_left_alone_and_keeps_its_locks(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path, settings: Settings
) -> None:
    # Given a live run of this process holding a lock
    beads.issues[ISSUE] = claimed()
    run = a_run(tree)
    app.state.register(run)
    table = LockTable(settings.home, tree)
    table.acquire(["src/a.py"], holder(run.run_id), wait=0)

    # When the janitor sweeps
    report = janitor.sweep()

    # Then the run, its lock and its claim are kept
    assert [r.run_id for r in app.state.runs()] == [run.run_id]
    assert [(lock.path, lock.holder.run_id) for lock in table.locks()] == [("src/a.py", "run-1")]
    assert beads.issues[ISSUE].assignee == ACTOR
    assert report.summary() == NOTHING


def test_after_max_attempts_the_issue_stays_open_for_a_human_and_is_not_requeued(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path
) -> None:
    # Given the third (and last allowed) attempt died
    beads.issues[ISSUE] = claimed()
    app.state.register(dead_run(tree, attempt=3))
    app.state.mark_running(str(tree), ISSUE, "task-of-attempt-3")

    # When the janitor sweeps
    report = janitor.sweep()

    # Then the issue is open with a comment asking for a human
    issue = beads.issues[ISSUE]
    assert (issue.status, issue.assignee) == ("open", "")
    [comment] = beads.comments[ISSUE]
    assert "needs a human" in comment
    # And nothing is queued, and no marker is left
    assert app.huey.pending() == []
    assert app.state.marker(str(tree), ISSUE) is None
    assert (report.needs_human, report.requeued) == ([ISSUE], [])


def test_a_dead_runs_issue_claimed_by_someone_else_since_is_not_reset_or_requeued(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path
) -> None:
    # Given the dead run's issue now belongs to alice
    beads.issues[ISSUE] = claimed(assignee="alice")
    app.state.register(dead_run(tree))

    # When the janitor sweeps
    report = janitor.sweep()

    # Then the run is gone but alice keeps her claim and nothing is queued
    assert app.state.runs() == []
    assert (beads.issues[ISSUE].status, beads.issues[ISSUE].assignee) == ("in_progress", "alice")
    assert beads.resets == []
    assert ISSUE not in beads.comments
    assert app.huey.pending() == []
    assert (report.reset, report.requeued) == ([], [])


def test_two_janitors_one_after_the_other_recover_a_dead_run_once(
    settings: Settings, app: App, beads: CountingBeads, tree: Path
) -> None:
    # Given a dead run, and two janitors (two consumers) over the same SQLite file
    beads.issues[ISSUE] = claimed()
    app.state.register(dead_run(tree))
    first, second = janitor_of(app, beads), janitor_of(make_app(settings), beads)

    # When one sweeps and then the other
    reports = [first.sweep(), second.sweep()]

    # Then there was one reset, one requeue and one ABANDONED record
    assert beads.resets == [ISSUE]
    assert listed(reports, "requeued") == [ISSUE]
    assert queued(app) == [("run_issue", (str(tree), ISSUE, 2))]
    assert [r.outcome for r in app.state.outcomes()] == [Outcome.ABANDONED]
    assert reports[1].summary() == NOTHING


def test_two_janitors_sweeping_at_once_recover_each_dead_run_exactly_once(
    settings: Settings, app: App, tree: Path
) -> None:
    rounds = 8
    beads = CountingBeads()
    janitors = [janitor_of(app, beads), janitor_of(make_app(settings), beads)]
    for n in range(rounds):
        # Given a dead run of t-n
        beads.issues[f"t-{n}"] = claimed(f"t-{n}")
        app.state.register(dead_run(tree, run_id=f"run-{n}", issue_id=f"t-{n}"))

        # When two janitors sweep at the same moment, from two threads
        reports = sweep_together(janitors)

        # Then t-n was reset, requeued and recorded as abandoned once
        assert listed(reports, "reset") == [f"t-{n}"], n
        assert listed(reports, "requeued") == [f"t-{n}"], n
    assert beads.resets == [f"t-{n}" for n in range(rounds)]
    assert sorted(args for _, args in queued(app)) == [
        (str(tree), f"t-{n}", 2) for n in range(rounds)
    ]
    abandoned = [r.run_id for r in app.state.outcomes() if r.outcome is Outcome.ABANDONED]
    assert sorted(abandoned) == [f"run-{n}" for n in range(rounds)]
    for n in range(rounds):
        marker = app.state.marker(str(tree), f"t-{n}")
        assert marker is not None
        assert marker.state == "queued"


def test_an_orphan_sweep_inside_a_dead_run_recovery_leaves_its_requeue_marked(
    settings: Settings, app: App, beads: CountingBeads, tree: Path
) -> None:
    # Given a dead run, and a second janitor that sweeps in full just after the first one
    # has taken the run but before it looks at bd: it sees a bdp claim with no run
    beads.issues[ISSUE] = claimed()
    app.state.register(dead_run(tree))
    second = janitor_of(make_app(settings), beads)
    interleaved: list[SweepReport] = []

    def beads_for(_repo: Path) -> Beads:
        if not interleaved:
            interleaved.append(second.sweep())
        return beads

    first = Janitor(settings, app.huey, app.state, app.tasks.requeue, beads=beads_for)

    # When the first janitor sweeps
    report = first.sweep()

    # Then the issue was reset and requeued once
    assert beads.resets == [ISSUE]
    assert listed([report, *interleaved], "requeued") == [ISSUE]
    # And the marker still points at the queued task, so it cannot be queued twice
    [task] = app.huey.pending()
    marker = app.state.marker(str(tree), ISSUE)
    assert marker is not None
    assert (marker.state, marker.task_id) == ("queued", task.id)
    assert [r.outcome for r in app.state.outcomes()] == [Outcome.ABANDONED]


def test_a_dead_run_and_an_orphan_sweep_reading_bd_together_reset_the_issue_once(
    settings: Settings, app: App, beads: CountingBeads, tree: Path
) -> None:
    # Given a dead run; janitor A takes the run, janitor B then finds its claim with no run,
    # and both read the issue from bd (still in progress) before either resets it
    beads.issues[ISSUE] = claimed()
    app.state.register(dead_run(tree))
    taken, a_read, b_read = threading.Event(), threading.Event(), threading.Event()

    def a_after_show() -> None:
        a_read.set()
        b_read.wait(timeout=10)

    def b_after_show() -> None:
        b_read.set()
        a_read.wait(timeout=10)

    a_view, b_view = WindowOn(beads, a_after_show), WindowOn(beads, b_after_show)

    def a_beads(_repo: Path) -> Beads:
        taken.set()
        return a_view

    janitor_a = Janitor(settings, app.huey, app.state, app.tasks.requeue, beads=a_beads)
    other = make_app(settings)
    janitor_b = janitor_of(other, b_view)
    reports: list[SweepReport] = []
    thread = threading.Thread(target=lambda: reports.append(janitor_a.sweep()), daemon=True)

    # When both sweep so
    thread.start()
    assert taken.wait(timeout=10)
    reports.append(janitor_b.sweep())
    thread.join(timeout=30)
    assert not thread.is_alive()

    # Then the issue was reset and requeued once
    assert beads.resets == [ISSUE]
    assert listed(reports, "requeued") == [ISSUE]
    assert len(app.huey.pending()) == 1
    assert len(beads.comments[ISSUE]) == 1


class FailsOnce(CountingBeads):
    """bd failing the first reset (a timeout, a locked database), then working again."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(issues)
        self.failed = False

    def reset(self, issue_id: str, actor: str) -> None:
        if not self.failed:
            self.failed = True
            raise BeadsError(f"bd could not reset {issue_id}: database is locked")
        super().reset(issue_id, actor)


def test_a_dead_runs_issue_whose_reset_failed_is_recovered_by_a_later_sweep(
    app: App, tree: Path
) -> None:
    # Given a dead run, and bd failing the janitor's first reset
    beads = FailsOnce([claimed()])
    app.state.register(dead_run(tree))
    janitor = janitor_of(app, beads)

    # When the janitor sweeps, and sweeps again
    reports = [janitor.sweep(), janitor.sweep()]

    # Then the claim, now with no run, was still reset (once) and the issue queued again
    assert listed(reports, "reset") == [ISSUE]
    assert beads.issues[ISSUE].status == "open"
    assert queued(app) == [("run_issue", (str(tree), ISSUE, 2))]


def test_an_orphan_claim_whose_reset_failed_is_retried_by_the_next_sweep(
    app: App, tree: Path
) -> None:
    beads = FailsOnce([claimed(assignee="bdp/elsewhere/w7")])
    janitor = janitor_of(app, beads)

    first, second = janitor.sweep(), janitor.sweep()

    assert (first.reset, second.reset) == ([], [ISSUE])
    assert beads.issues[ISSUE].status == "open"
    assert len(app.huey.pending()) == 1


# -- locks -------------------------------------------------------------------------------------


def test_a_lock_whose_run_is_not_registered_is_freed(
    janitor: Janitor, settings: Settings, tree: Path
) -> None:
    table = LockTable(settings.home, tree)
    table.acquire(["src/a.py"], holder("gone-run"), wait=0)

    report = janitor.sweep()

    assert table.locks() == []
    assert report.freed_locks == [f"{table.root.name}:src/a.py"]


def test_a_lock_of_a_live_registered_run_is_kept(
    app: App, janitor: Janitor, settings: Settings, tree: Path, dead_pid: int
) -> None:
    # a run of another host: its lock would be freed if the janitor thought it dead
    app.state.register(a_run(tree, host="other-host", pid=dead_pid))
    table = LockTable(settings.home, tree)
    table.acquire(["src/a.py"], holder("run-1"), wait=0)

    report = janitor.sweep()

    assert [lock.path for lock in table.locks()] == ["src/a.py"]
    assert report.freed_locks == []


def test_a_run_holding_many_locks_is_judged_and_its_processes_ended_once(
    app: App, settings: Settings, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a live run and a run that is not registered, each holding ten locks
    app.state.register(a_run(tree))
    table = LockTable(settings.home, tree)
    table.acquire([f"src/live{n}.py" for n in range(10)], holder("run-1"), wait=0)
    table.acquire([f"src/gone{n}.py" for n in range(10)], holder("gone-run"), wait=0)
    looks: list[int] = []
    ended: list[str] = []

    def alive(pid: int) -> bool:
        looks.append(pid)
        return True

    def end(run_id: str) -> list[int]:
        ended.append(run_id)
        return []

    monkeypatch.setattr(janitor_module, "pid_alive", alive)
    monkeypatch.setattr(janitor_module, "end_run_processes", end)
    monkeypatch.setattr(janitor_locks, "end_run_processes", end)

    # When the janitor sweeps
    report = janitor_of(app, MemoryBeads()).sweep()

    # Then each run was looked at once for its locks, and only the gone run's locks were freed
    assert looks == [os.getpid(), os.getpid()]  # the recovery pass, then the lock pass
    assert ended == ["gone-run"]
    assert len(report.freed_locks) == 10
    assert {lock.holder.run_id for lock in table.locks()} == {"run-1"}


def test_a_lock_taken_by_a_run_registered_during_the_sweep_is_kept(
    app: App, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a dead lock holder in repo a, and a run of repo b that registers and takes a lock
    # while the janitor is still ending the dead holder's processes
    first, second = tmp_path / "a", tmp_path / "b"
    for path in (first, second):
        path.mkdir()
    LockTable(settings.home, first).acquire(["x.py"], holder("gone-run"), wait=0)
    newcomer = LockTable(settings.home, second)
    newcomer.root.mkdir(parents=True)  # b has had locks before

    def slow_end(run_id: str) -> list[int]:
        if run_id == "gone-run" and not newcomer.locks():
            app.state.register(a_run(second, run_id="new-run"))
            newcomer.acquire(["y.py"], holder("new-run"), wait=0)
        return end_run_processes(run_id)

    monkeypatch.setattr(janitor_locks, "end_run_processes", slow_end)

    # When the janitor sweeps
    report = janitor_of(app, MemoryBeads()).sweep()

    # Then only the dead holder's lock was freed
    assert [lock.holder.run_id for lock in newcomer.locks()] == ["new-run"]
    assert [item.split(":", 1)[1] for item in report.freed_locks] == ["x.py"]


def test_an_ownerless_lock_directory_older_than_stale_after_is_freed(
    janitor: Janitor, settings: Settings, tree: Path
) -> None:
    table = LockTable(settings.home, tree)
    directory = unowned_lock(table, "src/a.py", age=STALE * 4)

    report = janitor.sweep()

    assert not directory.exists()
    assert report.freed_locks == [f"{table.root.name}:{directory.name} (no owner)"]


def test_a_fresh_ownerless_lock_directory_is_kept(
    janitor: Janitor, settings: Settings, tree: Path
) -> None:
    # a run may be between creating the directory and writing its owner record
    directory = unowned_lock(LockTable(settings.home, tree), "src/a.py", age=0)

    report = janitor.sweep()

    assert directory.is_dir()
    assert report.freed_locks == []


def test_force_frees_every_lock_and_run_live_ones_included(
    app: App, janitor: Janitor, beads: CountingBeads, settings: Settings, tree: Path
) -> None:
    # Given a live run holding a lock, and a fresh ownerless lock directory
    beads.issues[ISSUE] = claimed()
    app.state.register(a_run(tree))
    table = LockTable(settings.home, tree)
    table.acquire(["src/a.py"], holder("run-1"), wait=0)
    directory = unowned_lock(table, "src/b.py", age=0)

    # When the janitor sweeps with force
    report = janitor.sweep(force=True)

    # Then nothing is locked or registered, and the live run's issue was handed back
    assert table.locks() == []
    assert not directory.exists()
    assert app.state.runs() == []
    assert len(report.freed_locks) == 2
    assert report.freed_locks[0].endswith(":src/a.py")
    assert report.freed_locks[1] == f"{table.root.name}:{directory.name} (no owner)"
    assert report.requeued == [ISSUE]


# -- claims with no run ----------------------------------------------------------------------


def test_an_old_bdp_claim_with_no_run_is_reset_and_requeued_once_over_two_sweeps(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path
) -> None:
    # Given t-1 claimed by a bdp worker a minute ago, and no run registered for it
    beads.issues[ISSUE] = claimed(assignee="bdp/elsewhere/w7")

    # When the janitor sweeps twice
    first, second = janitor.sweep(), janitor.sweep()

    # Then the first sweep reset and requeued it, with a comment; the second did nothing
    assert (first.reset, first.requeued) == ([ISSUE], [ISSUE])
    assert second.summary() == NOTHING
    assert beads.resets == [ISSUE]
    assert (beads.issues[ISSUE].status, beads.issues[ISSUE].assignee) == ("open", "")
    [comment] = beads.comments[ISSUE]
    assert "bdp/elsewhere/w7" in comment
    assert queued(app) == [("run_issue", (str(tree), ISSUE, 2))]


class RegistersWhileListed(CountingBeads):
    """bd's in-progress listing, during which the claim's slow worker registers its run."""

    def __init__(self, state: State, run: Run) -> None:
        super().__init__()
        self.state, self.run = state, run

    def in_progress(self) -> list[Issue]:
        found = super().in_progress()
        self.state.register(self.run)
        return found


def test_an_old_claim_whose_run_registers_during_the_sweep_is_not_reset(
    app: App, tree: Path
) -> None:
    # Given t-1 claimed a minute ago by a worker that registers its run only now, after the
    # sweep read the registry and while it lists bd's claims
    beads = RegistersWhileListed(app.state, a_run(tree))
    beads.issues[ISSUE] = claimed()

    # When the janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then the claim is the run's: not reset, not queued again
    assert beads.resets == []
    assert report.summary() == NOTHING
    assert app.huey.pending() == []


def test_an_orphan_claim_swept_by_two_janitors_at_once_is_reset_once(
    settings: Settings, app: App, beads: CountingBeads, tree: Path
) -> None:
    beads.issues[ISSUE] = claimed(assignee="bdp/elsewhere/w7")
    janitors = [janitor_of(app, beads), janitor_of(make_app(settings), beads)]

    reports = sweep_together(janitors)

    assert beads.resets == [ISSUE]
    assert listed(reports, "requeued") == [ISSUE]
    assert len(app.huey.pending()) == 1


def test_an_issue_claimed_by_a_human_is_left_alone(
    app: App, janitor: Janitor, beads: CountingBeads
) -> None:
    beads.issues[ISSUE] = claimed(assignee="alice")

    report = janitor.sweep()

    assert beads.issues[ISSUE].assignee == "alice"
    assert app.huey.pending() == []
    assert report.summary() == NOTHING


def test_a_fresh_bdp_claim_with_no_run_yet_is_left_alone(
    app: App, janitor: Janitor, beads: CountingBeads
) -> None:
    # a worker may be between its claim and registering its run
    beads.issues[ISSUE] = claimed(seconds_ago=0)

    report = janitor.sweep()

    assert beads.issues[ISSUE].status == "in_progress"
    assert app.huey.pending() == []
    assert report.summary() == NOTHING


# -- enqueue markers ---------------------------------------------------------------------------


def test_an_old_queued_marker_whose_task_is_not_in_the_queue_is_cleared(
    app: App, janitor: Janitor, tree: Path
) -> None:
    with stamped_long_ago():
        app.state.mark_queued(str(tree), ISSUE, "task-that-is-gone")

    report = janitor.sweep()

    assert app.state.marker(str(tree), ISSUE) is None
    assert report.cleared_markers == [f"{tree}:{ISSUE}"]


def test_an_old_queued_marker_whose_task_is_still_pending_is_kept(
    app: App, janitor: Janitor, tree: Path
) -> None:
    with stamped_long_ago():
        task_id = app.tasks.requeue(TaskArgs(str(tree), ISSUE, 1))

    report = janitor.sweep()

    marker = app.state.marker(str(tree), ISSUE)
    assert marker is not None
    assert marker.task_id == task_id
    assert report.cleared_markers == []


def test_a_fresh_queued_marker_is_kept_even_without_its_task(
    app: App, janitor: Janitor, tree: Path
) -> None:
    # the task may be on its way into the queue
    app.state.mark_queued(str(tree), ISSUE, "task-not-queued-yet")

    report = janitor.sweep()

    assert app.state.marker(str(tree), ISSUE) is not None
    assert report.cleared_markers == []


def test_an_old_running_marker_with_no_registered_run_is_cleared(
    app: App, janitor: Janitor, tree: Path
) -> None:
    with stamped_long_ago():
        app.state.mark_running(str(tree), ISSUE, "task-of-a-vanished-run")

    report = janitor.sweep()

    assert app.state.marker(str(tree), ISSUE) is None
    assert report.cleared_markers == [f"{tree}:{ISSUE}"]


def test_an_old_running_marker_of_a_registered_run_is_kept(
    app: App, janitor: Janitor, beads: CountingBeads, tree: Path
) -> None:
    beads.issues[ISSUE] = claimed()
    app.state.register(a_run(tree))
    with stamped_long_ago():
        app.state.mark_running(str(tree), ISSUE, "task-of-the-live-run")

    report = janitor.sweep()

    assert app.state.marker(str(tree), ISSUE) is not None
    assert report.cleared_markers == []


# -- failures, bookkeeping and leftovers -------------------------------------------------------


def test_a_failing_step_is_logged_and_the_rest_of_the_sweep_goes_on(
    app: App, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a repo whose bd fails, with a dead run in it
    broken = tmp_path / "a-broken"
    broken.mkdir()
    app.state.remember_repo(str(broken))
    app.state.register(dead_run(broken))
    # And a healthy repo with an orphan lock and an orphan claim
    healthy = tmp_path / "b-healthy"
    healthy.mkdir()
    app.state.remember_repo(str(healthy))
    table = LockTable(settings.home, healthy)
    table.acquire(["src/a.py"], holder("gone-run"), wait=0)
    healthy_beads = MemoryBeads([claimed("t-2", assignee="bdp/elsewhere/w7")])

    def beads_for(repo: Path) -> Beads:
        if repo == broken:
            raise BeadsError("bd could not show t-1: disk I/O error")
        return healthy_beads if repo == healthy else MemoryBeads()

    janitor = Janitor(settings, app.huey, app.state, app.tasks.requeue, beads=beads_for)
    caplog.set_level(logging.ERROR, logger="bdp.queue.janitor")

    # When the janitor sweeps
    report = janitor.sweep()

    # Then the healthy repo's lock was freed and its orphan claim reset
    assert table.locks() == []
    assert report.reset == ["t-2"]
    # And each failed step was logged, with its traceback
    failures = [r for r in caplog.records if r.name == "bdp.queue.janitor"]
    assert [r.getMessage() for r in failures] == [
        "janitor step _recover_run failed; going on",
        "janitor step _reset_orphan_claims failed; going on",
        "janitor step _close_finished_epics failed; going on",
    ]
    assert all(r.exc_info for r in failures)
    # And the sweep still kept its report
    assert app.state.get_meta("last_sweep") == report.to_json()


def test_the_sweep_keeps_its_report_as_the_last_sweep_shown_by_status(
    app: App, janitor: Janitor, beads: CountingBeads, settings: Settings, tree: Path
) -> None:
    beads.issues[ISSUE] = claimed()
    app.state.register(dead_run(tree))

    report = janitor.sweep()

    assert report.requeued == [ISSUE]
    assert app.state.get_meta("last_sweep") == report.to_json()
    assert collect_status(settings).last_sweep == report.to_json()


@pytest.fixture
def leftover() -> Iterator[subprocess.Popen[bytes]]:
    """A process carrying run-1's marker, like a Claude CLI that outlived its worker."""
    proc = subprocess.Popen(["sleep", "60"], env={**os.environ, RUN_ENV: "run-1"})
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_a_dead_runs_leftover_processes_on_this_host_are_killed(
    app: App, janitor: Janitor, tree: Path, leftover: subprocess.Popen[bytes]
) -> None:
    # Given a dead run of this host whose agent process still lives
    app.state.register(dead_run(tree))

    # When the janitor sweeps
    report = janitor.sweep()

    # Then that process ends, and the report says so
    wait_for(lambda: leftover.poll() is not None, timeout=10)
    assert report.killed == [leftover.pid]


def test_a_live_runs_processes_are_left_running(
    app: App, janitor: Janitor, tree: Path, leftover: subprocess.Popen[bytes]
) -> None:
    app.state.register(a_run(tree))

    report = janitor.sweep()

    assert report.killed == []
    assert leftover.poll() is None


# -- bdp clean -----------------------------------------------------------------------------------


def clean(home: Path, *args: str) -> str:
    """`bdp clean ARGS` in-process, with only BDP_HOME set among bdp's variables."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("BDP_")}
    env["BDP_HOME"] = str(home)
    result = CliRunner().invoke(main, ["clean", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_clean_logs_deletes_only_logs_older_than_the_given_age(settings: Settings) -> None:
    # Given logs of two days, twelve hours and a moment ago
    logs = settings.home / "logs"
    logs.mkdir(parents=True)
    ages = {"t-1-old.log": 2 * 86400.0, "t-2-today.log": 12 * 3600.0, "t-3-now.log": 0.0}
    for name, age in ages.items():
        (logs / name).write_text("bdp: a run\n")
        then = time.time() - age
        os.utime(logs / name, (then, then))

    # When logs older than a day are cleaned
    output = clean(settings.home, "--logs", "--older-than", "1d")

    # Then only the two-day-old log is gone, and the count is printed
    assert sorted(p.name for p in logs.iterdir()) == ["t-2-today.log", "t-3-now.log"]
    assert "deleted 1 log files older than 1d" in output


def test_clean_locks_force_prints_each_freed_lock(settings: Settings, tree: Path) -> None:
    table = LockTable(settings.home, tree)
    table.acquire(["src/a.py", "src/b.py"], holder("run-9"), wait=0)

    output = clean(settings.home, "--locks", "--force")

    assert table.locks() == []
    assert f"freed lock: {table.root.name}:src/a.py" in output
    assert f"freed lock: {table.root.name}:src/b.py" in output
    assert "freed 2 locks" in output
    assert "log files" not in output


# --- worktrees --------------------------------------------------------------------------------


def test_a_dead_runs_worktree_is_retired_and_its_work_kept_on_its_branch(
    settings: Settings, repo: Path
) -> None:
    # Given a run's worktree with uncommitted work, its run long gone from the registry
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    worktree = create_worktree(repo, settings.home, "bdp/t-9/deadrun1", tip(repo, "main"))
    (worktree.path / "half.py").write_text("half\n")
    old = time.time() - 2 * STALE
    os.utime(worktree.path, (old, old))

    # When the janitor sweeps
    report = janitor_of(app, MemoryBeads()).sweep()

    # Then the worktree is gone, its work committed on the branch that is kept
    assert report.removed_worktrees == ["deadrun1 (bdp/t-9/deadrun1)"]
    assert not worktree.path.exists()
    shown = subprocess.run(
        ["git", "show", "bdp/t-9/deadrun1:half.py"], cwd=repo, capture_output=True, text=True
    )
    assert shown.stdout == "half\n"
    assert (
        "deadrun1"
        not in subprocess.run(
            ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.mark.parametrize(
    ("run_id", "branch_run"),
    [
        ("run-1", "run-1"),  # the run's own worktree
        ("second-run", "firstrun-r1"),  # a continuation works in the first run's directory
    ],
)
def test_a_live_runs_worktree_is_left_alone(
    settings: Settings, repo: Path, run_id: str, branch_run: str
) -> None:
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    app.state.register(a_run(repo, run_id=run_id))  # alive
    branch = f"bdp/{ISSUE}/{branch_run}"
    worktree = create_worktree(repo, settings.home, branch, tip(repo, "main"))
    assert worktree.path.name == branch_run.split("-r")[0]
    old = time.time() - 2 * STALE
    os.utime(worktree.path, (old, old))

    report = janitor_of(app, MemoryBeads([claimed()])).sweep()

    assert report.removed_worktrees == []
    assert worktree.path.exists()


def test_a_kept_branch_nobody_came_back_for_is_deleted_after_the_keep_time(
    settings: Settings, repo: Path
) -> None:
    # Given two kept branches of unlanded work: one a month old, one from today
    app = make_app(replace(settings, keep_branches=14 * 86400))
    app.state.remember_repo(str(repo))
    worktrees_dir(settings.home, repo).mkdir(parents=True)  # bdp has made worktrees of it
    month_ago = str(int(time.time() - 30 * 86400))
    env = {**os.environ, "GIT_COMMITTER_DATE": f"{month_ago} +0000"}
    for branch, extra in (("bdp/t-8/oldrun", env), ("bdp/t-9/newrun", None)):
        subprocess.run(["git", "checkout", "-q", "-b", branch], cwd=repo, check=True)
        (repo / f"{branch.replace('/', '-')}.txt").write_text("work\n")
        subprocess.run(["git", "add", "."], cwd=repo, check=True)
        subprocess.run(["git", "commit", "-qm", "work"], cwd=repo, check=True, env=extra)
        subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)

    # When the janitor sweeps
    report = janitor_of(app, MemoryBeads()).sweep()

    # Then only the old one is gone, and the sweep says how much disk worktrees take
    assert report.deleted_branches == [f"{repo.name}:bdp/t-8/oldrun"]
    branches = subprocess.run(
        ["git", "branch", "--list", "bdp/*", "--format=%(refname:short)"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert branches == ["bdp/t-9/newrun"]


def test_the_sweep_reports_the_worktrees_and_the_disk_they_take(
    settings: Settings, repo: Path
) -> None:
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    run = a_run(repo)
    app.state.register(run)
    worktree = create_worktree(repo, settings.home, f"bdp/{ISSUE}/{run.run_id}", tip(repo, "main"))
    (worktree.path / "big.bin").write_bytes(b"x" * 100_000)

    report = janitor_of(app, MemoryBeads([claimed()])).sweep()

    assert report.worktrees == 1
    assert report.worktree_bytes >= 100_000


# --- a run that died between landing and bd close -----------------------------------------


def land_as(repo: Path, run_id: str) -> str:
    """A commit on main carrying run ``run_id``'s trailers, as the lander leaves it."""
    (repo / "landed.py").write_text("landed = 1\n")
    subprocess.run(["git", "add", "landed.py"], cwd=repo, check=True)
    message = f"{ISSUE}: the work\n\nBdp-Issue: {ISSUE}\nBdp-Run: {run_id}\n"
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_run_dead_after_landing_gets_its_issue_closed_and_no_redo(
    settings: Settings, repo: Path
) -> None:
    # Given a dead run whose commit is on main, and whose note says it was landing there
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    run = dead_run(repo)
    app.state.register(run)
    commit = land_as(repo, run.run_id)
    PendingClose(str(repo), ISSUE, run.run_id, "refs/heads/main").save(settings.home)
    beads = MemoryBeads([claimed()])

    # When the janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then the issue is closed for that commit, nothing is queued, and the run counts as DONE
    assert report.closed_landed == [ISSUE]
    assert beads.issues[ISSUE].status == "closed"
    assert commit[:12] in beads.close_reasons[ISSUE]
    assert queued(app) == []
    assert [(r.outcome, r.landed) for r in app.state.outcomes()] == [(Outcome.DONE, True)]
    assert pending_closes(settings.home) == []


def test_a_run_dead_before_its_commit_landed_is_reset_and_redone_as_ever(
    settings: Settings, repo: Path
) -> None:
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    run = dead_run(repo)
    app.state.register(run)
    PendingClose(str(repo), ISSUE, run.run_id, "refs/heads/main").save(settings.home)
    beads = MemoryBeads([claimed()])

    report = janitor_of(app, beads).sweep()

    assert report.closed_landed == []
    assert report.reset == [ISSUE]
    assert [name for name, _ in queued(app)] == ["run_issue"]
    assert pending_closes(settings.home) == []


# --- a task lost after a worker took it off the queue --------------------------------------


def test_a_task_lost_before_its_claim_is_queued_again_with_its_arguments(
    settings: Settings, repo: Path
) -> None:
    # Given an issue whose queued task a worker took and lost (it died before claiming)
    app = make_app(replace(settings, stale_after=0))
    args = TaskArgs(str(repo), ISSUE, 2, max_cost=2.5, isolation="shared")
    assert app.state.mark_queued(str(repo), ISSUE, "lost-task", args.to_task())
    beads = MemoryBeads([Issue(ISSUE, "Still open")])

    # When the janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then the issue is queued again, as it was queued before
    assert report.requeued == [ISSUE]
    [(name, payload)] = [(t.name, t.args[0]) for t in app.huey.pending()]
    assert name == "run_issue"
    assert TaskArgs.from_task(payload) == args
    marker = app.state.marker(str(repo), ISSUE)
    assert marker is not None
    assert marker.task_id == app.huey.pending()[0].id


def test_a_lost_task_whose_issue_was_claimed_or_closed_is_not_queued_again(
    settings: Settings, repo: Path
) -> None:
    app = make_app(replace(settings, stale_after=0))
    app.state.mark_queued(str(repo), ISSUE, "lost-task", TaskArgs(str(repo), ISSUE).to_task())
    beads = MemoryBeads([replace(Issue(ISSUE, "Done"), status="closed")])

    report = janitor_of(app, beads).sweep()

    assert report.requeued == []
    assert app.huey.pending() == []


def test_a_task_a_live_worker_is_still_claiming_is_not_queued_twice(
    settings: Settings, repo: Path
) -> None:
    # Given a task this host's live worker took off the queue and is claiming (bd is slow)
    app = make_app(replace(settings, stale_after=0))
    app.state.mark_queued(str(repo), ISSUE, "taken-task", TaskArgs(str(repo), ISSUE).to_task())
    me = state_module.taker(socket.gethostname(), os.getpid())
    app.state.mark_taken(str(repo), ISSUE, "taken-task", me)
    beads = MemoryBeads([Issue(ISSUE, "Still open")])

    # When the janitor sweeps, then it leaves the task to that worker
    assert janitor_of(app, beads).sweep().requeued == []
    assert app.huey.pending() == []

    # And once the worker gives the task back unclaimed, the next sweep queues it again
    app.state.release_taken(str(repo), ISSUE, "taken-task")
    assert janitor_of(app, beads).sweep().requeued == [ISSUE]


def test_a_task_whose_worker_died_before_its_claim_is_queued_again(
    settings: Settings, repo: Path
) -> None:
    app = make_app(replace(settings, stale_after=0))
    app.state.mark_queued(str(repo), ISSUE, "taken-task", TaskArgs(str(repo), ISSUE).to_task())
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = state_module.taker(socket.gethostname(), dead.pid)
    app.state.mark_taken(str(repo), ISSUE, "taken-task", gone)
    beads = MemoryBeads([Issue(ISSUE, "Still open")])

    assert janitor_of(app, beads).sweep().requeued == [ISSUE]


def test_a_take_never_rewrites_a_marker_that_names_another_task(
    settings: Settings, repo: Path
) -> None:
    app = make_app(settings)
    app.state.mark_queued(str(repo), ISSUE, "newer-task")
    app.state.mark_taken(str(repo), ISSUE, "older-task", "elsewhere:1")
    marker = app.state.marker(str(repo), ISSUE)
    assert marker is not None
    assert (marker.task_id, marker.taken_by) == ("newer-task", None)


@pytest.mark.parametrize("dies_at", ["its first marker write", "the enqueue"])
def test_a_sweep_killed_while_queueing_a_lost_task_leaves_it_for_the_next_sweep(
    settings: Settings, repo: Path, monkeypatch: pytest.MonkeyPatch, dies_at: str
) -> None:
    # Given a lost task, and a sweep that dies on its way to queueing it again
    app = make_app(replace(settings, stale_after=0))
    args = TaskArgs(str(repo), ISSUE, 1)
    assert app.state.mark_queued(str(repo), ISSUE, "lost-task", args.to_task())
    beads = MemoryBeads([Issue(ISSUE, "Still open")])

    def killed(*_args: object, **_kwargs: object) -> None:
        raise SystemExit("killed")  # not an Exception: no janitor step catches it

    with monkeypatch.context() as dying:
        if dies_at == "the enqueue":
            dying.setattr(app.huey, "enqueue", killed)
        else:
            for write in ("mark_queued", "remark_queued"):
                dying.setattr(state_module.State, write, killed)
        with pytest.raises(SystemExit):
            janitor_of(app, beads).sweep()
    assert app.huey.pending() == []

    # When the next sweep runs (once the dead sweep's claim on the requeue expired)
    monkeypatch.setattr("bdp.queue.janitor.ONCE_EXPIRES", 0.0)
    report = janitor_of(app, beads).sweep()

    # Then the issue is on the queue once, and its marker names that task
    assert report.requeued == [ISSUE]
    assert [named(task) for task in app.huey.pending()] == [(str(repo), ISSUE, 1)]
    marker = app.state.marker(str(repo), ISSUE)
    assert marker is not None
    assert marker.task_id == app.huey.pending()[0].id


def test_after_the_broker_lost_everything_the_janitor_still_finds_orphan_claims(
    settings: Settings, repo: Path
) -> None:
    # Given a broker that remembers nothing (a Redis restarted without persistence), and an
    # issue a bdp worker of this machine claimed in a repo bdp has worked on
    app = make_app(settings)
    known_repos.remember(settings.home, str(repo))
    beads = MemoryBeads([claimed()])

    report = janitor_of(app, beads).sweep()

    assert report.reset == [ISSUE]
    assert [name for name, _ in queued(app)] == ["run_issue"]


def test_a_reset_a_dead_sweep_had_claimed_is_done_by_a_later_sweep(
    app: App, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an orphan claim whose reset a sweep claimed, and then died before doing it
    issue = claimed()
    assert app.state.claim_once(f"reset:{tree}:{ISSUE}:{issue.updated_at}")
    monkeypatch.setattr("bdp.queue.janitor.ONCE_EXPIRES", 0.0)
    beads = MemoryBeads([issue])

    # When a later sweep runs (once the dead sweep's claim expired)
    report = janitor_of(app, beads).sweep()

    # Then the claim is reset and the issue queued again
    assert report.reset == [ISSUE]
    assert beads.issues[ISSUE].status == "open"


def test_on_this_host_a_live_worker_outranks_a_late_heartbeat_until_its_deadline(
    app: App, tree: Path
) -> None:
    janitor = janitor_of(app, MemoryBeads())
    late = a_run(tree, heartbeat=time.time() - LONG_AGO)  # our own pid: alive

    assert not janitor.is_dead(late)  # a slow broker or a loaded machine, not a dead run
    assert janitor.is_dead(replace(late, deadline=time.time() - LONG_AGO))  # long overdue
    assert janitor.is_dead(replace(late, pid=DEAD_PID))
    assert janitor.is_dead(replace(late, host="elsewhere"))  # no pid to look at there


# -- epics ---------------------------------------------------------------------------------------


class CountsEpicQueries(CountingBeads):
    """CountingBeads that counts how often the sweep asks for the open epics."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(issues)
        self.epic_queries = 0

    def epics(self, epic_ids: Sequence[str] = ()) -> list[EpicProgress]:
        self.epic_queries += 1
        return super().epics(epic_ids)


def an_epic(issue_id: str, parent: str = "") -> Issue:
    return Issue(issue_id, f"epic {issue_id}", issue_type="epic", parent=parent)


def test_the_sweep_closes_the_epics_whose_children_are_all_closed_and_only_those(
    app: App,
) -> None:
    # Given a finished epic (its child closed by hand), a nested pair, and an unfinished epic
    beads = CountsEpicQueries(
        [
            an_epic("e"),
            Issue("e.1", "done by hand", status="closed", parent="e"),
            an_epic("o"),
            an_epic("o.1", parent="o"),
            Issue("o.1.1", "deep", status="closed", parent="o.1"),
            an_epic("u"),
            Issue("u.1", "still open", parent="u"),
        ]
    )

    # When the janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then the finished ones are closed with their children listed, in one query of epics
    assert report.closed_epics == ["e", "o.1", "o"]
    assert [beads.issues[i].status for i in ("e", "o", "o.1", "u")] == [
        "closed",
        "closed",
        "closed",
        "open",
    ]
    assert beads.close_reasons["e"] == "all 1 child closed: e.1"
    assert beads.epic_queries == 1
    assert "closed epic, all its children closed" in dict(report.listed())
    assert janitor_of(app, beads).sweep().closed_epics == []  # closed once


def test_the_sweep_leaves_epics_of_a_repo_that_is_not_here_alone(app: App, tmp_path: Path) -> None:
    app.state.remember_repo(str(tmp_path / "another-machines-clone"))
    beads = CountsEpicQueries([an_epic("e"), Issue("e.1", "done", status="closed", parent="e")])

    janitor_of(app, beads).sweep()

    assert beads.epic_queries == 1  # the tree fixture's repo only


def review_epics_in(tree: Path, rounds: int = 2) -> None:
    """Make ``tree`` a git repo whose committed .bdp.toml turns epic reviews on."""
    for args in (("init", "-q", "-b", "main"), ("config", "user.email", "t@example.invalid")):
        subprocess.run(["git", *args], cwd=tree, check=True)
    (tree / ".bdp.toml").write_text(f"epic_review = true\nepic_review_rounds = {rounds}\n")
    subprocess.run(["git", "add", ".bdp.toml"], cwd=tree, check=True)
    subprocess.run(["git", "-c", "user.name=T", "commit", "-qm", "c"], cwd=tree, check=True)


def test_with_epic_review_the_sweep_queues_a_finished_epics_review_once_instead_of_closing(
    app: App, tree: Path
) -> None:
    # Given a repo that reviews epics, and an epic whose child a person closed
    review_epics_in(tree)
    beads = CountsEpicQueries([an_epic("e"), Issue("e.1", "by hand", status="closed", parent="e")])

    # When the janitor sweeps twice
    first = janitor_of(app, beads).sweep()
    second = janitor_of(app, beads).sweep()

    # Then the epic is still open, and one review task for it was queued
    assert (first.reviewed_epics, first.closed_epics, second.reviewed_epics) == (["e"], [], [])
    assert beads.issues["e"].status == "open"
    assert queued(app) == [("run_issue", (str(tree), "e", 1))]
    assert "queued the review of a finished epic" in dict(first.listed())


def test_the_sweep_queues_no_review_of_an_epic_whose_rounds_are_used(app: App, tree: Path) -> None:
    review_epics_in(tree, rounds=0)
    beads = CountsEpicQueries([an_epic("e"), Issue("e.1", "done", status="closed", parent="e")])
    beads.comment("e", f"bdp: BLOCKED on attempt 1: {CHANGES_ASKED} after 0 rounds", "bdp")

    report = janitor_of(app, beads).sweep()

    assert (report.reviewed_epics, report.closed_epics, queued(app)) == ([], [], [])


# -- repos by name (BDP_REPOS) -----------------------------------------------------------------


def test_a_dead_run_of_a_named_repo_is_recovered_in_this_machines_clone(
    settings: Settings, beads: CountingBeads, tree: Path
) -> None:
    # Given a queue naming the repo "app", which this machine keeps at ``tree``
    app = make_app(replace(settings, repos=(("app", str(tree)),)))
    beads.issues[ISSUE] = claimed()
    app.state.register(dead_run(tree, repo="app"))
    app.state.mark_running("app", ISSUE, "task-of-the-dead-run")

    # When the janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then it reset the issue in its clone, and queued attempt 2 under the repo's name
    assert (beads.issues[ISSUE].status, report.reset) == ("open", [ISSUE])
    assert [named(task) for task in app.huey.pending()] == [("app", ISSUE, 2)]


def test_a_janitor_without_a_clone_of_a_named_repo_leaves_its_runs_and_tasks_to_one_with_it(
    settings: Settings, beads: CountingBeads, tree: Path
) -> None:
    # Given a dead run and a lost task of "app", on a machine whose BDP_REPOS maps no "app"
    app = make_app(replace(settings, repos=(("lib", str(tree)),)))
    beads.issues[ISSUE] = claimed()
    beads.issues["t-2"] = Issue("t-2", "Lost task")
    app.state.register(dead_run(tree, repo="app"))
    with stamped_long_ago():
        app.state.mark_queued("app", "t-2", "lost-task", TaskArgs("app", "t-2").to_task())

    # When its janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then nothing was reset, requeued or dropped: a machine with a clone does that
    assert [run.repo for run in app.state.runs()] == ["app"]
    assert beads.issues[ISSUE].status == "in_progress"
    assert app.huey.pending() == []
    marker = app.state.marker("app", "t-2")
    assert marker is not None
    assert marker.task_id == "lost-task"
    assert (report.reset, report.requeued, report.cleared_markers) == ([], [], [])


def test_an_orphan_claim_of_an_issue_another_machine_landed_is_reset_not_requeued(
    settings: Settings, beads: CountingBeads, tree: Path, redis_url: str
) -> None:
    # Given bdp's claim on t-1 that no run holds, in a bd that has not synced the close of
    # another machine, which landed t-1 (its tombstone is in the shared Redis)
    app = make_app(replace(settings, redis_url=redis_url))
    app.state.remember_repo(str(tree))
    beads.issues[ISSUE] = claimed()
    lease = app.claims.take(str(tree), ISSUE, "beta:7/task-b")
    assert isinstance(lease, Lease)
    app.claims.bury(lease, "ab" * 20, "beta")

    # When the janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then it gave back the stale claim, and queued nothing: the work is done
    assert (beads.issues[ISSUE].status, report.reset) == ("open", [ISSUE])
    assert report.requeued == []
    assert app.huey.pending() == []


# -- shared locks (machines on one Redis) -------------------------------------------------


def shared_table(app: App, tree: Path, lease: tuple[str, str] = ("", "")) -> SharedLockTable:
    """The shared lock table of the repo at ``tree`` (named by its path, as tasks name it)."""
    claims = app.claims
    assert isinstance(claims, RedisClaims)
    return SharedLockTable(claims.client, claims.prefix, str(tree), tree, lease)


def test_a_dead_run_of_another_machine_has_its_shared_locks_freed_here(
    settings: Settings, beads: CountingBeads, tree: Path, redis_url: str
) -> None:
    # Given another machine's run of t-1 that died holding a shared lock, its lease still live
    app = make_app(replace(settings, redis_url=redis_url))
    app.state.remember_repo(str(tree))
    beads.issues[ISSUE] = claimed(assignee=f"bdp/beta/{WORKER}")
    app.state.register(dead_run(tree, host="beta"))
    lease = app.claims.take(str(tree), ISSUE, "beta:7/task-b")
    assert isinstance(lease, Lease)
    assert isinstance(app.claims, RedisClaims)
    backing = (app.claims.lease_key(lease), lease.value)
    shared_table(app, tree, backing).acquire(["src/a.py"], holder("run-1"), wait=0)

    # When this machine's janitor sweeps
    report = janitor_of(app, beads).sweep()

    # Then the dead run's shared lock is gone, from every machine's view
    assert shared_table(app, tree).locks() == []
    assert report.freed_locks == [f"{tree}:src/a.py"]


def test_a_shared_lock_whose_lease_lapsed_is_freed_though_its_run_looks_alive(
    settings: Settings, tree: Path, redis_url: str
) -> None:
    # Given a live-looking run whose lease was taken by another machine's run
    app = make_app(replace(settings, redis_url=redis_url))
    app.state.register(a_run(tree, host="beta"))
    assert isinstance(app.claims, RedisClaims)
    lease = app.claims.take(str(tree), ISSUE, "beta:7/task-b")
    assert isinstance(lease, Lease)
    table = shared_table(app, tree, (app.claims.lease_key(lease), lease.value))
    table.acquire(["src/a.py"], holder("run-1"), wait=0)
    app.claims.release(lease)
    assert isinstance(app.claims.take(str(tree), ISSUE, "gamma:3/task-c"), Lease)

    report = janitor_of(app, CountingBeads()).sweep()

    assert table.locks() == []
    assert report.freed_locks == [f"{tree}:src/a.py (lease lapsed)"]


class RegistersOnList(MemoryBeads):
    """bd, asked for claims mid-sweep while a new run registers and makes its worktree."""

    def __init__(self, register: Callable[[], None]) -> None:
        super().__init__()
        self._register: Callable[[], None] | None = register

    def in_progress(self) -> list[Issue]:
        register, self._register = self._register, None
        if register is not None:
            register()
        return super().in_progress()


def test_the_worktree_of_a_run_that_registered_during_the_sweep_is_left_alone(
    settings: Settings, repo: Path
) -> None:
    # Given a run that registers, and makes its worktree, after the sweep read the live runs
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    made: list[Path] = []

    def newcomer() -> None:
        app.state.register(a_run(repo, run_id="newrun1"))
        worktree = create_worktree(repo, settings.home, f"bdp/{ISSUE}/newrun1", tip(repo, "main"))
        old = time.time() - 2 * STALE  # as old as a slow setup can make it look
        os.utime(worktree.path, (old, old))
        made.append(worktree.path)

    # When the sweep goes on to tidy the worktrees
    report = janitor_of(app, RegistersOnList(newcomer)).sweep()

    # Then the newcomer's worktree is its own still
    assert report.removed_worktrees == []
    assert [path.exists() for path in made] == [True]


def test_a_live_runs_worktree_mid_rebase_is_left_alone(settings: Settings, repo: Path) -> None:
    # Given a live run whose worktree is in the middle of a rebase (a lander rebasing its
    # commit onto a newer tip: HEAD is detached meanwhile), stopped at a conflict
    app = make_app(settings)
    app.state.remember_repo(str(repo))
    app.state.register(a_run(repo, run_id="run-1"))
    worktree = create_worktree(repo, settings.home, f"bdp/{ISSUE}/run-1", tip(repo, "main"))
    for where, text in ((worktree.path, "mine\n"), (repo, "theirs\n")):
        (where / "clash.txt").write_text(text)
        for argv in (["add", "clash.txt"], ["commit", "-q", "-m", text.strip()]):
            subprocess.run(["git", *argv], cwd=where, check=True, capture_output=True)
    rebase = subprocess.run(["git", "rebase", "main"], cwd=worktree.path, capture_output=True)
    assert rebase.returncode != 0  # stopped at the conflict, HEAD detached
    old = time.time() - 2 * STALE
    os.utime(worktree.path, (old, old))

    report = janitor_of(app, MemoryBeads([claimed()])).sweep()

    assert report.removed_worktrees == []
    assert worktree.path.exists()
