"""Unit tests for bdp/repo/beads.py: `BdCli` driving the bd stand-in as a real subprocess."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bdp.errors import BeadsError, RepoError, UnknownIssue
from bdp.models import Issue
from bdp.repo.beads import BdCli, FollowUp, ReadyFilters, _as_list
from tests.support.beads import create_issue, run_bd_ok, show_issue

#: Longer than any id hash the stand-in makes, so it never resolves as a substring.
UNKNOWN_ID = "t-zzzzzzzzz"
ME = "bdp/test/worker-1"

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture
def bd(repo: Path) -> BdCli:
    return BdCli(repo)


@pytest.fixture
def bd_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[], list[list[str]]]:
    """Turn on the stand-in's call log; the returned function reads the argv of every call."""
    path = tmp_path / "bd-calls.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(path))

    def calls() -> list[list[str]]:
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line)["argv"] for line in lines]

    return calls


def comments_of(repo: Path, issue_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(run_bd_ok(repo, "comments", issue_id, "--json"))
    return found


# --- ready --------------------------------------------------------------------------------------


def test_ready_returns_typed_issues_with_description_acceptance_and_notes(
    bd: BdCli, repo: Path
) -> None:
    issue_id = create_issue(
        repo,
        "Add retries",
        description="Retry the uploader",
        acceptance="tests pass",
        notes="see RFC 7",
        design="backoff",
        priority=1,
        type="bug",
        labels=["backend", "io"],
    )

    assert bd.ready(ReadyFilters()) == [
        Issue(
            id=issue_id,
            title="Add retries",
            description="Retry the uploader",
            acceptance_criteria="tests pass",
            notes="see RFC 7",
            design="backoff",
            status="open",
            priority=1,
            issue_type="bug",
            assignee="",
            labels=("backend", "io"),
        )
    ]


def test_ready_of_an_empty_backlog_is_an_empty_list(bd: BdCli) -> None:
    assert bd.ready(ReadyFilters()) == []


def test_ready_leaves_out_claimed_and_closed_issues(bd: BdCli, repo: Path) -> None:
    # Given one open, one claimed and one closed issue
    open_id = create_issue(repo, "open one")
    claimed = create_issue(repo, "claimed one")
    closed = create_issue(repo, "closed one")
    run_bd_ok(repo, "update", claimed, "--claim", "--actor", "other")
    run_bd_ok(repo, "close", closed)

    # Then only the open one is ready
    assert [issue.id for issue in bd.ready(ReadyFilters())] == [open_id]


def test_ready_asks_bd_once_for_all_issues_without_a_limit(
    bd: BdCli, repo: Path, bd_log: Callable[[], list[list[str]]]
) -> None:
    bd.ready(ReadyFilters())

    assert bd_log() == [["ready", "--json", "--limit", "0"]]


def test_ready_passes_priority_labels_type_and_limit_through_to_bd(
    bd: BdCli, repo: Path, bd_log: Callable[[], list[list[str]]]
) -> None:
    # Given issues that each miss one of the filters, and one that matches them all
    wanted = create_issue(repo, "match", priority=1, labels=["api", "db"], type="bug")
    create_issue(repo, "wrong priority", priority=2, labels=["api", "db"], type="bug")
    create_issue(repo, "one label only", priority=1, labels=["api"], type="bug")
    create_issue(repo, "wrong type", priority=1, labels=["api", "db"], type="task")
    filters = ReadyFilters(limit=5, priority=1, labels=("api", "db"), issue_type="bug")
    already_logged = len(bd_log())

    # When
    found = bd.ready(filters)

    # Then bd was asked once, with every filter, and only the match came back
    assert bd_log()[already_logged:] == [
        [
            "ready",
            "--json",
            "--limit",
            "5",
            "--priority",
            "1",
            "--label",
            "api",
            "--label",
            "db",
            "--type",
            "bug",
        ]
    ]
    assert [issue.id for issue in found] == [wanted]


def test_ready_priority_zero_is_passed_rather_than_dropped(
    bd: BdCli, bd_log: Callable[[], list[list[str]]]
) -> None:
    bd.ready(ReadyFilters(priority=0))

    assert bd_log() == [["ready", "--json", "--limit", "0", "--priority", "0"]]


def test_ready_limit_caps_the_number_of_issues(bd: BdCli, repo: Path) -> None:
    for number in range(3):
        create_issue(repo, f"issue {number}")

    assert len(bd.ready(ReadyFilters(limit=2))) == 2
    assert len(bd.ready(ReadyFilters(limit=0))) == 3


# --- show -------------------------------------------------------------------------------------


def test_show_returns_the_issue_with_its_current_status_and_assignee(bd: BdCli, repo: Path) -> None:
    issue_id = create_issue(repo, "Shown", description="body")
    run_bd_ok(repo, "update", issue_id, "--claim", "--actor", "alice")

    issue = bd.show(issue_id)

    assert (issue.id, issue.title, issue.description) == (issue_id, "Shown", "body")
    assert (issue.status, issue.assignee) == ("in_progress", "alice")


# --- claim ------------------------------------------------------------------------------------


def test_claim_of_an_open_unassigned_issue_is_won_and_assigns_it(bd: BdCli, repo: Path) -> None:
    issue_id = create_issue(repo, "free", description="Say hello")

    claim = bd.claim(issue_id, ME)

    assert (claim.won, claim.reason) == (True, "")
    shown = show_issue(repo, issue_id)
    assert (shown["status"], shown["assignee"]) == ("in_progress", ME)
    # And the claim hands back the issue as bd re-read it, so no `bd show` is needed
    assert claim.issue is not None
    assert (claim.issue.id, claim.issue.title, claim.issue.description) == (
        issue_id,
        "free",
        "Say hello",
    )
    assert claim.issue.assignee == ME


def test_claim_of_an_issue_another_actor_holds_is_lost_with_bds_reason(
    bd: BdCli, repo: Path
) -> None:
    # Given an issue claimed by someone else
    issue_id = create_issue(repo, "taken")
    run_bd_ok(repo, "update", issue_id, "--claim", "--actor", "other")

    # When we try to claim it
    claim = bd.claim(issue_id, ME)

    # Then the claim is lost, the reason is bd's without its prefix, and the holder is unchanged
    assert claim.won is False
    assert claim.reason == "issue already claimed by other"
    assert show_issue(repo, issue_id)["assignee"] == "other"


def test_claim_of_a_closed_issue_is_lost_as_not_claimable(bd: BdCli, repo: Path) -> None:
    issue_id = create_issue(repo, "finished")
    run_bd_ok(repo, "close", issue_id)

    claim = bd.claim(issue_id, ME)

    assert claim.won is False
    assert "not claimable" in claim.reason
    assert show_issue(repo, issue_id)["status"] == "closed"


def test_claim_by_the_actor_already_holding_the_issue_is_won_again(bd: BdCli, repo: Path) -> None:
    issue_id = create_issue(repo, "mine")
    assert bd.claim(issue_id, ME).won

    assert bd.claim(issue_id, ME).won
    assert show_issue(repo, issue_id)["assignee"] == ME


# --- close, reset, comment --------------------------------------------------------------------


def test_close_sets_the_status_closed_with_the_reason(bd: BdCli, repo: Path) -> None:
    issue_id = create_issue(repo, "to close")
    bd.claim(issue_id, ME)

    bd.close(issue_id, "Added the retry wrapper", ME)

    shown = show_issue(repo, issue_id)
    assert (shown["status"], shown["close_reason"]) == ("closed", "Added the retry wrapper")


def test_reset_makes_a_claimed_issue_open_unassigned_and_ready_again(bd: BdCli, repo: Path) -> None:
    issue_id = create_issue(repo, "to reset")
    bd.claim(issue_id, ME)

    bd.reset(issue_id, ME)

    shown = show_issue(repo, issue_id)
    assert shown["status"] == "open"
    assert not shown.get("assignee")
    assert [issue.id for issue in bd.ready(ReadyFilters())] == [issue_id]


@pytest.mark.parametrize(
    "text",
    [
        "plain words",
        "-starts with a dash",
        "--json --actor mallory",
        "--",
        "two\nlines  and  double spaces ",
        "bdp: FAILED on attempt 2: tests failed. Log: /x/y.log",
    ],
)
def test_comment_stores_the_text_verbatim(bd: BdCli, repo: Path, text: str) -> None:
    issue_id = create_issue(repo, "commented")

    bd.comment(issue_id, text, ME)

    comments = comments_of(repo, issue_id)
    assert [(c["text"], c["author"]) for c in comments] == [(text, ME)]


# --- errors -----------------------------------------------------------------------------------

CALLS: dict[str, Callable[[BdCli, str], object]] = {
    "show": lambda bd, issue_id: bd.show(issue_id),
    "claim": lambda bd, issue_id: bd.claim(issue_id, ME),
    "close": lambda bd, issue_id: bd.close(issue_id, "done", ME),
    "reset": lambda bd, issue_id: bd.reset(issue_id, ME),
    "comment": lambda bd, issue_id: bd.comment(issue_id, "hello", ME),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_an_unknown_issue_id_raises_unknown_issue(bd: BdCli, repo: Path, call: str) -> None:
    create_issue(repo, "some other issue")

    with pytest.raises(UnknownIssue, match=UNKNOWN_ID):
        CALLS[call](bd, UNKNOWN_ID)


@pytest.fixture
def no_workspace(tmp_path: Path) -> Path:
    """A git repository without a .beads workspace."""
    path = tmp_path / "bare"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    return path


WORKSPACE_CALLS: dict[str, Callable[[BdCli, str], object]] = {
    "ready": lambda bd, _issue_id: bd.ready(ReadyFilters()),
    **CALLS,
}


@pytest.mark.parametrize("call", sorted(WORKSPACE_CALLS))
def test_a_repo_without_a_workspace_raises_repo_error_suggesting_bd_init(
    no_workspace: Path, call: str
) -> None:
    bd = BdCli(no_workspace)

    with pytest.raises(RepoError) as raised:
        WORKSPACE_CALLS[call](bd, "t-abc")

    assert "`bd init`" in str(raised.value)
    assert str(no_workspace) in raised.value.message


def test_a_missing_bd_binary_raises_beads_error_naming_bdp_bd(repo: Path) -> None:
    bd = BdCli(repo, bd="/nonexistent/bd")

    with pytest.raises(BeadsError) as raised:
        bd.ready(ReadyFilters())

    assert "/nonexistent/bd" in raised.value.message
    assert "BDP_BD" in raised.value.hint


def test_a_failing_bd_command_raises_beads_error_with_bds_message(
    bd: BdCli, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue_id = create_issue(repo, "cannot close")
    monkeypatch.setenv("FAKE_BD_FAIL", "close")

    with pytest.raises(BeadsError, match="simulated failure") as raised:
        bd.close(issue_id, "done", ME)

    assert not isinstance(raised.value, UnknownIssue | RepoError)


# --- _as_list ---------------------------------------------------------------------------------

ONE = {"id": "t-1", "title": "one"}
TWO = {"id": "t-2", "title": "two"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param([ONE, TWO], [ONE, TWO], id="raw array"),
        pytest.param([], [], id="empty array"),
        pytest.param({"data": [ONE, TWO], "schema_version": 1}, [ONE, TWO], id="data envelope"),
        pytest.param({"items": [ONE]}, [ONE], id="items object"),
        pytest.param({"data": ONE}, [ONE], id="envelope of one object"),
        pytest.param(ONE, [ONE], id="single object"),
        pytest.param([ONE, "junk", 3, None], [ONE], id="non-objects dropped"),
    ],
)
def test_as_list_unwraps_every_list_shape_bd_prints(
    payload: object, expected: list[dict[str, str]]
) -> None:
    assert _as_list(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"title": "no id"}, id="object without id"),
        pytest.param("text", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param({"data": "text"}, id="envelope of a string"),
    ],
)
def test_as_list_rejects_other_shapes_with_beads_error(payload: object) -> None:
    with pytest.raises(BeadsError, match="unexpected shape"):
        _as_list(payload)


# --- work leases (bd 1.3+) and in-progress listing ---------------------------------------------


def test_lease_renewal_stops_asking_a_bd_without_leases(
    bd: BdCli, repo: Path, bd_log: Callable[[], list[list[str]]]
) -> None:
    issue_id = create_issue(repo, "Long job")
    assert bd.claim(issue_id, "bdp/h/w").won

    for _ in range(3):
        bd.renew_lease(issue_id, "bdp/h/w")

    heartbeats = [argv for argv in bd_log() if argv[0] == "heartbeat"]
    assert len(heartbeats) == 1  # "unknown command" once, then never again


def test_lease_renewal_reaches_a_bd_with_leases(
    bd: BdCli, repo: Path, bd_log: Callable[[], list[list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BD_LEASES", "1")
    issue_id = create_issue(repo, "Long job")
    assert bd.claim(issue_id, "bdp/h/w").won

    bd.renew_lease(issue_id, "bdp/h/w")
    bd.renew_lease(issue_id, "bdp/h/w")

    renewals = [argv for argv in bd_log() if argv[0] == "heartbeat"]
    assert len(renewals) == 2
    assert all(issue_id in argv and "bdp/h/w" in argv for argv in renewals)
    store = json.loads((repo / ".beads" / "issues.json").read_text())
    assert store["issues"][issue_id]["lease_renewed_at"]  # the stand-in accepted the renewal


def test_in_progress_lists_claimed_issues_only(bd: BdCli, repo: Path) -> None:
    claimed = create_issue(repo, "Taken")
    create_issue(repo, "Free")
    assert bd.claim(claimed, "bdp/h/w").won

    found = bd.in_progress()

    assert [(i.id, i.assignee) for i in found] == [(claimed, "bdp/h/w")]
    assert found[0].updated_at.endswith("Z")


def test_file_creates_a_follow_up_discovered_from_the_issue(bd: BdCli, repo: Path) -> None:
    found_in = create_issue(repo, "Build the parser")
    follow_up = FollowUp(found_in, "Parser errors", "say where; it's a 'bug'", "bug", 1)

    new_id = bd.file(follow_up, "agent-1")

    shown = show_issue(repo, new_id)
    assert (shown["title"], shown["issue_type"], shown["priority"]) == ("Parser errors", "bug", 1)
    assert shown["description"] == "say where; it's a 'bug'"
    edges = [(edge["id"], edge["dependency_type"]) for edge in shown["dependencies"]]  # type: ignore[attr-defined]
    assert edges == [(found_in, "discovered-from")]


def test_oversized_close_reasons_and_comments_are_cut_not_refused(bd: BdCli, repo: Path) -> None:
    # a 200 KB summary would be an argument the kernel refuses (E2BIG)
    issue_id = create_issue(repo, "Big talker")
    huge = "x" * 200_000

    bd.comment(issue_id, huge, "agent-1")
    bd.close(issue_id, huge, "agent-1")

    shown = show_issue(repo, issue_id)
    assert shown["status"] == "closed"
    assert len(str(shown["close_reason"])) <= 2_000
    assert str(shown["close_reason"]).endswith("the run's log has the whole text)")
    [comment] = json.loads(run_bd_ok(repo, "comments", issue_id, "--json"))
    assert len(comment["text"]) <= 16_000
