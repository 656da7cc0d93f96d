"""Runs one command (an agent's CLI, a gate check) and then ends every process it left behind.

An agent runs any shell command in any spelling, so its leftovers cannot be found by what
they carry: ``env -u BDP_RUN_ID setsid sleep 1000 &`` drops the environment marker, leaves
the process group and the session, and is re-parented to init when its shell exits. The
supervisor makes itself the *child subreaper* of the command's tree (Linux
``PR_SET_CHILD_SUBREAPER``): every process the tree orphans, however it was started, is
re-parented to the supervisor instead. When the command ends, or the supervisor is told to
stop, it ends all of its descendants (SIGTERM, a short grace, then SIGKILL) before it exits
with the command's status. Only a process in the tree can get around it, and none is left.

It also starts a session of its own (``setsid``), so a terminal's Ctrl-C reaches bdp alone
and bdp decides how its sessions wrap up.

The supervisor runs as ``python -SE supervisor.py COMMAND ARGS...`` (or as the body of the
CLI launcher, `bdp.agent.launcher`): it imports the standard library only, and nothing of
the environment or site-packages that the command could have changed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

#: prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: Seconds leftovers get between SIGTERM and SIGKILL.
GRACE = 1.0
#: Seconds the command gets to exit after a stop signal before it is killed.
STOP_WAIT = 3.0
#: Signals passed on to the command.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Where Linux lists processes; without it (macOS), ps(1) gives the parent links.
PROC = Path("/proc")
PS = ("/bin/ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "stat=")


def main(argv: list[str]) -> NoReturn:
    """Run ``argv`` supervised; exit with its status (128 + N when signal N ended it)."""
    if not argv:
        print("usage: supervisor.py COMMAND [ARGS...]", file=sys.stderr)
        os._exit(2)
    os.setsid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = _spawn(argv)
    _forward_signals(child)
    status = _wait_for(child)
    end_descendants()
    os._exit(status)


def _spawn(argv: list[str]) -> int:
    """Fork and exec ``argv``; the child dies with the supervisor, whatever kills it."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the supervisor died before the line above
            os._exit(1)
        os.execvp(argv[0], argv)  # noqa: S606 - running the given command is the job
    except OSError as error:
        print(f"bdp supervisor: cannot run {argv[0]}: {error.strerror}", file=sys.stderr)
    os._exit(127)


def _forward_signals(child: int) -> None:
    """Pass stop signals on to the command; kill it when it has not gone in STOP_WAIT s."""

    def forward(signum: int, _frame: object) -> None:
        _kill(child, signum)
        signal.alarm(int(STOP_WAIT))

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.signal(signal.SIGALRM, lambda _signum, _frame: _kill(child, signal.SIGKILL))


def _wait_for(child: int) -> int:
    """Reap children (adopted orphans too) until the command ends; its exit code."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def end_descendants(grace: float = GRACE) -> None:
    """SIGTERM every descendant, reap, and SIGKILL those left after ``grace`` seconds,
    until none is left (each round catches what forked during the last one)."""
    _signal_all(descendants(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _reap() and time.monotonic() < deadline:
        time.sleep(0.02)
    for _ in range(100):
        left = descendants()
        if not left and not _reap():
            return
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.01)


def descendants(root: int | None = None) -> list[int]:
    """Every live process below ``root`` (this process by default), from the parent links."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parent_links():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    below = [os.getpid() if root is None else root]
    while below:
        pid = below.pop()
        found.extend(children.get(pid, ()))
        below.extend(children.get(pid, ()))
    return found


def _parent_links() -> list[tuple[int, int]]:
    """(pid, parent pid) of every live process, zombies left out: from /proc on Linux, from
    ps(1) where there is none (macOS). psutil would do both, but the supervisor imports the
    standard library only."""
    if not PROC.is_dir():
        return _ps_links()
    links = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            links.append((int(stat.parent.name), int(fields[1])))
    return links


def _ps_links() -> list[tuple[int, int]]:
    import subprocess  # only here: every supervisor start would pay for it

    try:
        with subprocess.Popen(PS, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as ps:
            out, _ = ps.communicate(timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    links = []
    for line in out.decode(errors="replace").splitlines():
        fields = line.split()
        live = len(fields) >= 3 and fields[0].isdigit() and not fields[2].startswith("Z")
        if live and int(fields[0]) != ps.pid:
            links.append((int(fields[0]), int(fields[1])))
    return links


def _reap() -> bool:
    """Reap every child that has exited; True while children remain."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        _kill(pid, signum)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return


def _prctl(option: int, value: int) -> None:
    """Set a prctl(2) option; a no-op off Linux (the supervisor then only starts a session)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    prctl = getattr(libc, "prctl", None)
    if prctl is not None:
        prctl(option, value, 0, 0, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
