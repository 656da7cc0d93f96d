"""Finding and ending a run's leftover processes, on real processes (psutil reads them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from bdp.repo.procs import RUN_ENV, end_run_processes, pid_alive, pids_of_run, pids_where
from tests.support.processes import wait_for

#: A process that ignores SIGTERM and says when it is ready to be signalled.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)
#: A process that goes at SIGTERM.
PLAIN = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; SIGKILLed and reaped by PID at teardown."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def start(
    started: list[subprocess.Popen[str]], code: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_the_processes_of_a_run_are_found_by_its_marker_and_no_others(
    started: list[subprocess.Popen[str]],
) -> None:
    # Given two processes of run r1, one of run r2 and one with no marker
    ours = [start(started, PLAIN, {RUN_ENV: "r1"}) for _ in range(2)]
    other = start(started, PLAIN, {RUN_ENV: "r2"})
    unmarked = start(started, PLAIN, {})

    # When the processes of r1 are looked up
    found = pids_of_run("r1")

    # Then exactly r1's are found
    assert sorted(found) == sorted(p.pid for p in ours)
    assert other.pid not in found
    assert unmarked.pid not in found
    assert pids_of_run("r1-but-longer") == []


def test_a_match_on_the_environment_sees_every_variable(
    started: list[subprocess.Popen[str]],
) -> None:
    process = start(started, PLAIN, {"BDP_TEST_MARK": "one two=three"})

    found = pids_where(lambda env: env.get("BDP_TEST_MARK") == "one two=three")

    assert found == [process.pid]


def test_ending_a_run_stops_its_processes_and_kills_one_that_ignores_sigterm(
    started: list[subprocess.Popen[str]],
) -> None:
    # Given a process of run r1 that goes at SIGTERM, one that ignores it, and one of run r2
    plain = start(started, PLAIN, {RUN_ENV: "r1"})
    stubborn = start(started, STUBBORN, {RUN_ENV: "r1"})
    bystander = start(started, PLAIN, {RUN_ENV: "r2"})

    # When run r1's processes are ended with a short grace
    ended = end_run_processes("r1", grace=0.5)

    # Then both of r1's ended (the stubborn one by SIGKILL) and r2's still runs
    assert sorted(ended) == sorted([plain.pid, stubborn.pid])
    assert plain.wait(10) == -signal.SIGTERM
    assert stubborn.wait(10) == -signal.SIGKILL
    assert bystander.poll() is None
    assert pids_of_run("r1") == []


def test_a_zombie_counts_as_gone_and_a_reaped_process_too(
    started: list[subprocess.Popen[str]],
) -> None:
    # Given a child that has exited but is not reaped yet (a zombie)
    process = start(started, PLAIN, {})
    assert pid_alive(process.pid)
    os.kill(process.pid, signal.SIGKILL)

    # Then it counts as gone while still a zombie, and after it is reaped
    wait_for(lambda: not pid_alive(process.pid), timeout=10)
    assert psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE
    process.wait(10)
    assert not pid_alive(process.pid)
    assert pid_alive(os.getpid())
