"""Checks before anything is claimed, on real processes: a `bdp run` without credentials,
an enqueue without bd and a consumer without credentials each stop with one `Error:` line
and leave every issue as it was in bd; `bdp doctor` lists every check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import bdp, bdp_json
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi
from tests.support.processes import CONSUMER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def without_credentials(env: dict[str, str]) -> dict[str, str]:
    """``env`` with no key, no token, no gateway, and a HOME with no CLI login."""
    ways_in = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
    return {k: v for k, v in env.items() if k not in (*ways_in, "ANTHROPIC_BASE_URL")}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def assert_untouched(repo: Path, issue_ids: list[str]) -> None:
    """No claim, no comment, nothing queued for any of ``issue_ids``."""
    for issue_id in issue_ids:
        shown = show_issue(repo, issue_id)
        assert (shown["status"], shown.get("assignee") or "") == ("open", "")
        assert json.loads(run_bd_ok(repo, "comments", issue_id, "--json")) == []


def test_bdp_run_without_credentials_claims_nothing_and_says_how_to_fix_it(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    ids = [create_issue(repo, f"Item {n}") for n in range(2)]

    done = bdp(without_credentials(env), "run", str(repo))

    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert line.startswith("Error: credentials: no API key, token or CLI login found")
    assert "ANTHROPIC_API_KEY" in line
    assert "Traceback" not in done.stderr
    assert_untouched(repo, ids)
    assert bdp_json(env, "status")["queued"] == 0
    assert fake_api.requests == []


def test_enqueue_without_bd_names_the_install_commands_and_queues_nothing(
    env: dict[str, str], repo: Path
) -> None:
    ids = [create_issue(repo, "Item")]

    done = bdp({**env, "BDP_BD": "/nonexistent/bd"}, "enqueue", str(repo))

    assert done.returncode != 0
    [line] = error_lines(done.stderr)
    assert "npm install -g @beads/bd" in line
    assert "Traceback" not in done.stderr
    assert_untouched(repo, ids)
    assert bdp_json(env, "status")["queued"] == 0


def test_a_consumer_without_credentials_stops_at_start_with_one_line(
    env: dict[str, str], repo: Path
) -> None:
    ids = [create_issue(repo, "Item")]
    assert bdp(env, "enqueue", str(repo)).returncode == 0

    done = subprocess.run(
        [CONSUMER, "bdp.consumer.huey", "-w", "1"],
        env=without_credentials(env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert line.startswith("Error: credentials:")
    assert "Traceback" not in done.stderr
    assert_untouched(repo, ids)
    assert bdp_json(env, "status")["queued"] == 1  # still there for a worker that can run it


def test_doctor_lists_every_check_and_fails_only_on_a_failure(
    env: dict[str, str], repo: Path
) -> None:
    healthy = bdp(env, "doctor", str(repo), "--json")
    missing = bdp(without_credentials(env), "doctor", str(repo), "--json")

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    checks = {row["check"]: row["status"] for row in json.loads(healthy.stdout)}
    assert set(checks) == {
        "claude CLI",
        "credentials",
        "sandbox",
        "bd",
        "broker",
        "beads workspace",
        "git identity",
    }
    assert set(checks.values()) == {"ok"}
    assert missing.returncode == 1
    failed = [row["check"] for row in json.loads(missing.stdout) if row["status"] == "failed"]
    assert failed == ["credentials"]
