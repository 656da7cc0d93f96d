"""What an agent's structured report makes `bdp run` do, on real processes: follow-ups filed
and worked in the same run, and a claim that no code is needed closing only behind the gate.

Real `bdp run` (consumer in process), the bd stand-in, real git, the real claude CLI against
the fake Messages API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, marker
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi, Report, ToolUse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-qm", f"add {name}")
    return git(repo, "rev-parse", "HEAD").strip()


def test_a_reports_follow_ups_are_filed_by_bdp_and_done_in_the_same_run(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given an issue whose session reports a follow-up, and the follow-up's own session
    issue_id = create_issue(repo, "Add the parser")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "parser.py", "content": "def parse(): ...\n"}),
            Report("DONE", "added the parser", follow_ups=[{"title": "Document the parser"}]),
        ],
        match=marker(issue_id),
    )
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "PARSER.md", "content": "# The parser\n"}),
            Report("DONE", "documented it"),
        ],
        match=": Document the parser",  # the follow-up's own prompt
    )

    # When one `bdp run` works on the repo
    done = bdp(env, "run", str(repo), timeout=150)

    # Then bdp filed the follow-up (discovered from the issue) and closed both in this run
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 issues: 2 closed (2 DONE), 0 failed, 0 need attention" in done.stdout
    listed = json.loads(run_bd_ok(repo, "list", "--all", "--json"))
    [follow_up] = [item for item in listed if item["title"] == "Document the parser"]
    assert follow_up["status"] == "closed"
    assert follow_up["dependencies"][0]["depends_on_id"] == issue_id
    assert follow_up["dependencies"][0]["type"] == "discovered-from"
    assert git(repo, "show", "main:PARSER.md") == "# The parser\n"
    records = bdp_json(env, "status")["recent"]
    assert {r["verdict"] for r in records} == {"structured"}


def test_an_already_done_claim_closes_the_issue_only_once_the_gate_passes(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given a commit that made the change, and a gate that needs a file not there yet
    cited = commit(repo, "greeting.txt", "hello\n")
    commit(repo, ".bdp.toml", 'gate = ["test -f checked.txt"]\nfix_rounds = 0\n')
    issue_id = create_issue(repo, "Add a greeting")
    claim = Report("ALREADY_DONE", "greeting.txt says hello", commit=cited[:9])
    fake_api.script([claim], match=marker(issue_id))

    # When `bdp run` takes the claim while the gate fails
    first = bdp(env, "run", str(repo), timeout=150)

    # Then the issue stays open, nothing was committed, and the comment says why
    assert first.returncode != 0, first.stdout + first.stderr
    assert show_issue(repo, issue_id)["status"] == "open"
    notes = run_bd_ok(repo, "comments", issue_id, "--json")
    assert "quality gate still failing: test -f checked.txt" in notes

    # When the gate passes on the target branch, and the same claim comes again
    tip = commit(repo, "checked.txt", "ok\n")
    second = bdp(env, "run", str(repo), timeout=150)

    # Then the issue is closed with the claim and the full commit, and main did not move
    assert second.returncode == 0, second.stdout + second.stderr
    issue = show_issue(repo, issue_id)
    assert issue["status"] == "closed"
    assert issue["close_reason"] == f"ALREADY_DONE: greeting.txt says hello (commit {cited[:12]})"
    assert git(repo, "rev-parse", "main").strip() == tip
    outcomes = [r["outcome"] for r in bdp_json(env, "status")["recent"]]
    assert outcomes == ["FAILED", "ALREADY_DONE"]
