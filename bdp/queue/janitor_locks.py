"""The janitor's care of this machine's file locks: free the locks of runs that died, and
the records no owner stands behind any more: lock directories a crash left without an owner
record, shared locks whose run's lease lapsed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bdp.broker.claims import Claims, RedisClaims
from bdp.models import Run
from bdp.queue.sweep_report import SweepReport
from bdp.repo.lock_table import Locks
from bdp.repo.locks import LockTable
from bdp.repo.procs import end_run_processes
from bdp.repo.shared_locks import SharedLockTable


def lock_tables(home: Path, claims: Claims) -> list[Locks]:
    """This machine's file lock tables, and the queue's shared ones when on Redis."""
    tables: list[Locks] = [*LockTable.all_in(home)]
    if isinstance(claims, RedisClaims):
        tables += SharedLockTable.all_in(claims.client, claims.prefix)
    return tables


def tables_of(run: Run, clone: Path, host: str, home: Path, claims: Claims) -> list[Locks]:
    """Where a dead run's locks are: the shared table (any machine may free them), and its
    machine's file table if that is ``host``, this one."""
    tables: list[Locks] = []
    if isinstance(claims, RedisClaims):
        tables.append(SharedLockTable(claims.client, claims.prefix, run.repo))
    if run.host == host:
        tables.append(LockTable(home, clone))
    return tables


def free_dead_locks(
    table: Locks, dead: Callable[[str], bool], host: str, stale: float, report: SweepReport
) -> None:
    """Free every lock of ``table`` whose run is ``dead`` (ending that run's leftover
    processes when it ran on ``host``), and the records no owner stands behind (`free_orphans`:
    owner-less directories ``stale`` s old, lapsed leases). The table is read once, and each
    run judged once however many locks it holds."""
    scan, judged = table.scan(), {}
    for lock in scan.locks:
        run_id = lock.holder.run_id
        if run_id not in judged:
            judged[run_id] = dead(run_id)
            if judged[run_id] and lock.holder.host == host:
                report.killed += end_run_processes(run_id)
        if judged[run_id]:
            table.force_release(lock.path)
            report.freed_locks.append(f"{table.name}:{lock.path}")
    report.freed_locks += [f"{table.name}:{name}" for name in table.free_orphans(scan, stale)]
