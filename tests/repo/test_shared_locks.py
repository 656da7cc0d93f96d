"""The lock table in Redis that machines sharing one queue use: on a real redis-server, with
two tables at different clone paths standing for two machines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from bdp.errors import DeadlockError, LockError
from bdp.repo.lock_records import Holder
from bdp.repo.shared_locks import SharedLockTable
from tests.support.processes import in_thread, wait_for

PREFIX, REPO = "bdp.bdp", "app"


def clone(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    (root / "src").mkdir(parents=True)
    return root


def table(url: str, tree: Path | None = None, lease: tuple[str, str] = ("", "")) -> SharedLockTable:
    return SharedLockTable(redis.Redis.from_url(url), PREFIX, REPO, tree, lease)


def run(name: str, started: float = 1.0, host: str = "alpha") -> Holder:
    return Holder(f"run-{name}", f"bd-{name}", host, 1, started)


@pytest.fixture
def machines(redis_url: str, tmp_path: Path) -> tuple[SharedLockTable, SharedLockTable]:
    """The repo's table as two machines see it, each resolving paths in its own clone."""
    return table(redis_url, clone(tmp_path, "alpha")), table(redis_url, clone(tmp_path, "beta"))


def test_a_path_one_machine_locked_is_refused_on_another_naming_the_holder(
    machines: tuple[SharedLockTable, SharedLockTable], tmp_path: Path
) -> None:
    alpha, beta = machines
    # Given alpha's run locks src/app.py by its absolute path in alpha's clone
    assert alpha.acquire([str(tmp_path / "alpha/src/app.py")], run("a")) == ["src/app.py"]

    # When beta's run asks for the same repo-relative path
    with pytest.raises(LockError) as refused:
        beta.acquire(["src/app.py"], run("b", host="beta"), wait=0.1)

    # Then it is refused, naming alpha's run and issue, and both machines list one lock
    assert "bd-a" in str(refused.value)
    assert "run-a on alpha" in str(refused.value)
    assert [(lock.path, lock.holder.run_id) for lock in beta.locks()] == [("src/app.py", "run-a")]
    assert alpha.locks() == beta.locks()


def test_taking_several_paths_is_all_or_nothing_across_machines(
    machines: tuple[SharedLockTable, SharedLockTable],
) -> None:
    alpha, beta = machines
    alpha.acquire(["b.py"], run("a"))

    with pytest.raises(LockError):
        beta.acquire(["a.py", "b.py", "c.py"], run("b"), wait=0)

    assert [lock.path for lock in alpha.locks()] == ["b.py"]  # a.py and c.py stayed free
    assert beta.acquire(["a.py", "c.py"], run("b")) == ["a.py", "c.py"]


def test_release_frees_only_the_runs_own_locks_and_notes_when(
    machines: tuple[SharedLockTable, SharedLockTable],
) -> None:
    alpha, beta = machines
    before = time.time() - 1
    alpha.acquire(["a.py", "b.py"], run("a"))
    beta.acquire(["c.py"], run("b"))

    assert beta.release(["a.py", "c.py"], "run-b") == ["c.py"]  # a.py is not beta's
    assert alpha.release_all("run-a") == ["a.py", "b.py"]

    assert alpha.locks() == []
    assert alpha.released_since(before) == {"a.py", "b.py", "c.py"}
    assert alpha.released_since(time.time() + 1) == set()
    assert alpha.release_all("run-a") == []


def test_a_waiter_on_one_machine_gets_the_lock_when_the_other_releases(
    machines: tuple[SharedLockTable, SharedLockTable],
) -> None:
    alpha, beta = machines
    alpha.acquire(["a.py"], run("a"))
    got: list[list[str]] = []
    thread, errors = in_thread(lambda: got.append(beta.acquire(["a.py"], run("b"), wait=10)))
    wait_for(lambda: "run-b" in alpha.waits(), timeout=5, interval=0.005)

    alpha.release(["a.py"], "run-a")

    thread.join(timeout=5)
    assert errors == []
    assert got == [["a.py"]]
    assert [lock.holder.run_id for lock in alpha.locks()] == ["run-b"]
    assert alpha.waits() == {}


def test_a_deadlock_between_machines_ends_the_younger_run_at_once(
    machines: tuple[SharedLockTable, SharedLockTable],
) -> None:
    alpha, beta = machines
    older, younger = run("old", 1.0), run("young", 2.0, host="beta")
    alpha.acquire(["x.py"], older)
    beta.acquire(["y.py"], younger)
    thread, errors = in_thread(lambda: alpha.acquire(["y.py"], older, wait=10))
    wait_for(lambda: "run-old" in beta.waits(), timeout=5, interval=0.005)

    start = time.monotonic()
    with pytest.raises(DeadlockError) as caught:
        beta.acquire(["x.py"], younger, wait=10)

    assert time.monotonic() - start < 3.0
    assert caught.value.waits_for == "bd-old"
    beta.release_all("run-young")
    thread.join(timeout=5)
    assert errors == []
    assert {lock.path: lock.holder.run_id for lock in alpha.locks()} == {
        "x.py": "run-old",
        "y.py": "run-old",
    }


def test_a_lock_lives_as_long_as_its_runs_lease(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    lease_key = f"{PREFIX}.lease:{REPO}:bd-a"
    client.set(lease_key, "alpha:1/task|7")
    alpha = table(redis_url, clone(tmp_path, "alpha"), (lease_key, "alpha:1/task|7"))
    beta = table(redis_url, clone(tmp_path, "beta"))
    alpha.acquire(["a.py", "b.py"], run("a"))

    # While the lease holds its value, the lock stands
    with pytest.raises(LockError):
        beta.acquire(["a.py"], run("b"), wait=0)
    assert beta.free_orphans(beta.scan(), 0) == []

    # When the lease lapses (alpha died or was cut off), beta takes a.py over at once
    client.delete(lease_key)
    assert beta.acquire(["a.py"], run("b"), wait=0) == ["a.py"]

    # And any machine's janitor frees the rest of alpha's locks
    assert table(redis_url).free_orphans(beta.scan(), 0) == ["b.py (lease lapsed)"]
    assert [(lock.path, lock.holder.run_id) for lock in beta.locks()] == [("a.py", "run-b")]


def test_a_lease_taken_by_another_run_no_longer_backs_the_old_runs_locks(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    lease_key = f"{PREFIX}.lease:{REPO}:bd-a"
    client.set(lease_key, "alpha:1/task|7")
    alpha = table(redis_url, clone(tmp_path, "alpha"), (lease_key, "alpha:1/task|7"))
    alpha.acquire(["a.py"], run("a"))

    client.set(lease_key, "beta:2/task|8")  # the lease lapsed and beta's run took it

    assert table(redis_url).free_orphans(alpha.scan(), 0) == ["a.py (lease lapsed)"]


def test_the_janitor_and_status_find_every_repos_table(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    table(redis_url, clone(tmp_path, "app")).acquire(["a.py"], run("a"))
    SharedLockTable(client, PREFIX, "lib", clone(tmp_path, "lib")).acquire(["b.py"], run("b"))

    tables = SharedLockTable.all_in(client, PREFIX)

    assert [(t.name, [lock.path for lock in t.locks()]) for t in tables] == [
        ("app", ["a.py"]),
        ("lib", ["b.py"]),
    ]
    tables[1].force_release("b.py")
    assert tables[1].locks() == []


def test_a_redis_that_cannot_be_reached_is_a_lock_error_the_agent_can_read(
    tmp_path: Path,
) -> None:
    from tests.support.redis_server import free_port

    away = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    locks = SharedLockTable(away, PREFIX, REPO, clone(tmp_path, "alpha"))

    with pytest.raises(LockError) as caught:
        locks.acquire(["a.py"], run("a"))

    assert "cannot be reached" in str(caught.value)
