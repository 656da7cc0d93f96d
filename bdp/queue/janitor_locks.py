"""The janitor's care of this machine's file locks: free the locks of runs that died, and
the lock directories a crash left without an owner record."""

from __future__ import annotations

from collections.abc import Callable

from bdp.queue.sweep_report import SweepReport
from bdp.repo.locks import LockTable
from bdp.repo.procs import end_run_processes


def free_dead_locks(
    table: LockTable, dead: Callable[[str], bool], host: str, stale: float, report: SweepReport
) -> None:
    """Free every lock of ``table`` whose run is ``dead`` (ending that run's leftover
    processes when it ran on ``host``), and owner-less lock directories ``stale`` s old. The
    table is read once, and each run judged once however many locks it holds."""
    scan, judged = table.scan(), {}
    for lock in scan.locks:
        run_id = lock.holder.run_id
        if run_id not in judged:
            judged[run_id] = dead(run_id)
            if judged[run_id] and lock.holder.host == host:
                report.killed += end_run_processes(run_id)
        if judged[run_id]:
            table.force_release(lock.path)
            report.freed_locks.append(f"{table.root.name}:{lock.path}")
    for directory in scan.unowned(older_than=stale):
        table.force_remove(directory)
        report.freed_locks.append(f"{table.root.name}:{directory.name} (no owner)")
