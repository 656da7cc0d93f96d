"""bdp.cli.report_view: the terminal timeline shows each run in its worker's row, to scale."""

from __future__ import annotations

import io
import time

from rich.console import Console

from bdp.cli.report_view import IDLE, LABEL_WIDTH, RETRY, RUN, WAITED, report_view
from bdp.models import Outcome, RunRecord
from bdp.ops.report import build_report

NOW = time.mktime((2025, 6, 2, 12, 0, 0, 0, 0, -1))


def run(issue: str, start: float, end: float, worker: str, **fields: object) -> RunRecord:
    """A DONE run from NOW+start to NOW+end minutes."""
    record = RunRecord(f"r-{issue}", issue, "/repo", "t", Outcome.DONE, "ok", worker=worker)
    record.started, record.finished = NOW + start * 60, NOW + end * 60
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def lines(*records: RunRecord, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(report_view(build_report(list(records), NOW, 3600), "1h", width))
    return console.export_text().splitlines()


def row_of(output: list[str], worker: str) -> str:
    found = [line for line in output if line.startswith(worker)]
    assert len(found) == 1, output
    return found[0][LABEL_WIDTH + 1 :]


def test_each_worker_has_a_row_with_its_runs_to_scale() -> None:
    output = lines(
        run("t-1", -40, -20, "a/1-w"), run("t-2", -10, 0, "a/1-w"), run("t-3", -40, -30, "b/2-w")
    )

    a, b = row_of(output, "a/1-w"), row_of(output, "b/2-w")
    assert len(a) == len(b) == 80 - LABEL_WIDTH - 1
    cells = len(a)  # the 40 minutes from the first start to the last end
    assert abs(a.count(RUN) - cells * 30 / 40) <= 2  # a ran 30 of them
    assert abs(b.count(RUN) - cells * 10 / 40) <= 2  # b ran 10
    assert a.startswith(RUN)
    assert a.endswith(RUN)
    assert IDLE * 10 in a  # the 10 minutes between them
    assert b.startswith(RUN)
    assert b.endswith(IDLE)


def test_a_retry_starts_with_its_mark_and_lock_waits_are_hatched() -> None:
    output = lines(
        run("t-1", -40, -20, "a/1-w", attempt=2),
        run("t-2", -20, 0, "b/2-w", lock_waits=1, lock_wait_seconds=300.0),
    )

    a, b = row_of(output, "a/1-w"), row_of(output, "b/2-w")
    assert a.startswith(RETRY + RUN)
    waited = len(b) - len(b.lstrip(IDLE))
    assert b[waited : waited + 3] == WAITED * 3  # 5 of the run's 20 minutes: a quarter
    assert b.count(WAITED) in range(round(len(b) / 8) - 1, round(len(b) / 8) + 2)


def test_a_worker_name_too_long_for_its_column_keeps_both_ends() -> None:
    output = lines(run("t-1", -40, -20, "a-very-long-host-name.example/12345-Worker-12"))

    assert any(line.startswith("a-very-lon…5-Worker-12 ") for line in output), output


def test_a_window_longer_than_the_kept_history_says_where_it_starts() -> None:
    records = [run(f"t-{n}", -40 + n, -39 + n, "a/1-w") for n in range(3)]
    console = Console(width=80, record=True, file=io.StringIO())

    console.print(report_view(build_report(records, NOW, 3600, kept=3), "1h", 80))

    assert "the broker keeps only the newest records: this starts at 2025-06-02 11:21" in (
        console.export_text()
    )
