"""The `bd` stand-in (tests/support/fake_bd.py) keeps the bd 1.0.5 contract bdp relies on.

Every test runs the stand-in as a real subprocess found on PATH, in a tmp_path workspace.
"""

import json
import re
import shutil
import stat
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.beads import (
    BD_TIMEOUT,
    BIN_DIR,
    bd_env,
    create_issue,
    init_workspace,
    run_bd,
    show_issue,
)

T0 = "2026-05-01T09:00:00Z"
T1 = "2026-05-01T10:00:00Z"
NO_DATABASE = (
    "Error: no beads database found\n"
    "Hint: run 'bd where' to inspect the resolved workspace, or 'bd init' to create a new"
    " database\n"
    "      or set BEADS_DIR to point to your .beads directory\n"
)
EDGE_KEYS = ["issue_id", "depends_on_id", "type", "created_at", "created_by", "metadata"]


@dataclass
class Bd:
    """Runs the stand-in in one workspace with a fixed actor."""

    repo: Path
    env: dict[str, str]

    def __call__(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return run_bd(self.repo, *args, env={**self.env, **extra_env})

    def json(self, *args: str, **extra_env: str) -> Any:
        done = self(*args, "--json", **extra_env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def create(self, title: str, *flags: str, **extra_env: str) -> str:
        return str(self.json("create", title, *flags, **extra_env)["id"])

    def titles(self, *args: str, **extra_env: str) -> list[str]:
        return [item["title"] for item in self.json(*args, **extra_env)]

    def show(self, issue_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = self.json("show", issue_id)
        return found[0]


@pytest.fixture
def env() -> dict[str, str]:
    return {**bd_env(), "BD_ACTOR": "tester"}


@pytest.fixture
def bd(tmp_path: Path, env: dict[str, str]) -> Bd:
    repo = tmp_path / "repo"
    init_workspace(repo)
    return Bd(repo, env)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory with no workspace; its `.git` stops the upward search right there."""
    path = tmp_path / "elsewhere"
    (path / ".git").mkdir(parents=True)
    return path


def spawn_all(bd: Bd, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """Start every command at once, then collect (exit code, stdout, stderr) of each."""
    procs = [
        subprocess.Popen(
            ["bd", *command],
            cwd=bd.repo,
            env=bd.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    results = []
    for proc in procs:
        with proc:
            out, err = proc.communicate(timeout=BD_TIMEOUT)
        results.append((proc.returncode, out, err))
    return results


# --- workspace discovery and init ---------------------------------------------------------------


def test_no_workspace_prints_the_three_line_hint_and_exits_1(
    outside: Path, env: dict[str, str]
) -> None:
    done = run_bd(outside, "ready", "--json", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", NO_DATABASE)


def test_beads_dir_env_selects_the_workspace_from_anywhere(
    bd: Bd, outside: Path, env: dict[str, str]
) -> None:
    bd.create("far away")
    done = run_bd(outside, "list", "--json", env={**env, "BEADS_DIR": str(bd.repo / ".beads")})
    assert [item["title"] for item in json.loads(done.stdout)] == ["far away"]


def test_discovery_walks_up_from_a_subdirectory(bd: Bd, env: dict[str, str]) -> None:
    bd.create("found from below")
    deep = bd.repo / "src" / "pkg"
    deep.mkdir(parents=True)
    done = run_bd(deep, "list", "--json", env=env)
    assert [item["title"] for item in json.loads(done.stdout)] == ["found from below"]


def test_discovery_stops_at_the_git_root(bd: Bd, env: dict[str, str]) -> None:
    nested_repo = bd.repo / "vendor" / "other"
    (nested_repo / ".git").mkdir(parents=True)
    (nested_repo / "src").mkdir()
    done = run_bd(nested_repo / "src", "list", "--json", env=env)
    assert (done.returncode, done.stderr) == (1, NO_DATABASE)


def test_dash_c_selects_the_workspace_and_beats_beads_dir(
    bd: Bd, outside: Path, env: dict[str, str]
) -> None:
    bd.create("via -C")
    elsewhere = {**env, "BEADS_DIR": str(outside / ".beads")}
    done = run_bd(outside, "-C", str(bd.repo), "list", "--json", env=elsewhere)
    assert [item["title"] for item in json.loads(done.stdout)] == ["via -C"]


def test_init_creates_a_private_beads_dir_with_metadata_and_an_empty_store(bd: Bd) -> None:
    beads = bd.repo / ".beads"
    assert stat.S_IMODE(beads.stat().st_mode) == 0o700
    metadata = json.loads((beads / "metadata.json").read_text())
    assert metadata["backend"] == "dolt"
    assert metadata["dolt_database"] == "t"
    assert bd.json("list") == []


def test_init_honours_beads_dir(tmp_path: Path, env: dict[str, str]) -> None:
    beads = tmp_path / "state" / ".beads"
    done = run_bd(
        tmp_path, "init", "--prefix", "s", "--quiet", env={**env, "BEADS_DIR": str(beads)}
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert (beads / "metadata.json").is_file()


@pytest.mark.parametrize(
    ("dirname", "prefix"), [("acme", "acme"), ("001", "bd_001"), (".hidden-", "hidden")]
)
def test_init_defaults_the_prefix_to_the_sanitized_directory_name(
    tmp_path: Path, env: dict[str, str], dirname: str, prefix: str
) -> None:
    repo = tmp_path / dirname
    repo.mkdir()
    assert run_bd(repo, "init", "--quiet", env=env).returncode == 0
    issue_id = Bd(repo, env).create("named")
    assert re.fullmatch(rf"{re.escape(prefix)}-[0-9a-z]{{3}}", issue_id)


def test_init_refuses_to_reinitialise_and_keeps_the_data(bd: Bd) -> None:
    bd.create("precious")
    done = bd("init", "--prefix", "t", "--quiet")
    assert done.returncode == 1
    assert "already initialized" in done.stderr
    assert bd.titles("list") == ["precious"]


# --- ids ----------------------------------------------------------------------------------------


def test_ids_are_the_prefix_and_three_lowercase_base36_chars(bd: Bd) -> None:
    assert re.fullmatch(r"t-[0-9a-z]{3}", bd.create("first"))


def test_identical_issues_at_the_same_instant_get_distinct_ids_growing_on_collision(
    bd: Bd,
) -> None:
    ids = [bd.create("same", FAKE_BD_NOW=T0) for _ in range(11)]
    assert len(set(ids)) == 11
    assert [len(i) for i in ids] == [5] * 10 + [6]


def test_ids_resolve_from_exact_id_bare_hash_and_unique_substring(bd: Bd) -> None:
    issue_id = bd.create("target")
    bare = issue_id.removeprefix("t-")
    for token in (issue_id, bare, bare[1:], f"t-{bare[:2]}"):
        assert bd.show(token)["id"] == issue_id


def test_an_ambiguous_id_fragment_is_an_error_naming_every_match(bd: Bd) -> None:
    ids: list[str] = []
    shared = None
    while shared is None:
        ids.append(bd.create(f"issue {len(ids)}", FAKE_BD_NOW=T0))
        hashes = [i.removeprefix("t-") for i in ids]
        shared = next(
            (c for c in sorted(set("".join(hashes))) if sum(c in h for h in hashes) > 1), None
        )
    matching = sorted(i for i in ids if shared in i.removeprefix("t-"))
    done = bd("show", shared, "--json")
    assert done.returncode == 1
    listed = " ".join(matching)
    expected = f'Error fetching {shared}: ambiguous ID "{shared}" matches {len(matching)} issues'
    assert f"{expected}: [{listed}]" in done.stderr


# --- JSON conventions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "extra_env"),
    [
        (["--json", "list"], {}),
        (["list", "--json"], {}),
        (["list", "--all", "--json", "--limit", "5"], {}),
        (["list"], {"BD_JSON": "1"}),
    ],
)
def test_json_mode_comes_from_a_flag_anywhere_or_bd_json(
    bd: Bd, argv: list[str], extra_env: dict[str, str]
) -> None:
    bd.create("one")
    done = bd(*argv, **extra_env)
    assert [item["title"] for item in json.loads(done.stdout)] == ["one"]


def test_objects_are_pretty_printed_with_sorted_keys_and_schema_version(bd: Bd) -> None:
    done = bd("create", "pretty", "--json")
    created = json.loads(done.stdout)
    assert created["schema_version"] == 1
    assert done.stdout == json.dumps(created, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_arrays_are_raw_and_keep_struct_field_order(bd: Bd) -> None:
    bd.create("ordered")
    done = bd("list", "--json")
    items = json.loads(done.stdout)
    assert list(items[0])[:2] == ["id", "title"]
    assert "schema_version" not in done.stdout
    assert done.stdout == json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def test_json_after_double_dash_is_a_plain_argument(bd: Bd) -> None:
    issue_id = bd.create("talk")
    done = bd("comment", issue_id, "--", "hello", "--json")
    assert done.stdout == f"Comment added to {issue_id}\n"
    assert bd.json("comments", issue_id)[0]["text"] == "hello --json"


def test_timestamps_are_rfc3339_utc_nanoseconds_on_create_and_seconds_when_stored(
    bd: Bd,
) -> None:
    created = bd.json("create", "timed", FAKE_BD_NOW="2026-05-01T09:15:02.483920117Z")
    assert created["created_at"] == "2026-05-01T09:15:02.483920117Z"
    assert bd.show(created["id"])["created_at"] == "2026-05-01T09:15:02Z"


# --- create -------------------------------------------------------------------------------------


def test_create_defaults_to_an_open_priority_2_task_created_by_the_actor(bd: Bd) -> None:
    created = bd.json("create", "plain")
    assert created["status"] == "open"
    assert created["priority"] == 2
    assert created["issue_type"] == "task"
    assert created["created_by"] == "tester"
    assert "dependencies" not in created
    assert "description" not in created


def test_create_records_every_field_it_was_given(bd: Bd) -> None:
    issue_id = bd.create(
        "full",
        "-d",
        "desc",
        "-t",
        "bug",
        "-p",
        "P1",
        "-l",
        "b,a",
        "-l",
        "c",
        "--acceptance",
        "acc",
        "--notes",
        "n",
        "--design",
        "des",
        "--assignee",
        "alice",
    )
    shown = bd.show(issue_id)
    assert shown["labels"] == ["a", "b", "c"]
    expected = {
        "description": "desc",
        "issue_type": "bug",
        "priority": 1,
        "acceptance_criteria": "acc",
        "notes": "n",
        "design": "des",
        "assignee": "alice",
    }
    assert {key: shown[key] for key in expected} == expected


def test_create_deps_bare_id_blocks_the_new_issue_and_blocks_prefix_reverses_it(bd: Bd) -> None:
    first = bd.create("first")
    bd.create("waits on first", "--deps", first)
    bd.create("blocks first", "--deps", f"blocks:{first}")
    bd.create("spotted", "--deps", f"discovered-from:{first}")
    assert sorted(bd.titles("ready")) == ["blocks first", "spotted"]


def test_create_silent_prints_only_the_id(bd: Bd) -> None:
    done = bd("create", "quiet one", "--silent")
    assert re.fullmatch(r"t-[0-9a-z]{3}\n", done.stdout)
    assert bd.show(done.stdout.strip())["title"] == "quiet one"


@pytest.mark.parametrize("bad", [["-p", "7"], ["-t", "saga"], []])
def test_create_rejects_bad_input_with_a_json_error_on_stderr(bd: Bd, bad: list[str]) -> None:
    args = ["create", *(["sloppy"] if bad else [""]), *bad, "--json"]
    done = bd(*args)
    assert (done.returncode, done.stdout) == (1, "")
    assert "error" in json.loads(done.stderr)
    assert bd.json("list") == []


# --- ready --------------------------------------------------------------------------------------


def test_ready_lists_only_open_unblocked_issues(bd: Bd) -> None:
    bd.create("ready one")
    bd.create("an epic", "-t", "epic")
    bd("update", bd.create("claimed"), "--claim")
    bd("close", bd.create("closed"))
    bd("update", bd.create("parked"), "--status", "blocked")
    bd("update", bd.create("later"), "--status", "deferred")
    bd.create("gated", "--deps", bd.create("blocker", "-p", "3"))
    bd.create("a gate", "-t", "gate")
    assert sorted(bd.titles("ready")) == ["an epic", "blocker", "ready one"]


def test_ready_shows_hidden_types_when_asked_for_by_type(bd: Bd) -> None:
    bd.create("a gate", "-t", "gate")
    assert bd.titles("ready", "-t", "gate") == ["a gate"]


def test_an_issue_becomes_ready_when_its_blocker_closes(bd: Bd) -> None:
    blocker = bd.create("blocker")
    bd.create("blocked", "--deps", blocker)
    assert bd.titles("ready") == ["blocker"]
    bd("close", blocker)
    assert bd.titles("ready") == ["blocked"]


def test_children_of_a_blocked_parent_are_not_ready(bd: Bd) -> None:
    gate = bd.create("gate epic", "-t", "epic")
    epic = bd.create("epic", "-t", "epic")
    child = bd.create("child", "--deps", f"parent-child:{epic}")
    bd("dep", "add", epic, gate)
    assert bd.titles("ready") == ["gate epic"]
    bd("close", gate)
    items = {item["title"]: item for item in bd.json("ready")}
    assert items["child"]["parent"] == epic
    assert items["child"]["id"] == child


def test_ready_orders_by_priority_then_newest_first_then_id(bd: Bd) -> None:
    old_p2 = bd.create("old p2", FAKE_BD_NOW=T0)
    new_p2 = [bd.create(f"new p2 {n}", FAKE_BD_NOW=T1) for n in range(2)]
    old_p1 = bd.create("old p1", "-p", "1", FAKE_BD_NOW=T0)
    got = [item["id"] for item in bd.json("ready")]
    assert got == [old_p1, *sorted(new_p2), old_p2]


def test_ready_sort_oldest_is_creation_order_then_id(bd: Bd) -> None:
    late = bd.create("late p0", "-p", "0", FAKE_BD_NOW=T1)
    early = [bd.create(f"early {n}", FAKE_BD_NOW=T0) for n in range(2)]
    got = [item["id"] for item in bd.json("ready", "--sort", "oldest")]
    assert got == [*sorted(early), late]


def test_ready_sort_hybrid_puts_recent_issues_first_by_priority(bd: Bd) -> None:
    bd.create("old p0", "-p", "0", FAKE_BD_NOW="2026-04-01T00:00:00Z")
    bd.create("new p3", "-p", "3", FAKE_BD_NOW=T0)
    bd.create("new p1", "-p", "1", FAKE_BD_NOW=T0)
    titles = bd.titles("ready", "-s", "hybrid", FAKE_BD_NOW="2026-05-02T09:00:00Z")
    assert titles == ["new p1", "new p3", "old p0"]


def test_ready_rejects_an_unknown_sort_policy(bd: Bd) -> None:
    done = bd("ready", "--sort", "random")
    assert done.returncode == 1
    assert "invalid sort policy 'random'. Valid values: hybrid, priority, oldest" in done.stderr


def test_ready_items_carry_counts_labels_and_raw_edge_records(bd: Bd) -> None:
    blocker = bd.create("blocker", "-l", "infra")
    bd.create("blocked", "--deps", blocker)
    found = bd.create("found", "--deps", f"discovered-from:{blocker}")
    bd("comment", blocker, "a note")
    items = {item["title"]: item for item in bd.json("ready")}
    counts = ("dependency_count", "dependent_count", "comment_count")
    assert [items["blocker"][key] for key in counts] == [0, 1, 1]
    assert items["blocker"]["labels"] == ["infra"]
    assert [items["found"][key] for key in counts] == [0, 0, 0]
    [edge] = items["found"]["dependencies"]
    assert list(edge) == EDGE_KEYS
    assert (edge["issue_id"], edge["depends_on_id"], edge["type"]) == (
        found,
        blocker,
        "discovered-from",
    )
    assert (edge["created_by"], edge["metadata"]) == ("tester", "{}")


def test_ready_limit_truncates_with_a_hint_and_zero_means_unlimited(bd: Bd) -> None:
    for n in range(3):
        bd.create(f"issue {n}")
    done = bd("ready", "--json", "--limit", "2")
    assert len(json.loads(done.stdout)) == 2
    hint = "Showing 2 of 3 ready issues. Use --limit 0 for all, or --limit N to raise the cap."
    assert hint in done.stderr
    done = bd("ready", "--json", "-n", "0")
    assert (len(json.loads(done.stdout)), done.stderr) == (3, "")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["-p", "1"], ["a", "c"]),
        (["-l", "x", "-l", "y"], ["a"]),
        (["--label", "x,y"], ["a"]),
        (["-l", "x"], ["a", "b"]),
        (["-t", "bug"], ["a"]),
        (["--assignee", "alice"], ["a"]),
        (["-u"], ["b", "c"]),
        (["-u", "-a", "alice"], ["b", "c"]),
    ],
)
def test_ready_filters_narrow_the_result(bd: Bd, filters: list[str], expected: list[str]) -> None:
    bd.create("a", "-p", "1", "-t", "bug", "-l", "x,y", "--assignee", "alice")
    bd.create("b", "-l", "x")
    bd.create("c", "-p", "1")
    assert sorted(bd.titles("ready", *filters)) == expected


def test_ready_priority_must_be_a_plain_integer(bd: Bd) -> None:
    done = bd("ready", "-p", "P1", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    expected = 'Error: invalid argument "P1" for "-p, --priority" flag: strconv.ParseInt'
    assert done.stderr.startswith(expected)


def test_ready_with_nothing_ready_prints_an_empty_array(bd: Bd) -> None:
    done = bd("ready", "--json")
    assert (done.returncode, done.stdout) == (0, "[]\n")


def test_ready_claim_takes_the_best_unassigned_ready_issue(bd: Bd) -> None:
    low = bd.create("low")
    bd.create("taken", "-p", "1", "--assignee", "alice")
    high = bd.create("high", "-p", "1")
    claims = [bd.json("ready", "--claim", "--actor", "bob") for _ in range(3)]
    assert [[item["id"] for item in claim] for claim in claims] == [[high], [low], []]
    assert (claims[0][0]["status"], claims[0][0]["assignee"]) == ("in_progress", "bob")


# --- list ---------------------------------------------------------------------------------------


def test_list_hides_closed_and_pinned_unless_asked(bd: Bd) -> None:
    bd.create("open one")
    bd("close", bd.create("done"))
    bd("update", bd.create("pinned"), "--status", "pinned")
    assert bd.titles("list") == ["open one"]
    assert sorted(bd.titles("list", "--all")) == ["done", "open one", "pinned"]
    assert sorted(bd.titles("list", "--status", "all")) == ["done", "open one", "pinned"]
    assert sorted(bd.titles("list", "--status", "closed,pinned")) == ["done", "pinned"]


def test_list_limit_truncates_with_a_hint(bd: Bd) -> None:
    for n in range(3):
        bd.create(f"issue {n}")
    done = bd("list", "--json", "--limit", "2")
    assert len(json.loads(done.stdout)) == 2
    assert "Showing 2 of 3 issues." in done.stderr


def test_list_rejects_an_unknown_status_with_a_json_error_on_stderr(bd: Bd) -> None:
    done = bd("list", "--status", "finished", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert json.loads(done.stderr)["error"].startswith('invalid status "finished"')


# --- show ---------------------------------------------------------------------------------------


def test_show_returns_an_array_with_issue_shaped_dependencies_and_all_edge_counts(
    bd: Bd,
) -> None:
    target = bd.create("target", "-t", "epic")
    issue_id = bd.create("child", "--deps", f"parent-child:{target}")
    bd.create("spotted", "--deps", f"discovered-from:{target}")
    [shown] = bd.json("show", issue_id)
    [dependency] = shown["dependencies"]
    assert (dependency["id"], dependency["dependency_type"]) == (target, "parent-child")
    assert dependency["title"] == "target"
    assert shown["parent"] == target
    assert bd.show(target)["dependent_count"] == 2


def test_show_includes_comments_only_when_asked(bd: Bd) -> None:
    issue_id = bd.create("chatty")
    bd("comment", issue_id, "hi")
    assert "comments" not in bd.show(issue_id)
    assert bd.show(issue_id)["comment_count"] == 1
    [shown] = bd.json("show", issue_id, "--include-comments")
    assert [comment["text"] for comment in shown["comments"]] == ["hi"]


def test_show_with_some_unknown_ids_prints_the_found_ones_and_exits_0(bd: Bd) -> None:
    issue_id = bd.create("known")
    done = bd("show", "nope", issue_id, "--json")
    assert done.returncode == 0
    assert [item["id"] for item in json.loads(done.stdout)] == [issue_id]
    assert 'Error fetching nope: no issue found matching "nope"' in done.stderr


def test_show_with_only_unknown_ids_prints_a_json_error_on_stdout(bd: Bd) -> None:
    done = bd("show", "nope", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "error": "no issues found matching the provided IDs",
        "schema_version": 1,
    }


# --- update and claim ---------------------------------------------------------------------------


def test_claim_sets_assignee_status_and_started_at(bd: Bd) -> None:
    issue_id = bd.create("work")
    [claimed] = bd.json("update", issue_id, "--claim", "--actor", "agent-1", FAKE_BD_NOW=T1)
    assert claimed["id"] == issue_id
    assert (claimed["status"], claimed["assignee"], claimed["started_at"]) == (
        "in_progress",
        "agent-1",
        T1,
    )
    assert "dependencies" not in claimed
    assert "comment_count" not in claimed


def test_claim_by_second_actor_fails_with_already_claimed(bd: Bd) -> None:
    issue_id = bd.create("contested")
    bd.json("update", issue_id, "--claim", "--actor", "alice")
    done = bd("update", issue_id, "--claim", "--actor", "bob", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"Error claiming {issue_id}: issue already claimed by alice\n"
    assert bd.show(issue_id)["assignee"] == "alice"


def test_reclaim_by_the_same_actor_succeeds_and_keeps_started_at(bd: Bd) -> None:
    issue_id = bd.create("mine")
    bd.json("update", issue_id, "--claim", "--actor", "alice", FAKE_BD_NOW=T0)
    [again] = bd.json("update", issue_id, "--claim", "--actor", "alice", FAKE_BD_NOW=T1)
    assert (again["status"], again["assignee"], again["started_at"]) == ("in_progress", "alice", T0)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (["close"], "issue not claimable: status closed"),
        (["update", "--status", "in_progress"], "issue not claimable: status in_progress"),
        (["update", "--status", "blocked"], "issue not claimable: status blocked"),
        (["update", "--assignee", "alice"], "issue already claimed by alice"),
        (["update", "--status", "closed", "-a", "alice"], "issue already claimed by alice"),
    ],
)
def test_claim_refuses_issues_that_are_not_open_and_free(
    bd: Bd, setup: list[str], message: str
) -> None:
    issue_id = bd.create("not free")
    bd(setup[0], issue_id, *setup[1:])
    done = bd("update", issue_id.removeprefix("t-"), "--claim", "--actor", "bob", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"Error claiming {issue_id.removeprefix('t-')}: {message}\n"


def test_claim_of_an_open_issue_preassigned_to_the_actor_succeeds(bd: Bd) -> None:
    issue_id = bd.create("for alice", "--assignee", "alice")
    [claimed] = bd.json("update", issue_id, "--claim", "--actor", "alice")
    assert claimed["status"] == "in_progress"


def test_a_batch_update_succeeds_if_any_id_succeeds(bd: Bd) -> None:
    issue_id = bd.create("good")
    done = bd("update", "nope", issue_id, "--claim", "--json")
    assert done.returncode == 0
    assert [item["id"] for item in json.loads(done.stdout)] == [issue_id]
    assert 'Error resolving nope: no issue found matching "nope"' in done.stderr


def test_update_of_only_unknown_ids_exits_1_with_empty_stdout(bd: Bd) -> None:
    done = bd("update", "nope", "--status", "open", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == 'Error resolving nope: no issue found matching "nope"\n'


def test_concurrent_claims_by_different_actors_have_exactly_one_winner(bd: Bd) -> None:
    issue_id = bd.create("contested")
    actors = [f"agent-{n}" for n in range(8)]
    results = spawn_all(
        bd, [["update", issue_id, "--claim", "--json", "--actor", a] for a in actors]
    )
    winners = [json.loads(out)[0]["assignee"] for code, out, _ in results if code == 0]
    assert len(winners) == 1
    losers = [err for code, _, err in results if code != 0]
    assert all(f"issue already claimed by {winners[0]}" in err for err in losers)
    assert bd.show(issue_id)["assignee"] == winners[0]


def test_concurrent_creates_lose_no_writes(bd: Bd) -> None:
    results = spawn_all(bd, [["create", f"parallel {n}", "--silent"] for n in range(8)])
    assert [code for code, _, _ in results] == [0] * 8
    assert sorted(bd.titles("list")) == [f"parallel {n}" for n in range(8)]


def test_update_rejects_an_invalid_status_with_a_json_error_on_stdout(bd: Bd) -> None:
    issue_id = bd.create("steady")
    done = bd("update", issue_id, "--status", "finished", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"].startswith('invalid status "finished" (built-in: open')
    assert bd.show(issue_id)["status"] == "open"


def test_update_sets_fields_and_an_empty_assignee_clears_it(bd: Bd) -> None:
    issue_id = bd.create("edit me", "--assignee", "alice")
    [updated] = bd.json(
        "update", issue_id, "--assignee", "", "--notes", "n", "--title", "edited", "-p", "P0"
    )
    assert "assignee" not in updated
    assert (updated["notes"], updated["title"], updated["priority"]) == ("n", "edited", 0)


def test_update_status_in_progress_stamps_started_at_once(bd: Bd) -> None:
    issue_id = bd.create("start")
    bd("update", issue_id, "--status", "in_progress", FAKE_BD_NOW=T0)
    bd("update", issue_id, "--status", "open", FAKE_BD_NOW=T1)
    [again] = bd.json("update", issue_id, "--status", "in_progress", FAKE_BD_NOW=T1)
    assert again["started_at"] == T0


def test_moving_a_closed_issue_away_from_closed_clears_closed_at_and_reason(bd: Bd) -> None:
    issue_id = bd.create("flip")
    bd("close", issue_id, "--reason", "done")
    [reset] = bd.json("update", issue_id, "--status", "open", "--assignee", "")
    assert reset["status"] == "open"
    assert "closed_at" not in reset
    assert "close_reason" not in reset


def test_update_without_changes_says_so(bd: Bd) -> None:
    issue_id = bd.create("idle")
    done = bd("update", issue_id, "--json")
    assert (done.returncode, done.stdout) == (0, "No updates specified\n")


# --- parents and epics --------------------------------------------------------------------------


def test_create_parent_numbers_the_children_and_records_a_parent_child_edge(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    first, second = bd.create("one", "--parent", epic), bd.create("two", "--parent", epic)
    grandchild = bd.create("deeper", "--parent", first)
    assert (first, second, grandchild) == (f"{epic}.1", f"{epic}.2", f"{epic}.1.1")
    [edge] = bd.json("list", "--id", first)[0]["dependencies"]
    assert (edge["issue_id"], edge["depends_on_id"], edge["type"]) == (first, epic, "parent-child")
    assert bd.show(second)["parent"] == epic


def test_create_parent_resolves_a_short_id_and_refuses_an_unknown_one(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    assert bd.create("child", "--parent", epic.removeprefix("t-")) == f"{epic}.1"
    done = bd("create", "orphan", "--parent", "nope", "--json")
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"] == 'no issue found matching "nope"'
    assert sorted(bd.titles("list")) == ["child", "epic"]


def test_ready_parent_lists_the_ready_descendants_at_every_depth(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    child = bd.create("child", "--parent", epic)
    bd.create("grandchild", "--parent", child)
    bd.create("waits", "--parent", epic, "--deps", child)
    bd.create("elsewhere")
    assert sorted(bd.titles("ready", "--parent", epic)) == ["child", "grandchild"]
    assert bd.titles("ready", "--parent", child) == ["grandchild"]
    assert bd("ready", "--parent", "nope", "--json").returncode == 1


def test_list_filters_by_type_direct_parent_and_exact_ids(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    child = bd.create("child", "--parent", epic)
    bd.create("grandchild", "--parent", child)
    other = bd.create("other")
    bd("close", child)
    assert bd.titles("list", "--type", "epic") == ["epic"]
    assert bd.titles("list", "--parent", epic) == []  # its one child is closed
    assert bd.titles("list", "--parent", epic, "--all") == ["child"]
    assert sorted(bd.titles("list", "--id", f"{other},{epic}")) == ["epic", "other"]


def test_an_epic_with_open_children_cannot_be_closed_until_they_are(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    children = [bd.create(f"child {n}", "--parent", epic) for n in range(2)]
    bd("close", children[0])
    done = bd("close", epic, "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"cannot close epic {epic}: 1 open child issue(s); ")
    bd("close", children[1])
    [closed] = bd.json("close", epic, "-r", "all done")
    assert (closed["status"], closed["close_reason"]) == ("closed", "all done")
    [again] = bd.json("close", epic, "-r", "again")  # closing a closed issue succeeds
    assert again["close_reason"] == "again"


def test_force_closes_an_epic_with_open_children(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    bd.create("child", "--parent", epic)
    [closed] = bd.json("close", epic, "--force")
    assert closed["status"] == "closed"


def test_show_with_dependents_gives_an_epics_child_counts(bd: Bd) -> None:
    epic = bd.create("epic", "-t", "epic")
    first = bd.create("one", "--parent", epic)
    bd.create("two", "--parent", epic)
    bd("close", first)
    [shown] = bd.json("show", epic, "--include-dependents")
    assert (shown["epic_total_children"], shown["epic_closed_children"]) == (2, 1)
    assert shown["epic_closeable"] is False
    kinds = {(d["id"], d["status"], d["dependency_type"]) for d in shown["dependents"]}
    assert kinds == {(first, "closed", "parent-child"), (f"{epic}.2", "open", "parent-child")}
    assert "epic_total_children" not in bd.show(epic)  # only with --include-dependents
    [lonely] = bd.json("show", bd.create("lonely", "-t", "epic"), "--include-dependents")
    assert "epic_total_children" not in lonely  # only for an epic that has children


# --- close and reopen ---------------------------------------------------------------------------


def test_close_defaults_the_reason_to_closed(bd: Bd) -> None:
    issue_id = bd.create("finish")
    [closed] = bd.json("close", issue_id, FAKE_BD_NOW=T1)
    assert (closed["status"], closed["close_reason"], closed["closed_at"]) == (
        "closed",
        "Closed",
        T1,
    )


def test_close_takes_one_reason_per_id(bd: Bd) -> None:
    first, second = bd.create("one"), bd.create("two")
    closed = bd.json("close", first, second, "-r", "r1", "--reason", "r2")
    assert [item["close_reason"] for item in closed] == ["r1", "r2"]


def test_close_refuses_an_issue_with_open_blockers_unless_forced(bd: Bd) -> None:
    blocker = bd.create("blocker")
    blocked = bd.create("blocked", "--deps", blocker)
    done = bd("close", blocked, "--json")
    assert (done.returncode, done.stdout) == (1, "")
    expected = (
        f"cannot close {blocked}: blocked by open issues [{blocker}] (use --force to override)"
    )
    assert done.stderr == expected + "\n"
    [closed] = bd.json("close", blocked, "--force")
    assert closed["status"] == "closed"


def test_close_succeeds_partially_when_only_some_ids_are_refused(bd: Bd) -> None:
    blocker = bd.create("blocker")
    blocked = bd.create("blocked", "--deps", blocker)
    done = bd("close", blocked, blocker, "--json")
    assert done.returncode == 0
    assert [item["id"] for item in json.loads(done.stdout)] == [blocker]
    assert f"cannot close {blocked}" in done.stderr


def test_close_with_an_unresolvable_id_aborts_everything(bd: Bd) -> None:
    issue_id = bd.create("survivor")
    done = bd("close", issue_id, "nope", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"] == 'resolving ID nope: no issue found matching "nope"'
    assert bd.show(issue_id)["status"] == "open"


def test_reopen_of_an_open_issue_is_a_notice_with_empty_stdout(bd: Bd) -> None:
    issue_id = bd.create("already open")
    done = bd("reopen", issue_id, "--json")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", f"{issue_id} is already open\n")


def test_reopen_clears_the_close_and_records_the_reason_as_a_comment(bd: Bd) -> None:
    issue_id = bd.create("again")
    bd("close", issue_id, "-r", "done")
    [reopened] = bd.json("reopen", issue_id, "-r", "not really")
    assert reopened["status"] == "open"
    assert "closed_at" not in reopened
    assert [c["text"] for c in bd.json("comments", issue_id)] == ["not really"]


def test_reopen_of_an_unknown_id_fails(bd: Bd) -> None:
    done = bd("reopen", "nope", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert 'no issue found matching "nope"' in done.stderr


# --- comments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["comment"], ["comments", "add"]])
def test_adding_a_comment_prints_one_comment_object(bd: Bd, command: list[str]) -> None:
    issue_id = bd.create("discuss")
    comment = bd.json(*command, issue_id.removeprefix("t-"), "looks", "good")
    assert sorted(comment) == ["author", "created_at", "id", "issue_id", "schema_version", "text"]
    assert (comment["author"], comment["issue_id"]) == ("tester", issue_id)
    assert comment["text"] == "looks good"
    assert uuid.UUID(comment["id"]).version == 7


def test_comments_lists_an_issues_comments_in_order(bd: Bd) -> None:
    issue_id = bd.create("thread")
    assert bd.json("comments", issue_id) == []
    bd("comment", issue_id, "first")
    bd("comments", "add", issue_id, "second", "--author", "bob")
    listed = bd.json("comments", issue_id)
    assert [(c["author"], c["text"]) for c in listed] == [("tester", "first"), ("bob", "second")]


def test_an_empty_comment_is_an_error(bd: Bd) -> None:
    issue_id = bd.create("silent")
    done = bd("comment", issue_id, " ", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"] == "comment text cannot be empty"
    assert bd.json("comments", issue_id) == []


# --- dep add ------------------------------------------------------------------------------------


def test_dep_add_makes_the_first_issue_depend_on_the_second(bd: Bd) -> None:
    waiting, blocker = bd.create("waiting"), bd.create("blocker")
    added = bd.json("dep", "add", waiting, blocker)
    assert added == {
        "depends_on_id": blocker,
        "issue_id": waiting,
        "schema_version": 1,
        "status": "added",
        "type": "blocks",
    }
    assert bd.titles("ready") == ["blocker"]


def test_dep_add_with_a_non_blocking_type_leaves_both_ready(bd: Bd) -> None:
    first, second = bd.create("first"), bd.create("second")
    assert bd.json("dep", "add", first, second, "--type", "related")["type"] == "related"
    assert sorted(bd.titles("ready")) == ["first", "second"]


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("self", "cannot add self-dependency"),
        ("cycle", "adding dependency would create a cycle"),
        ("retype", "already exists with type"),
        ("unknown", 'no issue found matching "nope"'),
    ],
)
def test_dep_add_refuses_bad_edges_with_a_json_error_on_stdout(
    bd: Bd, pair: str, message: str
) -> None:
    first, second = bd.create("first"), bd.create("second")
    bd("dep", "add", first, second)
    argv = {
        "self": [first, first],
        "cycle": [second, first],
        "retype": [first, second, "--type", "related"],
        "unknown": [first, "nope"],
    }[pair]
    done = bd("dep", "add", *argv, "--json")
    assert done.returncode == 1
    assert message in json.loads(done.stdout)["error"]


def test_dep_add_of_an_existing_edge_is_idempotent(bd: Bd) -> None:
    first, second = bd.create("first"), bd.create("second")
    bd.json("dep", "add", first, second)
    assert bd.json("dep", "add", first, second)["status"] == "added"
    assert bd.show(first)["dependency_count"] == 1


# --- actor, flags, commands ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "extra", "git_name", "expected"),
    [
        ("cli", {"BD_ACTOR": "bd", "BEADS_ACTOR": "beads", "USER": "user"}, "gitname", "cli"),
        ("", {"BD_ACTOR": "bd", "BEADS_ACTOR": "beads", "USER": "user"}, "gitname", "bd"),
        ("", {"BEADS_ACTOR": "beads", "USER": "user"}, "gitname", "beads"),
        ("", {"USER": "user"}, "gitname", "gitname"),
        ("", {"USER": "user"}, "", "user"),
        ("", {}, "", "unknown"),
    ],
)
def test_actor_precedence_is_flag_bd_actor_beads_actor_git_user(
    bd: Bd, tmp_path: Path, flag: str, extra: dict[str, str], git_name: str, expected: str
) -> None:
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[user]\n\tname = {git_name}\n" if git_name else "")
    env = {k: v for k, v in bd.env.items() if k not in ("BD_ACTOR", "USER")}
    env |= {"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1", **extra}
    argv = ["create", "who", "--json", *(["--actor", flag] if flag else [])]
    done = run_bd(bd.repo, *argv, env=env)
    assert json.loads(done.stdout)["created_by"] == expected


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--no-daemon", "ready"], "Error: unknown flag: --no-daemon"),
        (["ready", "--json", "--no-daemon"], "Error: unknown flag: --no-daemon"),
        (["list", "--no-auto-flush"], "Error: unknown flag: --no-auto-flush"),
        (["ready", "-x"], "Error: unknown shorthand flag: 'x' in -x"),
        (["update", "t-abc", "--status"], "Error: flag needs an argument: --status"),
        (["frobnicate"], 'Error: unknown command "frobnicate" for "bd"'),
    ],
)
def test_usage_errors_print_cobra_style_text_and_exit_1(
    bd: Bd, argv: list[str], error: str
) -> None:
    done = bd(*argv)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[0] == error


def test_version_reports_the_emulated_bd_version(bd: Bd) -> None:
    assert bd.json("version")["version"] == "1.0.5"


# --- test hooks, helpers and storage ------------------------------------------------------------


def test_fake_bd_log_records_every_invocation(bd: Bd, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    bd("ready", "--json", FAKE_BD_LOG=str(log))
    bd("frobnicate", FAKE_BD_LOG=str(log))
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["argv"] for entry in entries] == [["ready", "--json"], ["frobnicate"]]
    assert Path(entries[0]["cwd"]).resolve() == bd.repo.resolve()


def test_fake_bd_fail_makes_only_that_subcommand_fail(bd: Bd) -> None:
    done = bd("ready", "--json", FAKE_BD_FAIL="ready")
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "Error: simulated failure\n")
    assert bd("list", "--json", FAKE_BD_FAIL="ready").returncode == 0


def test_support_helpers_create_and_show_issues(tmp_path: Path) -> None:
    repo = tmp_path / "helped"
    init_workspace(repo, prefix="h")
    issue_id = create_issue(repo, "helped", priority=1, labels=["b", "a"], actor="alice")
    shown = show_issue(repo, issue_id)
    assert issue_id.startswith("h-")
    assert (shown["priority"], shown["labels"], shown["created_by"]) == (1, ["a", "b"], "alice")


def test_bd_env_puts_the_stand_in_first_and_drops_ambient_beads_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEADS_DIR", "/somewhere/else/.beads")
    env = bd_env()
    assert shutil.which("bd", path=env["PATH"]) == str(BIN_DIR / "bd")
    assert "BEADS_DIR" not in env
    assert bd_env({"BEADS_DIR": "kept", "PATH": ""})["BEADS_DIR"] == "kept"


def test_the_store_is_replaced_atomically_leaving_no_temp_files(bd: Bd) -> None:
    issue_id = bd.create("stored")
    bd("update", issue_id, "--claim")
    beads = bd.repo / ".beads"
    assert sorted(path.name for path in beads.iterdir()) == ["issues.json", "lock", "metadata.json"]
    store = json.loads((beads / "issues.json").read_text())
    assert store["issues"][issue_id]["status"] == "in_progress"
