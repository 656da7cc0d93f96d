"""bdp's files are the user's alone; a state dir or setting it cannot use is one clear line.

Every command here runs as a real process started with a permissive umask (022), as most
users' shells have, so the modes seen are the ones bdp chose, not the test runner's.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.helpers import BDP, bdp_json, marker
from tests.support.beads import create_issue, show_issue
from tests.support.fake_api import FakeApi, Text, ToolUse
from tests.support.processes import CONSUMER
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration
USER_UMASK = 0o022


def run(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``argv`` as the user would start it: umask 022, no stdin."""
    return subprocess.run(
        list(argv),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        umask=USER_UMASK,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def open_to_others(home: Path) -> list[str]:
    """Everything under ``home`` that group or others may read, write or enter.

    A worktree's checked-out files are git's, at the user's umask, as any clone of theirs;
    the folders above them are bdp's and private, so nobody else reaches them.
    """
    found = []
    for path in [home, *home.rglob("*")]:
        inside_a_worktree = (
            path.relative_to(home).parts[:1] == ("worktrees",)
            and len(path.relative_to(home).parts) > 3
        )
        if path.is_symlink() or inside_a_worktree:
            continue
        if mode(path) & 0o077:
            found.append(f"{path.relative_to(home)} {mode(path):04o}")
    return found


def test_everything_bdp_makes_is_private_and_what_lands_is_as_the_user_makes_it(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given a user with umask 022 and a fresh state dir
    home = Path(env["BDP_HOME"])
    assert not home.exists()
    issue_id = create_issue(repo, "Private state")
    fake_api.script(
        [ToolUse("Write", {"file_path": "landed.txt", "content": "x\n"}), Text("DONE: wrote it")],
        match=marker(issue_id),
    )

    # When an issue runs to its landing (queue, key, locks, worktree, logs, landing notes)
    done = run(env, BDP, "run", str(repo), "-n", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert show_issue(repo, issue_id)["status"] == "closed"

    # Then nothing of bdp's is open to others, the queue's WAL files included
    made = {p.name for p in home.rglob("*")}
    assert {"queue.db", "logs", "locks"} <= made
    assert open_to_others(home) == []
    # And what landed in the user's own tree has the user's mode, as git gives it
    assert mode(repo / "landed.txt") == 0o644


def test_status_warns_about_a_state_dir_others_can_read(env: dict[str, str]) -> None:
    home = Path(env["BDP_HOME"])
    home.mkdir(mode=0o755)
    home.chmod(0o755)

    text = run(env, BDP, "status").stdout
    report = bdp_json(env, "status")

    assert "STATE DIR readable by others" in text
    assert "chmod 700" in text
    assert report["home_private"] is False
    home.chmod(0o700)
    assert bdp_json(env, "status")["home_private"] is True


@pytest.mark.parametrize("command", [["status"], ["enqueue", "."], ["clean"], ["consumer"]])
def test_a_state_dir_under_a_regular_file_is_one_error_line_everywhere(
    env: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    bad = {**env, "BDP_HOME": str(blocker / "bdp")}
    argv = [CONSUMER, "bdp.consumer.huey"] if command == ["consumer"] else [BDP, *command]

    done = run(bad, *argv, timeout=60)

    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("Error:")]
    assert f"BDP_HOME={blocker / 'bdp'} would be made under {blocker}" in line
    assert "not a folder" in line


def test_a_bad_setting_at_consumer_start_is_one_line_naming_it(env: dict[str, str]) -> None:
    done = run({**env, "BDP_SANDBOX": "maybe"}, CONSUMER, "bdp.consumer.huey", timeout=60)

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: BDP_SANDBOX='maybe' is neither on nor off (set BDP_SANDBOX=on or BDP_SANDBOX=off)"
    ]


def test_a_remote_redis_without_a_secret_stops_the_consumer_with_one_line(
    env: dict[str, str],
) -> None:
    bare = {k: v for k, v in env.items() if k != "BDP_SECRET"}
    bare["BDP_REDIS_URL"] = "redis://queue-host.invalid:6379/0"

    done = run(bare, CONSUMER, "bdp.consumer.huey", timeout=60)

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: BDP_REDIS_URL is set but BDP_SECRET is not")
    assert "openssl rand -hex 32" in line


def test_redis_down_at_consumer_start_is_a_line_per_retry_not_a_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    down = {**env, "BDP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    log = tmp_path / "consumer.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [CONSUMER, "bdp.consumer.huey", "-w", "1"],
            env=down,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        # long enough for the workers' hold check (once a second) to meet the broker away too
        started = time.monotonic()
        deadline, long_enough = started + 20, started + 3.5
        while time.monotonic() < long_enough or (
            log.read_text().count("cannot reach Redis") < 3 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
    finally:
        os.kill(process.pid, 9)
        process.wait()
    text = log.read_text()
    assert text.count("cannot reach Redis") >= 3
    assert "Traceback" not in text


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_an_unreachable_redis_is_named_without_its_password(
    env: dict[str, str], repo: Path, form: str
) -> None:
    port, password = free_port(), "pw-never-shown-4242"
    url = {
        "userinfo": f"redis://:{password}@127.0.0.1:{port}/0",
        "query": f"redis://127.0.0.1:{port}/0?password={password}",
    }[form]
    down = {**env, "BDP_REDIS_URL": url}
    create_issue(repo, "Waits for the broker")

    for argv in (["status"], ["status", "--json"], ["enqueue", str(repo)]):
        done = run(down, BDP, *argv, timeout=60)
        assert done.returncode == 1
        assert "cannot reach Redis" in done.stderr
        assert f"127.0.0.1:{port}" in done.stderr
        assert password not in done.stdout + done.stderr
