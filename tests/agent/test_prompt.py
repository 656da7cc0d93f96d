"""Unit tests for bdp/agent/prompt.py: the prompt an agent gets."""

from __future__ import annotations

from pathlib import Path

from bdp.agent.prompt import RULES, WORKFLOW, build_prompt, review_prompt
from bdp.models import Issue

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
    assert "StructuredOutput tool" in prompt
    assert "DONE: <summary>, BLOCKED: <reason>" in prompt


def test_the_system_rules_ask_for_follow_ups_and_name_no_session_of_their_own() -> None:
    assert "follow_ups" in RULES
    assert "discovered from the issue you work on" in RULES
    assert "{" not in RULES  # nothing is formatted in: the same text for every session


def test_a_review_of_a_claim_shows_the_claim_instead_of_an_empty_diff() -> None:
    claim = "ALREADY_DONE: the flag exists (commit 1a2b3c4)"

    with_claim = review_prompt(FULL_ISSUE, "", claim)
    with_diff = review_prompt(FULL_ISSUE, "+x = 1")

    assert claim in with_claim
    assert "```diff" not in with_claim
    assert "```diff\n+x = 1\n```" in with_diff
    assert claim not in with_diff
