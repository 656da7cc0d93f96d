"""Unit tests for bdp/agent/report.py: how the agent's verdict is read, structured or text."""

from __future__ import annotations

import pytest

from bdp.agent.report import REPORT_SCHEMA, Verdict, output_format, parse_verdict, read_verdict
from bdp.models import Outcome
from bdp.repo.beads import FollowUp

# -- parse_verdict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("DONE: added the flag", Verdict(Outcome.DONE, "added the flag"), id="done"),
        pytest.param(
            "BLOCKED: needs a product decision",
            Verdict(Outcome.BLOCKED, "needs a product decision"),
            id="blocked",
        ),
        pytest.param(
            "I changed cli.py.\nTests pass.\n\nDONE: added --json\n\n   \n",
            Verdict(Outcome.DONE, "added --json"),
            id="after-prose-and-trailing-blank-lines",
        ),
        pytest.param("**DONE**: added it", Verdict(Outcome.DONE, "added it"), id="bold-word"),
        pytest.param("**DONE: added it**", Verdict(Outcome.DONE, "added it"), id="bold-line"),
        pytest.param("`DONE: added it`", Verdict(Outcome.DONE, "added it"), id="backticks"),
        pytest.param("- DONE: listed", Verdict(Outcome.DONE, "listed"), id="list-bullet"),
        pytest.param("## DONE: heading", Verdict(Outcome.DONE, "heading"), id="heading"),
        pytest.param("DONE - dashed", Verdict(Outcome.DONE, "dashed"), id="hyphen"),
        pytest.param("DONE \u2014 em dash", Verdict(Outcome.DONE, "em dash"), id="em-dash"),
        pytest.param("DONE", Verdict(Outcome.DONE, "done"), id="bare-done"),
        pytest.param("BLOCKED", Verdict(Outcome.BLOCKED, "no reason given"), id="bare-blocked"),
    ],
)
def test_parse_verdict_reads_the_last_non_empty_line(text: str, expected: Verdict) -> None:
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="no-text"),
        pytest.param("", id="empty"),
        pytest.param("\n  \n", id="blank"),
        pytest.param("I fixed the bug and the tests pass.", id="absent"),
        pytest.param("DONE: fixed it\nLet me know if you need more.", id="not-on-the-last-line"),
        pytest.param("BLOCKED: unsure\nActually, DONE", id="verdict-mid-line"),
        pytest.param("done: fixed it", id="lowercase"),
        pytest.param("DONEZO: fixed", id="longer-word"),
        pytest.param("I am not DONE: still working", id="prose-before-the-word"),
    ],
)
def test_parse_verdict_returns_none_without_a_verdict_on_the_last_line(text: str | None) -> None:
    assert parse_verdict(text) is None


def test_a_summary_ending_in_inline_code_keeps_its_closing_backtick() -> None:
    verdict = parse_verdict("DONE: updated `foo.py`")

    assert verdict == Verdict(Outcome.DONE, "updated `foo.py`")


def test_a_bold_label_with_the_colon_inside_gives_a_clean_summary() -> None:
    verdict = parse_verdict("**BLOCKED:** no access to the API")

    assert verdict == Verdict(Outcome.BLOCKED, "no access to the API")


def test_a_bold_label_with_the_colon_inside_is_still_read_as_a_verdict() -> None:
    verdict = parse_verdict("**BLOCKED:** no access to the API")

    assert verdict is not None
    assert verdict.outcome is Outcome.BLOCKED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "ALREADY_DONE: 1a2b3c4d added it last week",
            Verdict(Outcome.ALREADY_DONE, "1a2b3c4d added it last week", commit="1a2b3c4d"),
            id="already-done-cites-its-commit",
        ),
        pytest.param(
            "OBSOLETE: the module was removed",
            Verdict(Outcome.OBSOLETE, "the module was removed"),
            id="obsolete",
        ),
    ],
)
def test_the_text_line_can_say_no_code_is_needed(text: str, expected: Verdict) -> None:
    assert parse_verdict(text) == expected


# -- the structured report -----------------------------------------------------------------


def test_the_session_is_asked_for_a_report_in_the_schema() -> None:
    asked = output_format()

    assert asked == {"type": "json_schema", "schema": REPORT_SCHEMA}
    assert set(REPORT_SCHEMA["required"]) == {"outcome", "summary"}
    assert "OBSOLETE" in REPORT_SCHEMA["properties"]["outcome"]["enum"]


def test_a_structured_report_wins_over_the_text_and_says_so() -> None:
    report = {"outcome": "DONE", "summary": "added the flag"}

    verdict = read_verdict(report, "BLOCKED: something else")

    assert verdict == Verdict(Outcome.DONE, "added the flag", source="structured")


def test_without_a_usable_report_the_text_line_decides() -> None:
    for report in (None, "DONE", {"outcome": "MAYBE"}, {"outcome": "FAILED", "summary": "x"}):
        verdict = read_verdict(report, "BLOCKED: needs a decision")
        assert verdict == Verdict(Outcome.BLOCKED, "needs a decision", source="text")
    assert read_verdict(None, "no verdict here") is None


def test_a_report_joins_the_reason_and_keeps_the_cited_commit() -> None:
    blocked = read_verdict({"outcome": "blocked", "summary": "", "reason": "no API key"}, None)
    cited = read_verdict({"outcome": "ALREADY_DONE", "summary": "s", "commit": "abc1234"}, None)

    assert blocked is not None
    assert (blocked.outcome, blocked.summary) == (Outcome.BLOCKED, "no API key")
    assert cited is not None
    assert cited.commit == "abc1234"


def test_follow_ups_in_a_report_become_follow_ups_of_the_issue() -> None:
    report = {
        "outcome": "DONE",
        "summary": "s",
        "follow_ups": [
            {"title": "Document the flag", "description": "In the README.\nBoth forms."},
            {"title": "Fix the typo", "issue_type": "bug", "priority": 1},
            {"title": "   "},
            {"title": "Odd", "issue_type": "epic", "priority": 9},
            "not an object",
        ],
    }

    verdict = read_verdict(report, None)

    assert verdict is not None
    assert verdict.follow_ups == (
        FollowUp("", "Document the flag", "In the README.\nBoth forms."),
        FollowUp("", "Fix the typo", issue_type="bug", priority=1),
        FollowUp("", "Odd"),
    )
