"""`bdp report`: the text report in 80 columns, JSON for scripts, the HTML file, bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bdp.cli import main
from bdp.config import Settings
from bdp.models import Outcome, RunRecord
from bdp.queue.app import App
from tests.cli.test_cli import error_line
from tests.integration.helpers import bdp
from tests.support.secrets import API_KEY, SECRET

LONG_ID = "acme-an-issue-id-much-longer-than-usual-0123456789"
#: A title that is rich markup: the terminal must show it, not obey it.
MARKUP_TITLE = "[bold red]not a style[/] and a very long title that cannot fit in eighty columns"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """BDP_HOME for in-process runs, no ambient BDP_* settings, 80 columns."""
    for name in list(os.environ):
        if name.startswith("BDP_") or name == "ANTHROPIC_API_KEY":
            monkeypatch.delenv(name)
    path = tmp_path / "home"
    monkeypatch.setenv("BDP_HOME", str(path))
    monkeypatch.setenv("BDP_SECRET", SECRET)
    monkeypatch.setenv("COLUMNS", "80")
    return path


def keep(home: Path, *records: RunRecord) -> None:
    """Record outcomes the way workers do, in the broker the command will read."""
    app = App.create(Settings(home=home, secret=SECRET))
    for record in records:
        app.state.record(record)


def ran(issue: str, outcome: Outcome, ago: float, minutes: float, **fields: object) -> RunRecord:
    """A run that ended ``ago`` seconds before now after ``minutes`` minutes."""
    end = time.time() - ago
    run = RunRecord(f"r-{issue}", issue, "/repo", f"title of {issue}", outcome, "ok")
    run.started, run.finished, run.worker = end - minutes * 60, end, "buildhost/100-Worker-1"
    for name, value in fields.items():
        setattr(run, name, value)
    return run


def report(*args: str) -> Result:
    result = CliRunner().invoke(main, ["report", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_the_text_report_fits_80_columns_and_never_shortens_an_issue_id(home: Path) -> None:
    # Given a closed run with a long id, and a failed run on another worker
    keep(
        home,
        ran(LONG_ID, Outcome.DONE, 600, 20, cost_usd=0.5),
        ran("t-2", Outcome.FAILED, 60, 10, worker="otherhost/200-Worker-2", cost_usd=0.25),
    )

    # When the report is printed
    output = report().stdout

    # Then every line fits and the id is whole, in both issue tables
    assert max(len(line) for line in output.splitlines()) <= 80, output
    assert output.count(LONG_ID) == 2
    assert "2 runs, 1 closed, 1 failed, $0.7500" in output
    assert "buildhost/100-Worker-1" in output
    assert "otherhost/200-Worker-2" in output
    for table in ("by outcome", "by day", "slowest issues", "costliest issues"):
        assert table in output


def test_a_title_is_shortened_to_fit_and_shown_as_text_not_as_a_style(home: Path) -> None:
    keep(home, ran("t-1", Outcome.DONE, 600, 20, title=MARKUP_TITLE, cost_usd=0.5))

    output = report().stdout

    assert max(len(line) for line in output.splitlines()) <= 80, output
    assert "│ [bold red]not a style[/] and a very long" in output
    assert MARKUP_TITLE not in output  # shortened with "…"


def test_runs_that_finished_before_since_are_left_out(home: Path) -> None:
    keep(home, ran("t-old", Outcome.DONE, 3 * 3600, 5), ran("t-new", Outcome.BLOCKED, 60, 5))

    data = json.loads(report("--since", "1h30m", "--json").stdout)

    assert [run["issue_id"] for w in data["workers"] for run in w["runs"]] == ["t-new"]
    assert data["total"]["runs"] == 1
    assert data["until"] - data["since"] == 5400


def test_json_gives_the_numbers_by_worker_outcome_and_issue(home: Path) -> None:
    keep(
        home,
        ran("t-1", Outcome.DONE, 300, 4, cost_usd=0.1, input_tokens=100, attempt=2),
        ran("t-2", Outcome.FAILED, 30, 2, lock_waits=2, lock_wait_seconds=3.5),
    )

    data = json.loads(report("--json").stdout)

    assert data["by_outcome"]["DONE"] == {
        "runs": 1,
        "seconds": 240.0,
        "cost_usd": 0.1,
        "input_tokens": 100,
        "output_tokens": 0,
        "closed": 1,
        "failed": 0,
    }
    assert (data["retries"], data["lock_waits"]["waits"]) == (1, 2)
    assert [i["issue_id"] for i in data["slowest"]] == ["t-1", "t-2"]
    assert [w["worker"] for w in data["workers"]] == ["buildhost/100-Worker-1"]


def test_html_writes_one_page_and_says_where(home: Path, tmp_path: Path) -> None:
    keep(home, ran("t-1", Outcome.DONE, 300, 4, title="<script>alert(1)</script>"))
    target = tmp_path / "report.html"

    result = report("--since", "2h", "--html", str(target))

    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "last 2h" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page
    assert result.stderr.strip() == f"wrote {target}"
    assert "bdp report last 2h" in result.stdout  # the terminal still gets the report


def test_no_runs_in_the_window_is_said_in_a_line(home: Path) -> None:
    output = report("--since", "10m").stdout

    assert "0 runs" in output
    assert "no run finished in the last 10m" in output


def test_secrets_in_records_are_redacted_from_every_output(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a record written before the key was in this environment (so kept as it was)
    keep(home, ran("t-1", Outcome.DONE, 300, 4, title=f"key {API_KEY}"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    target = tmp_path / "report.html"

    # When the report is printed, as JSON, and as HTML
    text = report().stdout
    data = report("--json").stdout
    report("--html", str(target), "--json")

    # Then the key is in none of them
    for output in (text, data, target.read_text(encoding="utf-8")):
        assert API_KEY not in output
        assert "key ***" in output


def bdp_env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BDP_")}
    return {**base, "BDP_HOME": str(tmp_path / "home"), "BDP_SECRET": SECRET}


@pytest.mark.parametrize("since", ["7", "24", "0.5"])
def test_a_since_without_a_unit_is_one_error_line_saying_to_add_one(
    tmp_path: Path, since: str
) -> None:
    line = error_line(bdp(bdp_env(tmp_path), "report", "--since", since), exit_code=2)

    assert line == f"Error: --since={since!r} has no unit (add one, e.g. {since}h or {since}d)"


@pytest.mark.parametrize("since", ["soon", "-1h", "0m", "1h1h"])
def test_a_since_that_is_no_duration_is_one_error_line_listing_the_forms(
    tmp_path: Path, since: str
) -> None:
    line = error_line(bdp(bdp_env(tmp_path), "report", "--since", since), exit_code=2)

    assert f"--since={since!r} is not a duration" in line
    assert "1h30m" in line


def test_an_html_file_in_a_missing_directory_is_one_error_line(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "report.html"

    line = error_line(bdp(bdp_env(tmp_path), "report", "--html", str(target)))

    assert line.startswith(f"Error: cannot write {target}: No such file or directory")
