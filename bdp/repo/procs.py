"""Find and end the processes of one run, even ones the SDK lost track of.

Every Claude CLI bdp starts carries ``BDP_RUN_ID=<run id>`` in its environment, and so do
the commands it spawns; scanning ``/proc`` for that marker finds the whole tree without
relying on parent links (a crashed worker leaves orphans re-parented to init).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

RUN_ENV = "BDP_RUN_ID"
_PROC = Path("/proc")


def pids_of_run(run_id: str) -> list[int]:
    """Live processes whose environment carries this run's marker (Linux; [] elsewhere)."""
    needle = f"{RUN_ENV}={run_id}".encode()
    return pids_where(lambda environ: needle in environ)


def pids_where(match: Callable[[list[bytes]], bool]) -> list[int]:
    """Processes other than this one whose environment entries (``NAME=value``) match."""
    found = []
    for entry in _PROC.glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if match(environ.split(b"\0")) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def end_run_processes(run_id: str, grace: float = 2.0) -> list[int]:
    """SIGTERM every process of the run, SIGKILL what is left after ``grace`` seconds.

    Returns the processes found (ended now, or on their way out).
    """
    found = pids_of_run(run_id)
    _signal_all(found, signal.SIGTERM)
    left = _wait_gone(found, grace)
    _signal_all(left, signal.SIGKILL)
    _wait_gone(left, 1.0)
    return found


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Those of ``pids`` still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pids = [pid for pid in pids if pid_alive(pid)]
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = [pid for pid in pids if pid_alive(pid)]
    return pids


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
