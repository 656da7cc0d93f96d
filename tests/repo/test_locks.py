"""Unit tests for bdp/repo/locks.py: the mkdir lock table agents share for one work tree.

Real directories under ``tmp_path``; threads and processes stand in for concurrent runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bdp.errors import DeadlockError, LockError
from bdp.repo.locks import Holder, LockTable, lock_name, repo_lock_dir
from tests.support.processes import in_thread, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A work tree with one source file, and a sibling folder outside it."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (tmp_path / "outside").mkdir()
    return root


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def table(home: Path, repo: Path) -> LockTable:
    return LockTable(home, repo)


def run(name: str, started: float = 1.0) -> Holder:
    """A holder for run ``run-<name>`` of issue ``bd-<name>``."""
    return Holder.here(f"run-{name}", f"bd-{name}", started)


def holder_run(table: LockTable, path: str) -> str | None:
    lock = table.holder_of(path)
    return None if lock is None else lock.holder.run_id


# -- where locks live, and what they record ------------------------------------------------


def test_acquire_returns_the_normalised_repo_relative_paths(table: LockTable, repo: Path) -> None:
    taken = table.acquire(["./src/app.py", "b.py", "src/../c.py", str(repo / "d.py")], run("a"))

    assert taken == ["b.py", "c.py", "d.py", "src/app.py"]


def test_the_lock_directory_lives_under_home_never_in_the_work_tree(
    table: LockTable, home: Path, repo: Path
) -> None:
    before = sorted(repo.rglob("*"))

    table.acquire(["src/app.py"], run("a"))

    digest = hashlib.sha256(os.path.realpath(repo).encode()).hexdigest()[:16]
    expected = home / "locks" / f"repo-{digest}"
    assert table.root == expected == repo_lock_dir(home, repo)
    assert (expected / lock_name("src/app.py")).is_dir()
    assert sorted(repo.rglob("*")) == before


def test_the_lock_directory_and_owner_record_are_not_world_writable(table: LockTable) -> None:
    table.acquire(["src/app.py"], run("a"))

    directory = table.root / lock_name("src/app.py")
    assert stat.S_IMODE(table.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "owner.json").stat().st_mode) == 0o600


def test_the_owner_record_holds_run_issue_host_pid_time_and_path(table: LockTable) -> None:
    before = time.time()
    holder = run("a")

    table.acquire(["src/app.py"], holder)

    record = json.loads((table.root / lock_name("src/app.py") / "owner.json").read_text())
    assert record["run_id"] == "run-a"
    assert record["issue_id"] == "bd-a"
    assert record["host"] == holder.host
    assert record["pid"] == os.getpid()
    assert before <= record["acquired"] <= time.time()
    assert record["path"] == "src/app.py"


def test_two_work_trees_with_the_same_name_have_separate_tables(tmp_path: Path) -> None:
    one, two = tmp_path / "x" / "repo", tmp_path / "y" / "repo"
    one.mkdir(parents=True)
    two.mkdir(parents=True)

    LockTable(tmp_path / "home", one).acquire(["a.py"], run("a"))

    assert LockTable(tmp_path / "home", two).acquire(["a.py"], run("b"), wait=0) == ["a.py"]


# -- taking ---------------------------------------------------------------------------------


def test_re_acquiring_a_lock_the_run_already_holds_succeeds(table: LockTable) -> None:
    table.acquire(["a.py"], run("a"))

    assert table.acquire(["a.py", "./a.py"], run("a"), wait=0) == ["a.py"]
    assert holder_run(table, "a.py") == "run-a"


def test_a_second_run_gets_lock_error_naming_the_holder_after_the_wait(table: LockTable) -> None:
    # Given run a holds a.py
    table.acquire(["a.py"], run("a"))
    lock = table.holder_of("a.py")
    assert lock is not None
    since = time.strftime("%H:%M:%S", time.localtime(lock.acquired))

    # When run b asks for it with a short wait
    start = time.monotonic()
    with pytest.raises(LockError) as caught:
        table.acquire(["a.py"], run("b"), wait=0.2)
    elapsed = time.monotonic() - start

    # Then it waited, and the error names the holder's issue, run, host and since when
    assert 0.2 <= elapsed < 2.0
    assert not isinstance(caught.value, DeadlockError)
    message = str(caught.value)
    assert "a.py" in message
    assert "bd-a" in message
    assert "run-a" in message
    assert lock.holder.host in message
    assert since in message
    assert holder_run(table, "a.py") == "run-a"


def test_acquiring_several_paths_is_all_or_nothing(table: LockTable) -> None:
    # Given run b holds b.py
    table.acquire(["b.py"], run("b"))

    # When run a asks for a.py, b.py and c.py together
    with pytest.raises(LockError):
        table.acquire(["c.py", "a.py", "b.py"], run("a"), wait=0.05)

    # Then a.py and c.py are not kept, and b.py is still b's
    assert table.holder_of("a.py") is None
    assert table.holder_of("c.py") is None
    assert [(lock.path, lock.holder.run_id) for lock in table.locks()] == [("b.py", "run-b")]
    assert table.acquire(["a.py", "c.py"], run("c"), wait=0) == ["a.py", "c.py"]


def test_a_failed_acquire_keeps_the_locks_the_run_held_before(table: LockTable) -> None:
    # Given run a holds a.py and run b holds b.py
    table.acquire(["a.py"], run("a"))
    table.acquire(["b.py"], run("b"))

    # When run a asks for both (a.py again, and b.py)
    with pytest.raises(LockError):
        table.acquire(["a.py", "b.py"], run("a"), wait=0.05)

    # Then run a still holds a.py: rolling back only gives up what this call took
    assert holder_run(table, "a.py") == "run-a"


def test_paths_are_taken_in_sorted_order(table: LockTable) -> None:
    # Given a.py and z.py are held by two other runs
    table.acquire(["a.py"], run("a"))
    table.acquire(["z.py"], run("z"))

    # When a third run asks for them in reverse order
    with pytest.raises(LockError) as caught:
        table.acquire(["z.py", "a.py"], run("c"), wait=0)

    # Then it stopped at a.py, the first in sorted order
    assert str(caught.value).startswith("a.py is locked by issue bd-a")


# -- giving back ----------------------------------------------------------------------------


def test_release_gives_back_only_the_locks_of_the_given_run(table: LockTable) -> None:
    table.acquire(["a.py", "b.py"], run("a"))
    table.acquire(["c.py"], run("c"))

    released = table.release(["b.py", "c.py", "a.py"], "run-a")

    assert released == ["a.py", "b.py"]
    assert table.holder_of("a.py") is None
    assert table.holder_of("b.py") is None
    assert holder_run(table, "c.py") == "run-c"


def test_release_all_frees_every_lock_of_a_run_and_no_other_runs(table: LockTable) -> None:
    table.acquire(["a.py", "src/app.py"], run("a"))
    table.acquire(["x.py"], run("a"))
    table.acquire(["b.py"], run("b"))

    released = table.release_all("run-a")

    assert released == ["a.py", "src/app.py", "x.py"]
    assert [(lock.path, lock.holder.run_id) for lock in table.locks()] == [("b.py", "run-b")]


@pytest.mark.parametrize("path", ["a.py", "never-locked.py"])
def test_releasing_something_not_held_is_a_no_op_returning_nothing(
    table: LockTable, path: str
) -> None:
    table.acquire(["a.py"], run("a"))

    assert table.release([path], "run-b") == []
    assert table.release_all("run-b") == []
    assert holder_run(table, "a.py") == "run-a"


def test_releasing_on_an_empty_table_returns_nothing(table: LockTable) -> None:
    assert table.release(["a.py"], "run-a") == []
    assert table.release_all("run-a") == []
    assert table.locks() == []


# -- which paths, and which names -----------------------------------------------------------


def test_a_path_through_dot_dot_is_the_same_lock_as_its_normal_form(table: LockTable) -> None:
    table.acquire(["b.py"], run("a"))

    with pytest.raises(LockError):
        table.acquire(["a/../b.py"], run("b"), wait=0)
    assert table.acquire(["a/../b.py"], run("a"), wait=0) == ["b.py"]
    assert table.release(["a/../b.py"], "run-a") == ["b.py"]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("../x", id="dotdot"),
        pytest.param("src/../../outside/x.py", id="dotdot-after-a-folder"),
        pytest.param("/etc/passwd", id="absolute-elsewhere"),
        pytest.param("escape/secret.py", id="through-a-symlink-out"),
        pytest.param("escape", id="a-symlink-out-itself"),
    ],
)
def test_paths_outside_the_repository_are_refused(
    table: LockTable, repo: Path, tmp_path: Path, target: str
) -> None:
    (repo / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)

    with pytest.raises(LockError, match="outside the repository"):
        table.acquire([target], run("a"), wait=0)

    assert table.locks() == []


def test_a_symlink_inside_the_repository_locks_the_file_it_points_to(
    table: LockTable, repo: Path
) -> None:
    (repo / "alias").symlink_to(repo / "src", target_is_directory=True)

    assert table.acquire(["alias/app.py"], run("a"), wait=0) == ["src/app.py"]
    with pytest.raises(LockError):
        table.acquire(["src/app.py"], run("b"), wait=0)


@pytest.mark.parametrize("target", [".", "", "src/..", "REPO"])
def test_the_repository_root_itself_is_refused(table: LockTable, repo: Path, target: str) -> None:
    path = str(repo) if target == "REPO" else target

    with pytest.raises(LockError, match="outside the repository"):
        table.acquire([path], run("a"), wait=0)


def test_a_refused_path_among_good_ones_takes_nothing(table: LockTable) -> None:
    with pytest.raises(LockError, match="outside the repository"):
        table.acquire(["a.py", "../x"], run("a"), wait=0)

    assert table.locks() == []


DEEP = "/".join(f"level{n:02d}-" + "d" * 40 for n in range(24)) + "/leaf.py"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("with space.py", id="space"),
        pytest.param("données/été.py", id="unicode"),
        pytest.param("100%.py", id="percent"),
        pytest.param("%41.py", id="percent-escape-lookalike"),
        pytest.param("%h" + "0" * 64, id="hashed-name-lookalike"),
        pytest.param("~backup~.py", id="tilde"),
        pytest.param(".gitignore", id="dotfile"),
        pytest.param(".waits", id="name-of-the-waits-folder"),
        pytest.param(".github/workflows/ci.yml", id="dot-folder"),
        pytest.param("n" * 300, id="300-characters"),
        pytest.param(DEEP, id="deep-over-1000-characters"),
    ],
)
def test_any_file_name_can_be_locked_listed_and_released(table: LockTable, path: str) -> None:
    # Given a run that waited once, so the table has its bookkeeping folders
    table.acquire(["other.py"], run("b"))
    with pytest.raises(LockError):
        table.acquire(["other.py"], run("a"), wait=0)

    # When run a locks the path
    assert table.acquire([path], run("a"), wait=0) == [path]

    # Then others are kept out, it is listed, and release_all gives it back
    with pytest.raises(LockError):
        table.acquire([path], run("c"), wait=0)
    assert [lock.path for lock in table.locks() if lock.holder.run_id == "run-a"] == [path]
    assert table.release_all("run-a") == [path]
    assert table.acquire([path], run("c"), wait=0) == [path]


def test_the_deep_path_is_longer_than_1000_characters() -> None:
    assert len(DEEP) > 1000


def test_a_percent_escape_and_the_name_it_spells_are_different_locks(table: LockTable) -> None:
    table.acquire(["%41.py"], run("a"))

    assert table.acquire(["A.py"], run("b"), wait=0) == ["A.py"]
    assert lock_name("%41.py") != lock_name("A.py")


def test_two_long_names_sharing_a_long_prefix_do_not_collide(table: LockTable) -> None:
    prefix = "p" * 299
    first, second = prefix + "1", prefix + "2"

    assert table.acquire([first], run("a"), wait=0) == [first]
    assert table.acquire([second], run("b"), wait=0) == [second]

    assert lock_name(first) != lock_name(second)
    assert holder_run(table, first) == "run-a"
    assert holder_run(table, second) == "run-b"


def test_lock_names_fit_in_one_file_name() -> None:
    for path in ["é" * 300, "%" * 300, DEEP, "a" * 60]:
        assert len(lock_name(path).encode()) <= 255
        assert "/" not in lock_name(path)


# -- waiting ---------------------------------------------------------------------------------


def test_a_waiter_gets_the_lock_when_the_holder_releases_during_the_wait(
    table: LockTable,
) -> None:
    # Given run a holds a.py, and run b waits for it in a thread
    table.acquire(["a.py"], run("a"))
    got: list[list[str]] = []
    thread, errors = in_thread(lambda: got.append(table.acquire(["a.py"], run("b"), wait=10)))
    wait_for(lambda: "run-b" in table.waits(), timeout=5, interval=0.005)

    # When run a releases it
    assert table.release(["a.py"], "run-a") == ["a.py"]

    # Then run b gets it well within its wait, and stops waiting
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert errors == []
    assert got == [["a.py"]]
    assert holder_run(table, "a.py") == "run-b"
    assert table.waits() == {}


def test_deadlock_ends_the_younger_run_at_once_when_it_asks_last(table: LockTable) -> None:
    older, younger = run("old", started=1.0), run("young", started=2.0)
    # Given the older run holds x and waits for y, which the younger run holds
    table.acquire(["x.py"], older)
    table.acquire(["y.py"], younger)
    got: list[list[str]] = []
    thread, errors = in_thread(lambda: got.append(table.acquire(["y.py"], older, wait=10)))
    wait_for(lambda: "run-old" in table.waits(), timeout=5, interval=0.005)

    # When the younger run asks for x
    start = time.monotonic()
    with pytest.raises(DeadlockError) as caught:
        table.acquire(["x.py"], younger, wait=10)

    # Then it is refused at once, naming both issues
    assert time.monotonic() - start < 3.0
    assert "bd-old" in str(caught.value)
    assert "bd-young" in str(caught.value)
    assert caught.value.waits_for == "bd-old"  # the victim is to wait for the older issue
    assert thread.is_alive()

    # And once the younger run gives up its locks, the older run gets y
    assert table.release_all("run-young") == ["y.py"]
    thread.join(timeout=5)
    assert errors == []
    assert got == [["y.py"]]
    assert holder_run(table, "y.py") == "run-old"


def test_deadlock_never_ends_the_older_run_even_when_it_asks_last(table: LockTable) -> None:
    older, younger = run("old", started=1.0), run("young", started=2.0)
    # Given the younger run holds y and waits for x; the younger run ends when refused
    table.acquire(["x.py"], older)
    table.acquire(["y.py"], younger)

    def younger_run() -> None:
        try:
            table.acquire(["x.py"], younger, wait=10)
        finally:
            table.release_all("run-young")

    thread, errors = in_thread(younger_run)
    wait_for(lambda: "run-young" in table.waits(), timeout=5, interval=0.005)

    # When the older run asks for y
    start = time.monotonic()
    assert table.acquire(["y.py"], older, wait=10) == ["y.py"]

    # Then the younger run was the one refused, and the older one got y soon
    assert time.monotonic() - start < 3.0
    thread.join(timeout=5)
    assert len(errors) == 1
    assert isinstance(errors[0], DeadlockError)
    assert "bd-young" in str(errors[0])
    assert "bd-old" in str(errors[0])
    assert holder_run(table, "x.py") == "run-old"


def test_a_stale_wait_record_is_not_taken_for_a_deadlock(table: LockTable) -> None:
    older, younger = run("old", started=1.0), run("young", started=2.0)
    # Given the younger run holds x, and the older run holds y and waits for x
    table.acquire(["x.py"], younger)
    table.acquire(["y.py"], older)

    def older_run() -> None:
        table.acquire(["x.py"], older, wait=10)
        table.release_all("run-old")

    thread, errors = in_thread(older_run)
    wait_for(lambda: "run-old" in table.waits(), timeout=5, interval=0.005)

    # When the younger run gives x back and at once asks for y (the older run's record of
    # waiting for x may not be renewed yet)
    assert table.release(["x.py"], "run-young") == ["x.py"]
    taken = table.acquire(["y.py"], younger, wait=10)

    # Then there was no deadlock: the younger run waited and got y
    assert taken == ["y.py"]
    thread.join(timeout=5)
    assert errors == []


CRASHING_WAITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bdp.repo.locks import Holder, LockTable

    table = LockTable(Path(sys.argv[1]), Path(sys.argv[2]))
    holder = Holder.here("run-old", "bd-old", 1.0)
    table.acquire(["y.py"], holder)
    table.acquire(["x.py"], holder, wait=60)
    """
)


def test_the_record_of_a_waiter_that_died_is_not_taken_for_a_deadlock(
    table: LockTable, home: Path, repo: Path
) -> None:
    # Given the younger run holds x, and an older run in another process holds y, waits for
    # x, and is killed while waiting (its lock and its record of waiting stay behind)
    table.acquire(["x.py"], run("young", started=2.0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CRASHING_WAITER, str(home), str(repo)], env=env)
    try:
        wait_for(lambda: "run-old" in table.waits(), timeout=20, interval=0.01)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert holder_run(table, "y.py") == "run-old"

    # When the younger run gives x back and asks for y
    table.release(["x.py"], "run-young")
    with pytest.raises(LockError) as caught:
        table.acquire(["y.py"], run("young", started=2.0), wait=0.2)

    # Then it waited for y like for any held lock: no deadlock, as nobody waits for x
    assert not isinstance(caught.value, DeadlockError)
    assert "bd-old" in str(caught.value)


# -- crashes and janitors ----------------------------------------------------------------------


def test_a_lock_without_an_owner_record_blocks_and_is_listed_as_unowned(
    table: LockTable,
) -> None:
    # Given a run crashed between creating the lock directory and writing its owner record
    table.root.mkdir(parents=True)
    directory = table.root / lock_name("a.py")
    directory.mkdir()

    # Then nobody steals it
    with pytest.raises(LockError):
        table.acquire(["a.py"], run("b"), wait=0.05)
    assert directory.is_dir()
    assert not (directory / "owner.json").exists()

    # And it is listed as unowned, but not as older than an hour
    assert table.unowned(older_than=0) == [directory]
    assert table.unowned(older_than=3600) == []
    assert table.locks() == []

    # When it is force-removed, it can be taken
    table.force_remove(directory)
    assert not directory.exists()
    assert table.acquire(["a.py"], run("b"), wait=0) == ["a.py"]
    assert table.unowned(older_than=0) == []


def test_a_half_written_owner_record_is_waited_for_and_later_freed_as_unowned(
    table: LockTable,
) -> None:
    # Given a run died while writing its owner record (the record is cut short)
    table.acquire(["a.py"], run("a"))
    record = table.root / lock_name("a.py") / "owner.json"
    record.write_text(record.read_text()[:20])

    # Then nobody steals it, its owner cannot release it, and it is listed as unowned
    with pytest.raises(LockError):
        table.acquire(["a.py"], run("b"), wait=0.05)
    assert table.release(["a.py"], "run-a") == []
    assert table.locks() == []
    assert table.unowned(older_than=0) == [table.root / lock_name("a.py")]


def test_force_remove_of_a_missing_directory_does_nothing(table: LockTable) -> None:
    table.force_remove(table.root / lock_name("never.py"))

    assert table.locks() == []


def test_release_racing_force_remove_never_raises_and_frees_the_path(table: LockTable) -> None:
    directory = table.root / lock_name("a.py")
    barrier = threading.Barrier(2)

    def janitor() -> None:
        barrier.wait(timeout=5)
        table.force_remove(directory)

    for attempt in range(50):
        # Given run a holds a.py
        table.acquire(["a.py"], run("a"))

        # When the owner releases while a janitor force-removes it
        thread, errors = in_thread(janitor)
        barrier.wait(timeout=5)
        released = table.release(["a.py"], "run-a")
        thread.join(timeout=5)

        # Then neither raised and the path is free
        assert errors == [], attempt
        assert released in ([], ["a.py"])
        assert not directory.exists()
        assert table.holder_of("a.py") is None
        assert [p.name for p in table.root.iterdir() if p.name.startswith(".gone-")] == []


# -- many processes ------------------------------------------------------------------------------

STRESS_WORKER = textwrap.dedent(
    """
    import os, random, sys
    from pathlib import Path
    from bdp.repo.locks import Holder, LockTable, lock_name

    home, repo, work, index, rounds = sys.argv[1:6]
    table = LockTable(Path(home), Path(repo))
    holder = Holder.here(f"run-{index}", f"bd-{index}", 1.0 + int(index))
    inside, violations = Path(work) / "inside", Path(work) / "violations"
    rng = random.Random(int(index))
    paths = ["a.py", "b.py", "c.py"]
    taken = 0
    for n in range(int(rounds)):
        wanted = rng.sample(paths, 2) if rng.random() < 0.3 else [rng.choice(paths)]
        got = table.acquire(wanted, holder, wait=30)
        taken += 1
        markers = []
        for path in got:
            marker = inside / lock_name(path)
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                markers.append(marker)
            except FileExistsError:
                (violations / f"{index}-{n}-{lock_name(path)}").write_text(path)
        for marker in markers:
            marker.unlink()
        table.release(got, holder.run_id)
    print(taken)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_many_processes_never_hold_the_same_lock_at_once(
    home: Path, repo: Path, tmp_path: Path
) -> None:
    processes, rounds = 6, 400
    work = tmp_path / "stress"
    (work / "inside").mkdir(parents=True)
    (work / "violations").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # Given 6 processes each taking, checking and releasing random locks 400 times
    argv = [sys.executable, "-c", STRESS_WORKER, str(home), str(repo), str(work)]
    children = [
        subprocess.Popen(
            [*argv, str(n), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(processes)
    ]
    try:
        results = [child.communicate(timeout=50) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    # Then every process finished every round, and no two ever held a lock together
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
    assert sum(int(out) for out, _ in results) == processes * rounds
    assert sorted(p.name for p in (work / "violations").iterdir()) == []
    assert sorted(p.name for p in (work / "inside").iterdir()) == []
    assert LockTable(home, repo).locks() == []


def test_waits_and_timeouts_are_counted_for_metrics(table: LockTable) -> None:
    # Given an uncontended acquire, then one that waits and gets it, then one that times out
    table.acquire(["a.py"], run("a"))
    assert (table.waited.waits, table.waited.timeouts) == (0, 0)  # no wait: not counted
    got: list[list[str]] = []
    thread, _errors = in_thread(lambda: got.append(table.acquire(["a.py"], run("b"), wait=10)))
    wait_for(lambda: "run-b" in table.waits(), timeout=5, interval=0.005)
    time.sleep(0.1)
    table.release(["a.py"], "run-a")
    thread.join(timeout=5)
    with pytest.raises(LockError):
        table.acquire(["a.py"], run("c"), wait=0.1)

    # Then both waits count, with their time, and one of them as a timeout
    assert got == [["a.py"]]
    assert (table.waited.waits, table.waited.timeouts) == (2, 1)
    assert 0.2 <= table.waited.seconds < 5
