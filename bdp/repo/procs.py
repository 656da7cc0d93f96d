"""Find and end the processes of one run, even ones the SDK lost track of.

Each CLI and gate check runs under `bdp.repo.supervisor`, which ends whatever its command
left behind. What outlives a supervisor (one SIGKILLed along with its worker) is found here
by ``BDP_RUN_ID=<run id>``, which bdp puts in the environment of every supervisor it starts
and so of everything under it that kept it: scanning ``/proc`` finds those without relying
on parent links (a crashed worker leaves orphans re-parented to init).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bdp.repo import supervisor

RUN_ENV = "BDP_RUN_ID"
_PROC = Path("/proc")


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
