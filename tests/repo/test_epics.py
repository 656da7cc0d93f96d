"""Unit tests for bdp/repo/epics.py: which epics are finished, and closing them.

The logic runs on `MemoryBeads`; `BdCli`'s epic queries run against the bd stand-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bdp.errors import BeadsError, UnknownIssue
from bdp.models import Issue
from bdp.repo.beads import BdCli
from bdp.repo.epics import (
    EpicProgress,
    close_open_epics,
    close_parents,
    progress_of,
    to_close,
)
from bdp.repo.memory_beads import MemoryBeads
from tests.support.beads import bd_calls, create_issue, run_bd_ok, show_issue

ME = "bdp/test/worker-1"


def epic(issue_id: str, status: str = "open", parent: str = "") -> Issue:
    return Issue(issue_id, f"epic {issue_id}", status=status, issue_type="epic", parent=parent)


def task(issue_id: str, parent: str, status: str = "open") -> Issue:
    return Issue(issue_id, f"task {issue_id}", status=status, parent=parent)


class CountingBeads(MemoryBeads):
    """MemoryBeads that counts the calls closing epics makes."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(issues)
        self.calls: list[str] = []

    def show(self, issue_id: str) -> Issue:
        self.calls.append(f"show {issue_id}")
        return super().show(issue_id)

    def epics(self, epic_ids: Sequence[str] = ()) -> list[EpicProgress]:
        self.calls.append(f"epics {' '.join(epic_ids)}".strip())
        return super().epics(epic_ids)


# --- what is finished --------------------------------------------------------------------------


def test_an_epic_is_finished_when_it_is_open_and_every_child_is_closed() -> None:
    children = (task("e.1", "e", "closed"), task("e.2", "e", "closed"))
    assert EpicProgress(epic("e"), children).finished()
    assert not EpicProgress(epic("e"), (*children, task("e.3", "e"))).finished()
    assert not EpicProgress(epic("e", "closed"), children).finished()
    assert not EpicProgress(epic("e"), ()).finished()  # no children: nothing was done


def test_the_close_reason_lists_the_children() -> None:
    children = (task("x.1", "x", "closed"), task("x.2", "x", "closed"))
    assert EpicProgress(epic("x"), children).close_reason() == "all 2 children closed: x.1, x.2"
    one = EpicProgress(epic("y"), (task("y.1", "y", "closed"),))
    assert one.close_reason() == "all 1 child closed: y.1"


def test_progress_comes_from_the_parent_child_dependents_of_bd_show() -> None:
    shown = {
        "id": "e",
        "title": "Uploader",
        "issue_type": "epic",
        "status": "open",
        "dependents": [
            {"id": "e.1", "status": "closed", "dependency_type": "parent-child"},
            {"id": "e.2", "status": "open", "dependency_type": "parent-child"},
            {"id": "f", "status": "open", "dependency_type": "blocks"},
        ],
    }
    progress = EpicProgress.from_json(shown)
    assert [c.id for c in progress.children] == ["e.1", "e.2"]
    assert (progress.done, progress.total) == (1, 2)
    assert progress.to_json() == {"id": "e", "title": "Uploader", "done": 1, "total": 2}


def test_progress_of_a_listing_counts_each_open_epics_children() -> None:
    issues = [
        epic("e"),
        task("e.1", "e", "closed"),
        task("e.2", "e"),
        epic("done", "closed"),
        task("done.1", "done", "closed"),
        epic("empty"),
        task("loose", ""),
    ]
    found = {p.issue.id: (p.done, p.total) for p in progress_of(issues)}
    assert found == {"e": (1, 2)}


def test_an_epic_whose_last_open_child_is_a_finished_epic_closes_in_the_same_pass() -> None:
    outer = EpicProgress(epic("o"), (task("o.1", "o", "closed"), epic("o.2", parent="o")))
    inner = EpicProgress(epic("o.2", parent="o"), (task("o.2.1", "o.2", "closed"),))
    other = EpicProgress(epic("p"), (task("p.1", "p"),))
    assert [e.issue.id for e in to_close([outer, inner, other])] == ["o.2", "o"]


# --- closing after a close ---------------------------------------------------------------------


def test_closing_the_last_open_child_closes_its_epic_with_the_children_listed() -> None:
    beads = MemoryBeads([epic("e"), task("e.1", "e", "closed"), task("e.2", "e", "closed")])
    assert close_parents(beads, beads.show("e.2"), ME) == ["e"]
    assert beads.issues["e"].status == "closed"
    assert beads.close_reasons["e"] == "all 2 children closed: e.1, e.2"


def test_closing_a_child_while_another_is_open_leaves_the_epic_open() -> None:
    beads = MemoryBeads([epic("e"), task("e.1", "e", "closed"), task("e.2", "e")])
    assert close_parents(beads, beads.show("e.1"), ME) == []
    assert beads.issues["e"].status == "open"


def test_a_finished_epic_inside_a_finished_epic_closes_both() -> None:
    beads = MemoryBeads([epic("o"), epic("o.1", parent="o"), task("o.1.1", "o.1", "closed")])
    assert close_parents(beads, beads.show("o.1.1"), ME) == ["o.1", "o"]


def test_a_parent_that_is_not_an_epic_is_left_open() -> None:
    beads = MemoryBeads([Issue("f", "a feature"), task("f.1", "f", "closed")])
    assert close_parents(beads, beads.show("f.1"), ME) == []
    assert beads.issues["f"].status == "open"


def test_an_issue_without_a_known_parent_costs_one_show_and_nothing_more() -> None:
    beads = CountingBeads([task("lone", "", "closed")])
    claimed_answer = Issue("lone", "lone")  # what a claim returns: no parent field
    assert close_parents(beads, claimed_answer, ME) == []
    assert beads.calls == ["show lone"]


def test_closing_an_already_closed_epic_again_is_harmless() -> None:
    beads = MemoryBeads([epic("e", "closed"), task("e.1", "e", "closed")])
    assert close_parents(beads, beads.show("e.1"), ME) == []
    assert close_open_epics(beads, ME) == []


def test_memory_beads_like_bd_refuses_to_close_an_epic_with_open_children() -> None:
    beads = MemoryBeads([epic("e"), task("e.1", "e")])
    with pytest.raises(BeadsError, match="1 open child issue"):
        beads.close("e", "too soon", ME)


# --- the janitor's backstop --------------------------------------------------------------------


def test_close_open_epics_closes_only_the_finished_ones() -> None:
    beads = MemoryBeads(
        [epic("a"), task("a.1", "a", "closed"), epic("b"), task("b.1", "b"), epic("c")]
    )
    assert close_open_epics(beads, ME) == ["a"]
    assert [beads.issues[i].status for i in "abc"] == ["closed", "open", "open"]


class RefusesFirst(MemoryBeads):
    def close(self, issue_id: str, reason: str, actor: str) -> None:
        if issue_id == "a":
            raise BeadsError("bd could not close a: database is locked")
        super().close(issue_id, reason, actor)


def test_a_refused_epic_close_does_not_stop_the_others() -> None:
    beads = RefusesFirst(
        [epic("a"), task("a.1", "a", "closed"), epic("b"), task("b.1", "b", "closed")]
    )
    assert close_open_epics(beads, ME) == ["b"]


# --- BdCli against the stand-in ----------------------------------------------------------------


@pytest.mark.usefixtures("stand_in_bd")
def test_bdcli_epics_lists_open_epics_with_their_children_in_two_bd_calls(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two epics, one with a closed and an open child, and one closed epic
    first = create_issue(repo, "First", type="epic")
    done_child = create_issue(repo, "Done part", parent=first)
    create_issue(repo, "Open part", parent=first)
    second = create_issue(repo, "Second", type="epic")
    run_bd_ok(repo, "close", done_child)
    run_bd_ok(repo, "close", create_issue(repo, "Old", type="epic"))
    log = tmp_path / "bd.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(log))

    # When BdCli lists the open epics
    found = {e.issue.id: e for e in BdCli(repo).epics()}

    # Then both open ones come with their children, from one list and one show
    assert sorted(found) == sorted([first, second])
    assert (found[first].done, found[first].total) == (1, 2)
    assert found[second].total == 0
    assert [argv[0] for argv in bd_calls(log)] == ["list", "show"]


@pytest.mark.usefixtures("stand_in_bd")
def test_bdcli_closes_an_epic_through_close_parents(repo: Path) -> None:
    parent = create_issue(repo, "Parent", type="epic")
    child = create_issue(repo, "Only child", parent=parent)
    bd = BdCli(repo)
    bd.close(child, "done", ME)
    assert close_parents(bd, bd.show(child), ME) == [parent]
    assert show_issue(repo, parent)["close_reason"] == f"all 1 child closed: {child}"


@pytest.mark.usefixtures("stand_in_bd")
def test_bdcli_show_many_resolves_each_id_and_names_the_unknown_ones(repo: Path) -> None:
    known = create_issue(repo, "Known")
    bd = BdCli(repo)
    assert [i.id for i in bd.show_many([known.removeprefix("t-")])] == [known]
    with pytest.raises(UnknownIssue, match="'t-nope'"):
        bd.show_many([known, "t-nope"])
    with pytest.raises(UnknownIssue, match="'t-nope', 't-gone'"):
        bd.show_many(["t-nope", "t-gone"])


@pytest.mark.usefixtures("stand_in_bd")
def test_bdcli_everything_lists_closed_issues_with_their_parents(repo: Path) -> None:
    parent = create_issue(repo, "Parent", type="epic")
    child = create_issue(repo, "Child", parent=parent)
    run_bd_ok(repo, "close", child)
    parents = {issue.id: issue.parent for issue in BdCli(repo).everything()}
    assert parents == {parent: "", child: parent}


# --- an issue's parent, from each shape bd prints ----------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"id": "e.1", "parent": "e"},  # bd 1.x list, ready and show
        {"id": "e.1", "dependencies": [{"depends_on_id": "e", "type": "parent-child"}]},
        {"id": "e.1", "dependencies": [{"id": "e", "dependency_type": "parent-child"}]},
    ],
)
def test_an_issue_knows_its_parent_from_the_field_or_a_parent_child_dependency(
    data: dict[str, object],
) -> None:
    assert Issue.from_json(data).parent == "e"


def test_an_issue_with_only_blocking_dependencies_has_no_parent() -> None:
    data = {"id": "x", "dependencies": [{"depends_on_id": "y", "type": "blocks"}]}
    assert Issue.from_json(data).parent == ""
