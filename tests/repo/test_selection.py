"""Unit tests for bdp/repo/selection.py: the scope of a run (--ids, --epic, --order) on top of
`bd ready`, against the bd stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.errors import ConfigError, UnknownIssue
from bdp.repo.beads import BdCli
from bdp.repo.selection import ReadyFilters, Scope, select
from tests.support.beads import bd_env, create_issue, run_bd_ok

T0, T1, T2 = "2026-05-01T09:00:00Z", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z"

pytestmark = pytest.mark.usefixtures("stand_in_bd")


def ids(repo: Path, filters: ReadyFilters, scope: Scope) -> list[str]:
    return [issue.id for issue in select(BdCli(repo), filters, scope).ready]


# --- Scope -------------------------------------------------------------------------------------


def test_scope_parses_a_comma_list_dropping_blanks_and_repeats() -> None:
    assert Scope.parse(" a, b,,a ", None, "input").ids == ("a", "b")
    assert Scope.parse(None, "e", "priority") == Scope((), "e", "priority")


@pytest.mark.parametrize(
    ("ids_given", "order", "message"),
    [
        (None, "input", "--order input needs --ids"),
        (" , ", "priority", "--ids names no issue"),
        ("a", "random", "unknown order 'random'"),
    ],
)
def test_scope_refuses_what_it_cannot_do(ids_given: str | None, order: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scope.parse(ids_given, None, order)


# --- select ------------------------------------------------------------------------------------


def test_epics_are_never_selected_even_when_bd_offers_them(repo: Path) -> None:
    create_issue(repo, "An epic", type="epic", priority=0)
    work = create_issue(repo, "Real work")
    assert ids(repo, ReadyFilters(), Scope()) == [work]


def test_the_limit_counts_only_what_is_selected(repo: Path) -> None:
    create_issue(repo, "An epic", type="epic", priority=0)
    work = create_issue(repo, "Real work", priority=1)
    create_issue(repo, "Later work", priority=3)
    assert ids(repo, ReadyFilters(limit=1), Scope()) == [work]


def test_ids_select_only_the_named_ready_issues_and_report_the_rest(repo: Path) -> None:
    # Given a ready issue, one that waits for it, and one nobody named
    base = create_issue(repo, "Base")
    waiting = create_issue(repo, "Waiting", deps=base)
    create_issue(repo, "Unnamed")

    # When both named issues are selected
    chosen = select(BdCli(repo), ReadyFilters(), Scope((waiting, base)))

    # Then only the ready one is taken, and the other is said not to be ready
    assert [issue.id for issue in chosen.ready] == [base]
    assert [issue.id for issue in chosen.not_ready] == [waiting]


def test_ids_given_short_are_matched_to_the_full_ids_bd_offers(repo: Path) -> None:
    issue_id = create_issue(repo, "Short")
    assert ids(repo, ReadyFilters(), Scope((issue_id.removeprefix("t-"),))) == [issue_id]


def test_an_id_bd_does_not_know_is_an_error_naming_it(repo: Path) -> None:
    known = create_issue(repo, "Known")
    with pytest.raises(UnknownIssue, match="'t-nope'"):
        select(BdCli(repo), ReadyFilters(), Scope((known, "t-nope")))


def test_order_input_queues_in_the_order_ids_lists_them(repo: Path) -> None:
    first = create_issue(repo, "Low", priority=4)
    second = create_issue(repo, "High", priority=0)
    assert ids(repo, ReadyFilters(), Scope((first, second), order="priority")) == [second, first]
    assert ids(repo, ReadyFilters(), Scope((first, second), order="input")) == [first, second]


def test_order_created_is_oldest_first_whatever_the_priority(repo: Path) -> None:
    made = []
    for stamp, priority in ((T0, 3), (T1, 0), (T2, 1)):
        at = {**bd_env(), "FAKE_BD_NOW": stamp}
        made.append(
            run_bd_ok(repo, "create", stamp, "-p", str(priority), "--silent", env=at).strip()
        )
    assert ids(repo, ReadyFilters(), Scope(order="created")) == made
    assert ids(repo, ReadyFilters(), Scope()) == [made[1], made[2], made[0]]


def test_an_epic_scope_selects_its_ready_descendants_at_every_depth(repo: Path) -> None:
    # Given an epic with a child and a grandchild, and an issue outside it
    epic = create_issue(repo, "Epic", type="epic")
    child = create_issue(repo, "Child", parent=epic)
    grandchild = create_issue(repo, "Grandchild", parent=child)
    create_issue(repo, "Outside")

    # Then the epic's scope holds both, and never the epic itself
    assert sorted(ids(repo, ReadyFilters(), Scope(epic=epic))) == sorted([child, grandchild])


def test_an_epic_scope_with_an_unknown_epic_is_an_error(repo: Path) -> None:
    with pytest.raises(UnknownIssue):
        select(BdCli(repo), ReadyFilters(), Scope(epic="t-nope"))


def test_a_named_epic_is_neither_selected_nor_reported_as_not_ready(repo: Path) -> None:
    epic = create_issue(repo, "Epic", type="epic")
    run_bd_ok(repo, "update", create_issue(repo, "Taken"), "--claim")
    chosen = select(BdCli(repo), ReadyFilters(), Scope((epic,)))
    assert (chosen.ready, chosen.not_ready) == ([], [])
