"""Unit tests for bdp/agent/prompt.py: the prompt an agent gets and how its verdict is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.agent.prompt import WORKFLOW, Verdict, build_prompt, parse_verdict, system_rules
from bdp.models import Issue, Outcome

FULL_ISSUE = Issue(
    id="proj-7x2",
    title="Add a --json flag to status",
    description="Scripts want machine-readable status.",
    design="Reuse the status query; print json.dumps of it.",
    acceptance_criteria="`bdp status --json` prints valid JSON.",
    notes="See proj-1ab for the table layout.",
)


def test_build_prompt_includes_every_part_of_the_issue(tmp_path: Path) -> None:
    prompt = build_prompt(FULL_ISSUE, tmp_path)

    assert "proj-7x2" in prompt
    assert str(tmp_path) in prompt
    assert "# proj-7x2: Add a --json flag to status" in prompt
    for heading, text in (
        ("Description", FULL_ISSUE.description),
        ("Design", FULL_ISSUE.design),
        ("Acceptance criteria", FULL_ISSUE.acceptance_criteria),
        ("Notes", FULL_ISSUE.notes),
    ):
        assert f"## {heading}\n{text}" in prompt


def test_build_prompt_puts_sections_in_a_fixed_order(tmp_path: Path) -> None:
    prompt = build_prompt(FULL_ISSUE, tmp_path)

    positions = [
        prompt.index(f"## {h}") for h in ("Description", "Design", "Acceptance criteria", "Notes")
    ]
    assert positions == sorted(positions)
    assert prompt.index("## Notes") < prompt.index(WORKFLOW)


def test_build_prompt_omits_empty_and_blank_sections(tmp_path: Path) -> None:
    issue = Issue(id="proj-1", title="Only a title", description="Do it.", notes="  \n\t ")

    prompt = build_prompt(issue, tmp_path)

    assert "## Description\nDo it." in prompt
    assert "## Design" not in prompt
    assert "## Acceptance criteria" not in prompt
    assert "## Notes" not in prompt


def test_build_prompt_strips_surrounding_whitespace_from_sections(tmp_path: Path) -> None:
    issue = Issue(id="proj-1", title="t", description="\n\n  Body line.  \n\n")

    assert "## Description\nBody line.\n" in build_prompt(issue, tmp_path)


def test_build_prompt_ends_with_the_workflow(tmp_path: Path) -> None:
    prompt = build_prompt(Issue(id="proj-1", title="t"), tmp_path)

    assert prompt.endswith(WORKFLOW)
    assert "DONE: <one-line summary" in prompt
    assert "BLOCKED: <one-line reason>" in prompt


def test_system_rules_name_the_issue_for_discovered_work() -> None:
    rules = system_rules(FULL_ISSUE)

    assert "mcp__bdp__file_issue" in rules
    assert "(bdp links it to proj-7x2)" in rules
    assert "{issue_id}" not in rules


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
