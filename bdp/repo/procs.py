"""Find and end the processes of one run, even ones the SDK lost track of.

Each CLI and gate check runs under `bdp.repo.supervisor`, which ends whatever its command
left behind. What outlives a supervisor (one SIGKILLed along with its worker) is found here
by ``BDP_RUN_ID=<run id>``, which bdp puts in the environment of every supervisor it starts
and so of everything under it that kept it: reading each process's environment (psutil, so
Linux and macOS alike) finds those without relying on parent links (a crashed worker leaves
orphans re-parented to init).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

import psutil

from bdp.repo import supervisor

RUN_ENV = "BDP_RUN_ID"


def supervised(argv: list[str]) -> list[str]:
    """``argv`` run under `bdp.repo.supervisor`: in a session of its own, and nothing it
    starts outlives it."""
    return [sys.executable, "-SE", supervisor.__file__, *argv]


def stop_supervised(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Stop a supervised process the way it expects (SIGTERM, so it ends its whole tree),
    SIGKILL only when it has not exited in time."""
    process.terminate()
    try:
        process.wait(supervisor.STOP_WAIT + supervisor.GRACE + 2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pids_of_run(run_id: str) -> list[int]:
    """Live processes whose environment carries this run's marker."""
    return pids_where(lambda environ: environ.get(RUN_ENV) == run_id)


def pids_where(match: Callable[[Mapping[str, str]], bool]) -> list[int]:
    """Processes other than this one whose environment matches.

    Processes whose environment cannot be read (another user's, one exiting) are left out.
    """
    found = []
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            environ = process.environ()
        except (psutil.Error, OSError):
            continue
        if match(environ):
            found.append(process.pid)
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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
