"""bdp/agent/epic_review.py on the real Claude CLI against the fake Messages API: the epic's
reviewer sees the epic and its children's commits, has nothing to write with, and its
verdict (structured, or the text line) decides the epic's outcome."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bdp.agent.claude import ClaudeAgentRunner
from bdp.agent.session import SessionRequest, SessionResult
from bdp.agent.transcript import Transcript
from bdp.config import Settings
from bdp.models import Issue, Outcome
from bdp.redact import Redactor
from bdp.repo.epic_work import ChildWork, EpicBrief
from bdp.repo.epics import CHANGES_ASKED
from bdp.repo.locks import Holder, LockTable
from tests.support.fake_api import FakeApi, Text, ToolUse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EPIC = Issue(
    "t-ep",
    "Resumable uploads",
    "Uploads survive a crash.",
    acceptance_criteria="a killed upload resumes where it stopped",
    issue_type="epic",
)
BRIEF = EpicBrief(
    EPIC,
    (
        ChildWork(Issue("t-ep.1", "Chunked upload", status="closed"), ("1a2b3c4 t-ep.1: Chunks",)),
        ChildWork(Issue("t-ep.2", "Upload state file", status="closed")),
    ),
    change="diff --git a/upload.py b/upload.py\n+def resume(): ...\n",
    rounds=2,
)
ASKED = "Review the finished epic t-ep"


def review(tmp_path: Path, workdir: Path, brief: EpicBrief = BRIEF) -> SessionResult:
    transcript = Transcript(tmp_path / "run.log", Redactor([]))
    request = SessionRequest(
        "run-ep",
        EPIC,
        workdir,
        time.time() + 60,
        transcript,
        LockTable(tmp_path / "home", workdir),
        Holder.here("run-ep", EPIC.id),
        epic=brief,
    )
    try:
        return ClaudeAgentRunner(Settings(home=tmp_path / "home")).run(request)
    finally:
        transcript.close()


def test_findings_become_follow_ups_that_are_children_of_the_epic(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a reviewer that finds the resume path untested
    follow_up = {"title": "Test a killed upload resuming", "description": "kill it at 50%"}
    verdict = {
        "verdict": "CHANGES",
        "findings": "nothing tests a resume",
        "follow_ups": [follow_up],
    }
    api.script([ToolUse("StructuredOutput", verdict)], match=ASKED)

    # When the epic is reviewed
    result = review(tmp_path, workdir)

    # Then the outcome is FOLLOW_UPS, round 1 of 2, with the follow-up as a child of the epic
    assert result.outcome is Outcome.FOLLOW_UPS
    assert result.summary == f"{CHANGES_ASKED} (round 1 of 2): nothing tests a resume"
    assert result.verdict == "structured"
    [filed] = result.follow_ups
    assert (filed.title, filed.parent, filed.found_in) == (follow_up["title"], "t-ep", "t-ep")
    assert filed.description.startswith("kill it at 50%")
    assert "review of epic t-ep" in filed.description
    assert result.cost_usd > 0
    # And the reviewer was given the epic's criteria, each child, its commit and the change
    [asked] = api.messages_requests(match=ASKED)
    text = json.dumps(asked.body)
    for shown in ("a killed upload resumes", "t-ep.1", "1a2b3c4 t-ep.1: Chunks", "t-ep.2"):
        assert shown in text
    assert "+def resume(): ..." in text
    # And it was offered nothing to write or run commands with
    offered = {tool["name"] for tool in asked.body["tools"]}
    assert offered & {"Write", "Edit", "Bash", "NotebookEdit"} == set()
    assert {"Read", "Grep", "StructuredOutput"} <= offered


def test_an_approval_in_text_closes_the_epic(api: FakeApi, workdir: Path, tmp_path: Path) -> None:
    api.script([Text("Every criterion is met.\nAPPROVE")], match=ASKED)

    result = review(tmp_path, workdir)

    assert (result.outcome, result.verdict, result.follow_ups) == (Outcome.DONE, "text", ())


def test_findings_without_follow_ups_still_leave_the_epic_work_to_wait_for(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("CHANGES: the state file is never deleted")], match=ASKED)

    result = review(tmp_path, workdir)

    assert result.outcome is Outcome.FOLLOW_UPS
    [filed] = result.follow_ups
    assert filed.parent == "t-ep"
    assert "the state file is never deleted" in filed.description


def test_findings_in_the_last_round_go_to_a_person_and_file_nothing(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given an epic whose review asked for changes twice already (two rounds)
    earlier = tuple(f"bdp: FOLLOW_UPS: {CHANGES_ASKED} (round {n} of 2): x" for n in (1, 2))
    api.script([Text("CHANGES: still no resume test")], match=ASKED)

    # When it is reviewed again and still has findings
    result = review(tmp_path, workdir, replace(BRIEF, earlier=earlier))

    # Then the epic needs a person: BLOCKED, nothing filed, earlier findings shown to the reviewer
    assert result.outcome is Outcome.BLOCKED
    assert "a person decides" in result.summary
    assert result.follow_ups == ()
    asked = api.messages_requests(match=ASKED)[0]  # then the CLI's nudge to use the tool
    assert "Earlier reviews of this epic asked for" in json.dumps(asked.body)
