"""Real processes for integration tests: consumers (huey_consumer, bdp worker), leftover CLIs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bdp.repo.procs import RUN_ENV, pid_alive, pids_where

CONSUMER = str(Path(sys.executable).parent / "huey_consumer")
BDP = str(Path(sys.executable).parent / "bdp")


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Poll until ``predicate()`` is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class HueyConsumer:
    """`huey_consumer bdp.consumer.huey` as a subprocess, output in a log file."""

    started: list[HueyConsumer] = []  # noqa: RUF012 - every consumer a test started, for teardown

    @classmethod
    def stop_all(cls) -> None:
        """SIGKILL consumers a failed test left running (by the PIDs we started)."""
        while cls.started:
            cls.started.pop().stop(signal.SIGKILL, timeout=10)

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2, kind: str = "thread"):
        self.env = env
        self.log = log
        self.argv = [CONSUMER, "bdp.consumer.huey", "-w", str(workers), "-k", kind]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HueyConsumer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        HueyConsumer.started.append(self)
        wait_for(lambda: b"consumer started" in self.log.read_bytes(), timeout=20)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int | None:
        """Signal the consumer and wait; SIGKILL it if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.kill(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


class BdpWorker(HueyConsumer):
    """`bdp worker` as a subprocess: the same consumer, started by bdp's own command."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2, kind: str = "thread"):
        super().__init__(env, log, workers, kind)
        self.argv = [BDP, "worker", "--workers", str(workers), "--kind", kind]


def agent_processes(api_url: str) -> list[int]:
    """PIDs of agent sessions (a Claude CLI and its children) talking to ``api_url``.

    Recognised by their environment: the fake API's URL plus the run marker bdp gives every
    CLI it starts; the consumer itself has the URL but no run marker.
    """

    def is_agent(environ: Mapping[str, str]) -> bool:
        return environ.get("ANTHROPIC_BASE_URL") == api_url and RUN_ENV in environ

    return [pid for pid in pids_where(is_agent) if pid_alive(pid)]


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``target`` in a daemon thread; the list collects what it raised (for the test
    thread to assert on)."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, errors
