"""Shared pieces of the process-level benchmarks: temp repos, a private Redis, consumers, timing.

Everything started here is stopped by the PID it was started with; nothing touches the
machine's shared Redis on 6379 or processes the benchmark did not start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.beads import bd_env  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

BIN = Path(sys.executable).parent
BDP = str(BIN / "bdp")
HUEY_CONSUMER = str(BIN / "huey_consumer")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(path: Path) -> Path:
    """A git repo at ``path`` with one commit and a committer identity."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@example.invalid")
    (path / "README.md").write_text("bench\n")
    git(path, "add", "README.md")
    git(path, "commit", "-qm", "initial")
    return path


def copy_repo(template: Path, target: Path) -> Path:
    """A fresh copy of a prepared repo (git history and bd workspace included)."""
    shutil.copytree(template, target, symlinks=True)
    return target


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without BDP_*/ANTHROPIC_* or ambient beads settings, stand-in bd first on PATH."""
    env = {k: v for k, v in bd_env().items() if not k.startswith(("BDP_", "ANTHROPIC_"))}
    env.update(extra)
    return env


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


#: The bdp before issue 15 (every session pays only for what it uses): the default baseline
#: the benchmarks compare this checkout with.
BEFORE_ISSUE_15 = "ab5ed46"


def unpack(revision: str, into: Path) -> Path:
    """The bdp package of ``revision``, unpacked under ``into`` (to import it from there)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "bdp"], cwd=ROOT, capture_output=True
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure_in(source: Path, function: str, *args: object) -> Any:
    """Call ``function`` ("module:name", from bench/) in a fresh interpreter that imports
    bdp from ``source`` (a checkout, or an unpacked older revision); what it returned (JSON)."""
    module, _, name = function.partition(":")
    code = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        f"from {module} import {name}; "
        "print(json.dumps(" + name + "(*json.loads(sys.argv[3]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(source), str(ROOT), json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=source,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if done.returncode != 0:
        raise SystemExit(f"{function} under {source} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def wall_ms(argv: list[str], env: dict[str, str], rounds: int, warmup: int = 1) -> list[float]:
    """Wall milliseconds of ``rounds`` runs of ``argv`` (after ``warmup`` unmeasured runs)."""
    samples = []
    for n in range(warmup + rounds):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        if n >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


@contextmanager
def private_redis(directory: Path) -> Iterator[RedisServer]:
    """A redis-server of our own on a free port; stopped by its PID on the way out."""
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class Consumer:
    """One ``huey_consumer`` process we started; output goes to ``log``."""

    def __init__(
        self, module: str, workers: int, env: dict[str, str], log: Path, extra: Sequence[str] = ()
    ) -> None:
        self.argv = [HUEY_CONSUMER, module, "-w", str(workers), "-k", "thread", *extra]
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Consumer:
        with self.log.open("ab") as out:
            # its own session: a Ctrl-C of the benchmark reaches it only through stop()
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if not wait_until(self._started, timeout):
            raise RuntimeError(f"huey_consumer did not start; see {self.log}")
        return self

    def _started(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"huey_consumer exited early; see {self.log}:\n{self.output()}")
        return b"consumer started" in self.log.read_bytes()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds of the consumer itself and of its finished children (bd, git, claude)."""
        if self.process is None:
            return 0.0, 0.0
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return 0.0, 0.0
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        tick = os.sysconf("SC_CLK_TCK")
        return (utime + stime) / tick, (cutime + cstime) / tick

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (graceful), then SIGKILL if it has not exited after ``timeout`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        os.kill(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            return process.wait(timeout=10)
