"""The janitor's care of this machine's file locks: free the locks of runs that died, and
the records no owner stands behind any more: lock directories a crash left without an owner
record, shared locks whose run's lease lapsed."""

from __future__ import annotations

from collections.abc import Callable

from bdp.queue.sweep_report import SweepReport
from bdp.repo.lock_table import Locks
from bdp.repo.procs import end_run_processes


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
