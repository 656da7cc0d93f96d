"""bdp.repo.supervisor on real processes: nothing a supervised command starts outlives it.

Each command reports the pids of what it detached into a file, so every test checks those
very processes were alive and are gone, not just that a search came back empty.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.repo import supervisor
from bdp.repo.procs import pid_alive, stop_supervised, supervised
from bdp.repo.quality_gate import run_gate
from bdp.repo.repo_config import ShellCommand

#: A daemon the classic way: fork, setsid, fork again, drop bdp's marker; writes its pid.
DAEMON = textwrap.dedent(
    """
    import os, sys, time
    if os.fork(): sys.exit(0)
    os.setsid()
    if os.fork(): os._exit(0)
    os.environ.pop("BDP_RUN_ID", None)
    with open(sys.argv[1], "a") as out: out.write(f"{os.getpid()}\\n")
    time.sleep(600)
    """
)


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Path]:
    """The file detached processes write their pids to; whatever is listed is killed after."""
    pids = tmp_path / "pids"
    pids.touch()
    yield pids
    for pid in listed(pids):
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def listed(pids: Path) -> list[int]:
    return [int(line) for line in pids.read_text().split()]


def wait_listed(pids: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while len(listed(pids)) < count:
        assert time.monotonic() < deadline, "the detached processes never started"
        time.sleep(0.02)
    return listed(pids)


def detaching_script(pids: Path) -> str:
    """A shell command that leaves three processes behind in three different ways."""
    daemon = f"{sys.executable} -c '{DAEMON}' {pids}"
    return (
        f"(env -u BDP_RUN_ID setsid sh -c 'echo $$ >> {pids}; exec sleep 600' &) ; "
        f"(sleep 600 & echo $! >> {pids}) ; "
        f"{daemon} ; "
        f"while [ $(wc -l < {pids}) -lt 3 ]; do sleep 0.02; done"
    )


def test_what_a_command_detaches_in_any_way_ends_with_it(leftovers: Path) -> None:
    # Given a command that starts a setsid'd process without bdp's marker, a plain background
    # process and a double-forked daemon, then exits
    done = subprocess.run(
        supervised(["/bin/sh", "-c", detaching_script(leftovers)]), timeout=30, check=False
    )

    # Then all three existed, and none outlives the supervisor
    assert done.returncode == 0
    started = listed(leftovers)
    assert len(started) == 3
    assert [pid for pid in started if pid_alive(pid)] == []


def test_the_commands_exit_status_is_the_supervisors() -> None:
    assert subprocess.run(supervised(["/bin/sh", "-c", "exit 7"]), check=False).returncode == 7
    killed = subprocess.run(supervised(["/bin/sh", "-c", "kill -9 $$"]), check=False)
    assert killed.returncode == 128 + signal.SIGKILL
    missing = subprocess.run(supervised(["/no/such/cmd"]), capture_output=True, check=False)
    assert missing.returncode == 127
    assert b"cannot run /no/such/cmd" in missing.stderr


def test_the_command_runs_in_a_session_of_its_own() -> None:
    # The terminal's Ctrl-C goes to bdp's process group only
    done = subprocess.run(
        supervised([sys.executable, "-c", "import os; print(os.getsid(0))"]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(done.stdout) != os.getsid(0)


def test_a_stop_ends_a_command_that_ignores_sigterm_and_what_it_detached(
    leftovers: Path,
) -> None:
    # Given a supervised command that ignores SIGTERM and has detached a process
    script = f"trap '' TERM; (setsid sleep 600 & echo $! >> {leftovers}); sleep 600"
    with subprocess.Popen(supervised(["/bin/sh", "-c", script])) as process:
        detached = wait_listed(leftovers, 1)

        # When bdp stops it
        started = time.monotonic()
        stop_supervised(process)

    # Then it went without the SIGKILL fallback, and took the detached process with it
    assert process.returncode == 128 + signal.SIGKILL  # the command, killed after STOP_WAIT
    assert time.monotonic() - started < supervisor.STOP_WAIT + supervisor.GRACE + 1
    assert not pid_alive(detached[0])


def test_the_command_dies_with_a_killed_supervisor(tmp_path: Path) -> None:
    # Given a supervised command (it reports its own pid)
    out = tmp_path / "pid"
    script = f"echo $$ > {out}.tmp && mv {out}.tmp {out}; exec sleep 600"
    with subprocess.Popen(supervised(["/bin/sh", "-c", script])) as process:
        deadline = time.monotonic() + 10
        while not out.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        command = int(out.read_text())
        assert pid_alive(command)

        # When the supervisor itself is SIGKILLed
        process.kill()

    # Then the command does not run on without it
    deadline = time.monotonic() + 5
    while pid_alive(command):
        assert time.monotonic() < deadline, "the command outlived its supervisor"
        time.sleep(0.02)


def test_a_gate_check_leaves_nothing_running(tmp_path: Path, leftovers: Path) -> None:
    # Given a gate check that starts a server in the background and passes
    check = ShellCommand(f"(setsid sleep 600 & echo $! >> {leftovers}); true", timeout=30)

    # When the gate runs it
    assert run_gate(tmp_path, (check,), "run-1").passed

    # Then the server it started is gone
    assert [pid for pid in listed(leftovers) if pid_alive(pid)] == []
    assert len(listed(leftovers)) == 1


def test_a_gate_check_that_times_out_is_ended_with_everything_it_started(
    tmp_path: Path, leftovers: Path
) -> None:
    check = ShellCommand(f"(setsid sleep 600 & echo $! >> {leftovers}); echo hi; sleep 600", 1)

    result = run_gate(tmp_path, (check,), "run-1")

    assert not result.passed
    assert "hi" in result.output
    assert "timed out after 1s" in result.output
    assert [pid for pid in listed(leftovers) if pid_alive(pid)] == []


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A shell with two sleeping children, and one grandchild below a subshell."""
    shell = subprocess.Popen(
        ["sh", "-c", "sleep 60 & (sleep 60 & wait) & echo ready; wait"], stdout=subprocess.PIPE
    )
    assert shell.stdout is not None
    assert shell.stdout.readline() == b"ready\n"
    yield shell
    for pid in supervisor.descendants(shell.pid):
        os.kill(pid, signal.SIGKILL)
    shell.kill()
    shell.wait(10)
    shell.stdout.close()


def test_without_proc_the_descendants_come_from_ps(
    tree: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a process tree, and its descendants as /proc's parent links give them
    deadline = time.monotonic() + 10
    while len(from_proc := supervisor.descendants(tree.pid)) < 3:  # sleep, subshell, sleep
        assert time.monotonic() < deadline, from_proc
        time.sleep(0.02)

    # When there is no /proc (macOS)
    monkeypatch.setattr(supervisor, "PROC", tmp_path / "no-proc")
    from_ps = supervisor.descendants(tree.pid)

    # Then ps(1) finds the very same processes
    assert sorted(from_ps) == sorted(from_proc)
