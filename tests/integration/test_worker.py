"""Workers a person can see: `bdp worker`, consumer heartbeats in `bdp status`, and one log
line per finished run, on real consumer processes."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.integration.helpers import bdp, bdp_json, script_write_then_done
from tests.support.beads import create_issue, show_issue
from tests.support.fake_api import FakeApi
from tests.support.processes import BdpWorker, HueyConsumer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NO_WORKER = "no worker is running: start one with `bdp worker`"


def consumers(env: dict[str, str]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = bdp_json(env, "status")["consumers"]
    return found


def test_a_bdp_worker_is_listed_by_status_while_it_runs_and_gone_when_it_stops(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    # Given no worker: status says how to start one
    idle = bdp(broker_env, "status")
    assert idle.returncode == 0, idle.stderr
    assert NO_WORKER in " ".join(idle.stdout.split())

    # When `bdp worker --workers 3` starts
    worker = BdpWorker(broker_env, tmp_path / "worker.log", workers=3).start()

    # Then its start line says who it is, and status lists it with a fresh heartbeat
    line = next(x for x in worker.output().splitlines() if "consumer started" in x)
    assert re.search(rf"consumer started on \S+, pid {worker.pid}: 3 thread workers", line)
    assert "janitor every" in line
    assert "Huey consumer started" not in worker.output()  # bdp's one line instead of Huey's
    wait_for(lambda: [c["pid"] for c in consumers(broker_env)] == [worker.pid], timeout=20)
    [shown] = consumers(broker_env)
    assert (shown["workers"], shown["kind"]) == (3, "thread")
    first_beat = shown["beat"]
    wait_for(lambda: consumers(broker_env)[0]["beat"] != first_beat, timeout=20)
    table = bdp(broker_env, "status").stdout
    assert str(worker.pid) in table
    assert NO_WORKER not in " ".join(table.split())

    # And a clean stop (Ctrl-C) takes it off the list
    assert worker.stop(signal.SIGINT) == 0
    assert consumers(broker_env) == []


def test_a_killed_worker_drops_off_status_once_its_heartbeat_is_stale(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given a worker whose heartbeat counts as stale after 2 s
    short = {**env, "BDP_STALE_AFTER": "2"}
    worker = BdpWorker(short, tmp_path / "worker.log").start()
    wait_for(lambda: len(consumers(short)) == 1, timeout=20)

    # When it is SIGKILLed (no clean stop removes its record)
    worker.stop(signal.SIGKILL)

    # Then status stops listing it once the beat is older than BDP_STALE_AFTER
    wait_for(lambda: consumers(short) == [], timeout=20)
    assert NO_WORKER in " ".join(bdp(short, "status").stdout.split())


def test_huey_consumer_beats_too_and_logs_one_line_per_finished_run(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a ready issue whose session writes a file and reports DONE
    issue_id = create_issue(repo, "Add notes")
    script_write_then_done(fake_api, issue_id, "notes.md")
    assert bdp(env, "enqueue", str(repo)).returncode == 0

    # When Huey's own consumer command works it
    consumer = HueyConsumer(env, tmp_path / "consumer.log", workers=1).start()
    wait_for(lambda: [c["pid"] for c in consumers(env)] == [consumer.pid], timeout=20)
    wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=90)
    wait_for(lambda: issue_id in consumer.output() and " DONE " in consumer.output(), timeout=20)
    consumer.stop()

    # Then its log has one INFO line naming the issue, outcome, time, turns, cost and summary
    [record] = bdp_json(env, "status")["recent"]
    lines = [x for x in consumer.output().splitlines() if f"{issue_id} DONE" in x]
    assert len(lines) == 1
    assert re.search(
        rf"INFO:bdp\.queue\.tasks:.*:{re.escape(issue_id)} DONE \d+\.\ds "
        rf"{record['turns']} turns \${record['cost_usd']:.4f}: added notes\.md$",
        lines[0],
    )
    assert consumers(env) == []  # and a clean stop took its heartbeat away
