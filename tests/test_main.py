"""``python -m bdp`` is the bdp command line, and click's shell completion works for it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.helpers import BDP


def test_python_dash_m_bdp_is_the_bdp_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bdp", "--help"], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: bdp ")
    assert "enqueue" in done.stdout


def test_bash_completion_completes_command_names() -> None:
    env = {
        **os.environ,
        "_BDP_COMPLETE": "bash_complete",
        "COMP_WORDS": "bdp sta",
        "COMP_CWORD": "1",
    }

    done = subprocess.run([BDP], env=env, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert "plain,status" in done.stdout.splitlines()
