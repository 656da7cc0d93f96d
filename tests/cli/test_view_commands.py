"""`bdp clean` and `bdp status --watch`: durations with units, and nothing deleted by surprise."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bdp.cli import main
from tests.cli.test_cli import error_line
from tests.integration.helpers import bdp as run_bdp

#: Logs of 2 days, 12 hours and a moment ago (seconds).
AGES = {"t-1-old.log": 2 * 86400.0, "t-2-today.log": 12 * 3600.0, "t-3-now.log": 0.0}


@pytest.fixture
def logs(bdp_home: Path) -> Path:
    folder = bdp_home / "logs"
    folder.mkdir(parents=True)
    for name, age in AGES.items():
        (folder / name).write_text("bdp: a run\n")
        then = time.time() - age
        os.utime(folder / name, (then, then))
    return folder


def test_older_than_with_a_bare_number_is_one_error_line_and_deletes_nothing(
    env: dict[str, str], logs: Path
) -> None:
    line = error_line(run_bdp(env, "clean", "--logs", "--older-than", "7"), exit_code=2)
    assert line == "Error: --older-than='7' has no unit (add one, e.g. 7h or 7d)"
    assert sorted(p.name for p in logs.iterdir()) == sorted(AGES)


def test_clean_lists_each_log_it_deletes_with_the_age_and_its_unit(
    env: dict[str, str], logs: Path
) -> None:
    done = run_bdp(env, "clean", "--logs", "--older-than", "1d")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "deleted 1 log files older than 1d",
        f"  {logs / 't-1-old.log'}",
    ]
    assert sorted(p.name for p in logs.iterdir()) == ["t-2-today.log", "t-3-now.log"]


def test_a_dry_run_lists_what_would_go_and_deletes_nothing(env: dict[str, str], logs: Path) -> None:
    done = run_bdp(env, "clean", "--dry-run", "--older-than", "6h")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "janitor: no sweep in a dry run (`bdp status` shows locks and runs)",
        "would delete 2 log files older than 6h (dry run)",
        f"  {logs / 't-1-old.log'}",
        f"  {logs / 't-2-today.log'}",
    ]
    assert sorted(p.name for p in logs.iterdir()) == sorted(AGES)


def test_clean_names_an_odd_age_the_way_it_reads_it(env: dict[str, str], logs: Path) -> None:
    done = run_bdp(env, "clean", "--logs", "--dry-run", "--older-than", "1.5d")
    assert done.stdout.splitlines()[0] == "would delete 1 log files older than 1d12h (dry run)"


@pytest.mark.parametrize(("interval", "seconds"), [("2", 2.0), ("2s", 2.0), ("1m", 60.0)])
def test_status_watch_reads_a_bare_interval_as_seconds(interval: str, seconds: float) -> None:
    status = main.commands["status"]
    option = next(p for p in status.params if p.name == "interval")
    context = click.Context(status)
    assert option.type_cast_value(context, interval) == seconds
    assert option.type_cast_value(context, option.get_default(context)) == 2.0


def test_the_timeout_option_reads_a_bare_number_as_minutes_and_says_so() -> None:
    run = main.commands["run"]
    timeout = next(p for p in run.params if p.name == "timeout")
    assert getattr(timeout.type, "bare_unit", None) == "m"
    help_text = CliRunner().invoke(main, ["run", "--help"], terminal_width=200).output
    assert "a bare number is minutes" in help_text
