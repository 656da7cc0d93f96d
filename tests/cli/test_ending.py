"""The ``bdp`` process: read-only commands end without teardown, and lose no output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Runs bdp's entry point with an exit handler that says whether the teardown ran.
ENTRY = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('TEARDOWN RAN\\n'))\n"
    "from bdp.cli.ending import run\n"
    "run()\n"
)


def bdp_process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BDP_HOME": str(tmp_path / "home"),
        "BDP_SECRET": "test-" + "s" * 32,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    env.pop("BDP_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_status_ends_without_teardown_and_its_whole_output_arrives(tmp_path: Path) -> None:
    # When `bdp status --json` ends through the entry point, writing to a pipe
    done = bdp_process(tmp_path, "status", "--json")

    # Then every byte of its JSON arrived, it exited 0, and the teardown was skipped
    assert done.returncode == 0, done.stderr
    assert "queued" in json.loads(done.stdout)
    assert "TEARDOWN RAN" not in done.stderr


def test_metrics_ends_without_teardown(tmp_path: Path) -> None:
    done = bdp_process(tmp_path, "metrics")

    assert done.returncode == 0, done.stderr
    assert "bdp_queue_depth" in done.stdout
    assert "TEARDOWN RAN" not in done.stderr


def test_a_command_that_changes_state_or_fails_ends_the_normal_way(tmp_path: Path) -> None:
    # A mistyped repo for enqueue fails; `bdp --help` is not one of the read-only commands
    failed = bdp_process(tmp_path, "enqueue", str(tmp_path / "no-such-repo"))
    other = bdp_process(tmp_path, "--help")

    assert failed.returncode != 0
    assert "TEARDOWN RAN" in failed.stderr
    assert other.returncode == 0
    assert "TEARDOWN RAN" in other.stderr
