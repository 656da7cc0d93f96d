"""The janitor: puts right what dead workers leave behind, so nothing is lost or stuck.

Every consumer runs it (a Huey periodic task) and `bdp clean` runs it on demand, so it must
be correct when several sweeps overlap: each recovery starts with an atomic step that only
one sweep can win (popping the run record, a rename of a lock directory, a once-only key).
A sweep never stops because one item failed; the failure is logged and the next item goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from huey import Huey

from bdp.broker.claims import claims_for
from bdp.broker.keys import JANITOR_ACTIONS, LAST_SWEEP_KEY
from bdp.broker.state import Marker, State
from bdp.config import Settings
from bdp.errors import RepoError, UnknownIssue
from bdp.host import host_name
from bdp.models import Issue, Outcome, Run, RunRecord, TaskArgs
from bdp.ops.notify import Notifier, notify_outcome
from bdp.queue.janitor_locks import free_dead_locks, lock_tables, tables_of
from bdp.queue.janitor_trees import delete_expired_branches, remove_worktrees
from bdp.queue.sweep_report import SweepReport as SweepReport  # where tests and bdp clean look
from bdp.repo import known_repos
from bdp.repo.beads import BdCli, Beads
from bdp.repo.epics import close_open_epics
from bdp.repo.lock_table import Locks
from bdp.repo.pending import PendingClose, pending_closes
from bdp.repo.procs import end_run_processes, pid_alive
from bdp.repo.repo_config import load_repo_config
from bdp.repo.worktree import disk_used
from bdp.run.deps import Requeue
from bdp.run.epic_task import epics_to_review, queue_review

log = logging.getLogger(__name__)

#: Seconds after which a sweep's claim on a reset counts as abandoned (the sweeping
#: consumer died between the claim and the reset), so that a later sweep does it instead.
ONCE_EXPIRES = 60.0
_BDP_ACTOR = "bdp/"


class Janitor:
    """One sweep over the registry, the lock folders, bd and the enqueue markers."""

    def __init__(
        self,
        settings: Settings,
        huey: Huey,
        state: State,
        requeue: Requeue,
        beads: Callable[[Path], Beads] | None = None,
    ) -> None:
        self.settings = settings
        self.huey = huey
        self.state = state
        self.requeue = requeue
        self.beads = beads or (lambda repo: BdCli(repo, settings.bd))
        self.host = host_name()
        self.notifier = Notifier.from_settings(settings)
        self.claims = claims_for(huey.storage, huey.name, settings.stale_after)

    def sweep(self, force: bool = False) -> SweepReport:
        """Close what landed, recover dead runs, free orphan locks, reset orphan claims,
        clear stale markers, retire worktrees."""
        report = SweepReport()
        self._recover(force, report)
        live = {run.run_id: run for run in self.state.runs()}
        for table in lock_tables(self.settings.home, self.claims):
            self._guarded(self._free_locks, table, live, force, report)
        notes = pending_closes(self.settings.home)  # their repos are paths here
        closing = {(self.settings.repo_key(Path(p.repo)), p.issue_id) for p in notes}
        for repo in self._repos():
            self._guarded(self._reset_orphan_claims, repo, live, closing, report)
            self._guarded(self._close_finished_epics, repo, report)
        self._guarded(self._clear_markers, report)
        for repo in self.state.repos():
            self._guarded(self._tidy_trees, repo, force, report)
        report.worktrees, report.worktree_bytes = disk_used(self.settings.home)
        for run_id in self.state.orphan_beats():
            self.state.drop_beat(run_id)
        self._keep(report)
        return report

    def _recover(self, force: bool, report: SweepReport) -> None:
        """Runs that stopped: first close what they landed, then reset and requeue the rest."""
        notes = pending_closes(self.settings.home)  # read first: a note's run registered before
        runs = self.state.runs()
        dead = [run for run in runs if force or self.is_dead(run)]
        alive = {run.run_id for run in runs} - {run.run_id for run in dead}
        for pending in notes:
            if pending.run_id not in alive:
                self._guarded(self._close_landed, pending, report)
        for run in dead:
            self._guarded(self._recover_run, run, report)

    def _repos(self) -> list[str]:
        """The broker's list of repos, and this machine's own (which outlives a lost Redis),
        each as the queue names it (`Settings.repo_key`)."""
        here = (self.settings.repo_key(Path(p)) for p in known_repos.known(self.settings.home))
        return sorted({*self.state.repos(), *here})

    def _clone_here(self, repo: str) -> Path | None:
        """This machine's clone of the repo the queue names ``repo``, when it is a folder
        here (None: another machine's, which that machine's janitor looks after)."""
        clone = self.settings.clone_of(repo)
        return clone if clone is not None and clone.is_dir() else None

    def _keep(self, report: SweepReport) -> None:
        """Keep the report for `bdp status`, count its actions for `bdp metrics`, log it."""
        self.state.put_meta(LAST_SWEEP_KEY, report.to_json())
        for action in JANITOR_ACTIONS:
            if getattr(report, action):
                self.state.count(f"janitor:{action}", len(getattr(report, action)))
        if report.summary() != SweepReport().summary():
            log.info("janitor: %s", report.summary())

    def is_dead(self, run: Run) -> bool:
        """Elsewhere: no heartbeat for `stale_after` seconds. On this host: its process is
        gone; a live process outranks a late heartbeat (a slow broker, a loaded machine)
        until the run is past its deadline and wrap-up."""
        late = time.time() - run.heartbeat > self.settings.stale_after
        if run.host != self.host:
            return late
        if not pid_alive(run.pid):
            return True
        grace = self.settings.wrapup + self.settings.stale_after
        return late and time.time() > run.deadline + grace

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:
            log.exception("janitor step %s failed; going on", step.__name__)

    # -- landed, not closed ---------------------------------------------------------------
    def _close_landed(self, pending: PendingClose, report: SweepReport) -> None:
        """A run that stopped between landing and `bd close`: close its issue, never redo it.

        When its commit never reached the target, the note is dropped and the usual recovery
        resets the issue. While bd keeps failing, the note stays for the next sweep.
        """
        commit = pending.landed_commit()
        if commit is None:
            pending.drop(self.settings.home)
            return
        beads = self.beads(Path(pending.repo))
        issue = beads.show(pending.issue_id)
        if issue.status != "closed":
            reason = f"landed as {commit[:12]} by run {pending.run_id}; closed by bdp's janitor"
            beads.close(pending.issue_id, reason, issue.assignee or _BDP_ACTOR)
            report.closed_landed.append(pending.issue_id)
        self._unmark_running(self.settings.repo_key(Path(pending.repo)), pending.issue_id)
        pending.drop(self.settings.home)

    # -- dead runs ------------------------------------------------------------------------
    def _recover_run(self, run: Run, report: SweepReport) -> None:
        clone = self.settings.clone_of(run.repo)
        if clone is None:
            return  # no clone here to reset it in: a host that has one recovers it
        if run.host == self.host:
            report.killed += end_run_processes(run.run_id)
        if self.state.unregister(run.run_id) is None:
            return  # another sweep got there first
        for table in tables_of(run, clone, self.host, self.settings.home, self.claims):
            report.freed_locks += [f"{table.name}:{p}" for p in table.release_all(run.run_id)]
        actor = f"{_BDP_ACTOR}{run.host}/{run.worker}"
        note = (
            f"bdp janitor: run {run.run_id} ({run.host}/{run.worker}) stopped responding "
            f"during attempt {run.attempt}"
        )
        if run.issue_id in report.closed_landed:  # it died after landing: done, not redone
            note += "; its work had landed, so the janitor closed the issue"
            record = replace(RunRecord.ended(run, Outcome.DONE, note), landed=True)
        else:
            args = TaskArgs(run.repo, run.issue_id, run.attempt, max_cost=run.max_cost)
            self._reset_and_requeue(args, actor, note, report, run.host != self.host)
            record = RunRecord.ended(run, Outcome.ABANDONED, note)
        self.state.record(record)
        notify_outcome(self.notifier, record)

    def _reset_and_requeue(
        self, args: TaskArgs, actor: str | None, note: str, report: SweepReport, away: bool = False
    ) -> None:
        """Reset a claim nobody works on, then queue its next attempt (or give up on it).
        ``away``: a dead run of another machine, claimed in that machine's bd, maybe not ours."""
        repo, issue_id, attempt = args.repo, args.issue_id, args.attempt
        clone = self.settings.clone_of(repo)
        if clone is None:
            return  # another machine's repo: its janitor resets it
        beads = self.beads(clone)
        issue = beads.show(issue_id)
        if away and issue.status == "open" and not issue.assignee:
            pass  # claimed in the dead machine's own bd: nothing to reset in this one
        elif issue.status != "in_progress" or (actor and issue.assignee != actor):
            self._unmark_running(repo, issue_id)
            return  # finished, or claimed by someone else since: not ours to reset
        elif self._reset_claim(beads, issue, repo):
            report.reset.append(issue_id)
        else:
            return  # an overlapping sweep is resetting this very claim
        if self.claims.landed(repo, [issue_id]):  # on another machine: this bd lags behind
            self._unmark_running(repo, issue_id)
            return
        if attempt >= self.settings.max_attempts:
            why = f"{note}; gave up after {attempt} attempts: needs a human"
            beads.comment(issue_id, why, issue.assignee or "bdp")
            self._unmark(repo, issue_id)
            report.needs_human.append(issue_id)
            return
        beads.comment(issue_id, f"{note}; queued again as attempt {attempt + 1}", "bdp")
        self.requeue(replace(args, attempt=attempt + 1))
        report.requeued.append(issue_id)

    def _reset_claim(self, beads: Beads, issue: Issue, repo: str) -> bool:
        """Reset ``issue``'s claim, once however many sweeps try; False when another does."""
        once = f"reset:{repo}:{issue.id}:{issue.updated_at}"
        if not self.state.claim_once(once, expires=ONCE_EXPIRES):
            return False
        try:
            beads.reset(issue.id, issue.assignee or _BDP_ACTOR)
        except Exception:
            self.state.release_once(once)  # still claimed in bd: a later sweep tries again
            raise
        return True

    # -- locks ----------------------------------------------------------------------------
    def _free_locks(
        self, table: Locks, live: dict[str, Run], force: bool, report: SweepReport
    ) -> None:
        """Free dead runs' locks and the lock directories a crash left without an owner."""
        stale = 0 if force else self.settings.stale_after

        def dead(run_id: str) -> bool:
            return force or not self._holder_alive(run_id, live)

        free_dead_locks(table, dead, self.host, stale, report)
        table.clear_waits(set(live))

    def _holder_alive(self, run_id: str, live: dict[str, Run]) -> bool:
        run = live.get(run_id)
        if run is None:  # not registered when the sweep began, but a run may have started since
            return self.state.has_run(run_id)
        return not self.is_dead(run)

    # -- claims with no run -----------------------------------------------------------------
    def _reset_orphan_claims(
        self,
        repo: str,
        live: dict[str, Run],
        closing: set[tuple[str, str]],
        report: SweepReport,
    ) -> None:
        """Reset issues claimed by bdp that no live run holds (nor a landing still closing):
        claims `stale_after` old, and the registry read again after bd, so a run registered
        since keeps its claim (one registered that late asks bd, `bdp.run.job.start_job`)."""
        clone = self._clone_here(repo)
        if clone is None:
            return  # another machine's clone
        running = {run.issue_id for run in live.values() if run.repo == repo}
        running |= {issue_id for noted_repo, issue_id in closing if noted_repo == repo}
        orphans = [
            issue
            for issue in self.beads(clone).in_progress()
            if issue.assignee.startswith(_BDP_ACTOR)
            and issue.id not in running
            and _age(issue.updated_at) >= self.settings.stale_after
        ]
        if orphans:
            running |= {run.issue_id for run in self.state.runs() if run.repo == repo}
        for issue in (issue for issue in orphans if issue.id not in running):
            attempt = self.state.last_attempt(repo, issue.id)
            note = f"bdp janitor: {issue.assignee} claimed this issue but no bdp run holds it"
            self._reset_and_requeue(TaskArgs(repo, issue.id, attempt), None, note, report)

    def _close_finished_epics(self, repo: str, report: SweepReport) -> None:
        """Close the open epics whose children are all closed (or queue their reviews): the
        backstop of what follows a run's close (a close by hand, a worker that died then)."""
        clone = self._clone_here(repo)
        if clone is None:
            return  # another machine's clone
        beads, config = self.beads(clone), load_repo_config(clone)
        if not config.epic_review:
            report.closed_epics += close_open_epics(beads, _BDP_ACTOR)
            return
        for epic in epics_to_review(beads, config.epic_review_rounds):
            if queue_review(self.state, self.requeue, TaskArgs(repo, epic.issue.id)):
                report.reviewed_epics.append(epic.issue.id)

    # -- worktrees ------------------------------------------------------------------------
    def _tidy_trees(self, repo: str, force: bool, report: SweepReport) -> None:
        """Retire idle worktrees and expired branches of this machine's clone of ``repo``."""
        clone = self._clone_here(repo)
        if clone is None:
            return  # another machine's clone
        busy = partial(self._issues_running, repo)  # asked once the worktrees are listed
        age = 0.0 if force else self.settings.stale_after
        self._guarded(remove_worktrees, self.settings.home, clone, busy, age, report)
        keep = self.settings.keep_branches
        self._guarded(delete_expired_branches, self.settings.home, clone, busy(), keep, report)

    def _issues_running(self, repo: str) -> set[str]:
        return {run.issue_id for run in self.state.runs() if run.repo == repo}

    # -- markers --------------------------------------------------------------------------
    def _clear_markers(self, report: SweepReport) -> None:
        """Drop old markers whose task is no longer queued, or whose run no longer runs."""
        cutoff = time.time() - self.settings.stale_after
        old = [m for m in self.state.markers() if m.since < cutoff]
        if not old:
            return
        queued = {task.id for task in self.huey.pending()} | {t.id for t in self.huey.scheduled()}
        running = {(run.repo, run.issue_id) for run in self.state.runs()}
        for marker in old:
            if marker.state == "queued" and marker.task_id not in queued:
                if not self._taker_alive(marker):
                    self._guarded(self._queue_lost_task, marker, report)
            elif marker.state != "queued" and (marker.repo, marker.issue_id) not in running:
                self._drop_marker(marker, report)

    def _taker_alive(self, marker: Marker) -> bool:
        """A worker took the task and may be claiming it still: its process lives (here), or
        it took it less than `stale_after` ago (elsewhere). Its claim decides, not the sweep."""
        if marker.taken_by is None or marker.taken_at is None:
            return False
        host, _, pid = marker.taken_by.rpartition(":")
        if host == self.host and pid.isdigit():
            return pid_alive(int(pid))
        return time.time() - marker.taken_at < self.settings.stale_after

    def _queue_lost_task(self, marker: Marker, report: SweepReport) -> None:
        """A task a worker took off the queue and lost (it died before its claim, or the
        claim failed): when bd still has the issue open for anyone, queue it again.

        The marker is never dropped first: the requeue points it at the new task and only
        then queues that, so a sweep killed at any step leaves a marker the next one finds.
        """
        clone = self.settings.clone_of(marker.repo)
        if clone is None:
            return  # another machine's repo: its janitor queues it again
        try:
            issue = self.beads(clone).show(marker.issue_id)
        except (UnknownIssue, RepoError):  # the issue, or its repo, is gone: nothing to queue
            self._drop_marker(marker, report)
            return
        if issue.status != "open" or issue.assignee:
            # finished, or claimed after all (a run is starting, or the orphan-claim rule
            # resets and queues it): the marker of the lost task is all that is left of it
            self._drop_marker(marker, report)
            return
        if not self.state.claim_once(f"requeue:{marker.task_id}", expires=ONCE_EXPIRES):
            return  # an overlapping sweep is queueing it
        if marker.payload is not None:
            args = TaskArgs.from_task(marker.payload)
        else:
            args = TaskArgs(
                marker.repo, marker.issue_id, self.state.last_attempt(marker.repo, issue.id)
            )
        self.requeue(args)
        report.requeued.append(marker.issue_id)

    def _drop_marker(self, marker: Marker, report: SweepReport) -> None:
        """Drop ``marker`` if it is still as the sweep read it (no run or requeue changed it)."""
        if self._unmark(marker.repo, marker.issue_id, marker.task_id, marker.state):
            report.cleared_markers.append(f"{marker.repo}:{marker.issue_id}")

    def _unmark_running(self, repo: str, issue_id: str) -> None:
        """Drop a finished run's marker; a queued one is a requeue's (maybe another sweep's)."""
        marker = self.state.marker(repo, issue_id)
        if marker is not None and marker.state == "running":
            self.state.unmark(repo, issue_id)

    def _unmark(
        self, repo: str, issue_id: str, task_id: str | None = None, state: str | None = None
    ) -> bool:
        """Drop the issue's marker if it still names ``task_id`` (and is in ``state``)."""
        marker = self.state.marker(repo, issue_id)
        if marker is None or (task_id is not None and marker.task_id != task_id):
            return False
        if state is not None and marker.state != state:
            return False
        self.state.unmark(repo, issue_id)
        return True


def _age(stamp: str) -> float:
    """Seconds since an RFC 3339 time from bd; infinite when missing or unreadable."""
    try:
        return time.time() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")
