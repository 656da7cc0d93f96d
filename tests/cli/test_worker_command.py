"""`bdp worker`'s options: a mistake is a usage error, before any consumer starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import bdp


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    """click's ``Error:`` line of a usage error (exit 2, no traceback, no consumer started)."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "consumer started" not in done.stdout + done.stderr
    return next(line for line in done.stderr.splitlines() if line.startswith("Error: "))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("-k", "greenlet"), "'greenlet' is not one of 'thread', 'process'"),
        (("-n", "0"), "0 is not in the range x>=1"),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_what_is_allowed(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    env = {**os.environ, "BDP_HOME": str(tmp_path / "home")}

    assert said in usage_error(bdp(env, "worker", *args))
