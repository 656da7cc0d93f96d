"""The `bdp` command line as users meet it: one clear line per mistake, help, docs in sync.

Mistakes are checked on the real console script in a subprocess, so what is asserted is exactly
what a terminal shows; success paths run in-process through click's CliRunner.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdp.cli import main
from tests.integration.helpers import BDP, bdp
from tests.support.beads import create_issue
from tests.support.redis_server import RedisServer, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = ("enqueue", "run", "status", "logs")
SECRET = "hunter2-secret"


def error_line(done: subprocess.CompletedProcess[str], exit_code: int = 1) -> str:
    """The single ``Error: ...`` line bdp printed, after checking exit code and no traceback."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == exit_code, output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    return lines[0]


def down_redis_url() -> str:
    """A Redis URL with a password, on a local port nobody listens on."""
    return f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"


def test_a_missing_repo_path_is_named_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-repo"
    line = error_line(bdp(env, "enqueue", str(missing)))
    assert f"{missing} does not exist" in line


def test_a_repo_path_that_is_a_file_is_refused_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a repo\n")
    line = error_line(bdp(env, "enqueue", str(path)))
    assert f"{path} is not a directory" in line


def test_a_path_outside_any_git_work_tree_is_refused_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    line = error_line(bdp(env, "enqueue", str(plain)))
    assert "not inside a git work tree" in line
    assert str(plain) in line


def test_a_git_repo_without_a_beads_workspace_says_to_run_bd_init(
    env: dict[str, str], tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    subprocess.run(["git", "init", "-q", str(bare)], check=True, capture_output=True)
    line = error_line(bdp(env, "enqueue", str(bare)))
    assert "no beads workspace" in line
    assert "bd init" in line


def test_bd_missing_from_path_is_reported_in_one_line(
    env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    # Given a PATH holding git (bdp needs it) and no bd at all
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    git = shutil.which("git")
    assert git is not None
    (only_git / "git").symlink_to(git)
    # When enqueue runs with it
    done = bdp({**env, "PATH": str(only_git)}, "enqueue", str(repo))
    # Then bdp says bd is missing and how to point at it
    line = error_line(done)
    assert "`bd` was not found" in line
    assert "BDP_BD" in line


def test_a_bdp_bd_path_that_does_not_exist_is_reported_in_one_line(
    env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    nowhere = tmp_path / "nonexistent" / "bd"
    line = error_line(bdp({**env, "BDP_BD": str(nowhere)}, "enqueue", str(repo)))
    assert f"`{nowhere}` was not found" in line


def test_redis_down_makes_status_fail_in_one_line_without_the_password(
    env: dict[str, str],
) -> None:
    url = down_redis_url()
    line = error_line(bdp({**env, "BDP_REDIS_URL": url}, "status"))
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in line
    assert SECRET not in line


def test_redis_down_makes_enqueue_fail_in_one_line_without_the_password(
    env: dict[str, str], repo: Path
) -> None:
    # Given a ready issue, so enqueue has to talk to Redis
    create_issue(repo, "Needs the queue")
    # When Redis is unreachable
    done = bdp({**env, "BDP_REDIS_URL": down_redis_url()}, "enqueue", str(repo))
    # Then one line names the masked URL, never the password
    line = error_line(done)
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in line
    assert SECRET not in done.stdout + done.stderr


def test_a_bad_bdp_timeout_names_the_variable_and_the_accepted_forms(
    env: dict[str, str],
) -> None:
    line = error_line(bdp({**env, "BDP_TIMEOUT": "soon"}, "status"), exit_code=2)
    assert "BDP_TIMEOUT='soon' is not a duration" in line
    assert "90s" in line


def test_a_bad_bdp_timeout_for_run_names_the_variable_not_the_option(
    env: dict[str, str], repo: Path
) -> None:
    line = error_line(bdp({**env, "BDP_TIMEOUT": "soon"}, "run", str(repo)), exit_code=2)
    assert "BDP_TIMEOUT='soon' is not a duration" in line


def test_a_bad_timeout_option_names_the_option(env: dict[str, str], repo: Path) -> None:
    line = error_line(bdp(env, "run", str(repo), "--timeout", "-5m"), exit_code=2)
    assert "--timeout='-5m' is not a duration" in line


def test_a_bad_permission_mode_lists_the_allowed_values(env: dict[str, str]) -> None:
    done = bdp({**env, "BDP_PERMISSION_MODE": "yolo"}, "status")
    line = error_line(done, exit_code=2)
    assert "BDP_PERMISSION_MODE='yolo'" in line
    assert "default, acceptEdits, plan, bypassPermissions" in line


def test_logs_for_an_issue_without_runs_say_where_they_looked(
    env: dict[str, str], bdp_home: Path
) -> None:
    line = error_line(bdp(env, "logs", "--agent", "t-nope"))
    assert "no logs found for issue t-nope" in line
    assert str(bdp_home / "logs") in line


def test_a_failing_bd_is_reported_in_one_line(env: dict[str, str], repo: Path) -> None:
    line = error_line(bdp({**env, "FAKE_BD_FAIL": "ready"}, "enqueue", str(repo)))
    assert "bd could not list ready issues: simulated failure" in line


def test_status_json_masks_the_redis_password(
    env: dict[str, str], redis_url: str, redis_server: RedisServer
) -> None:
    assert redis_server.password
    assert redis_server.password in redis_url
    done = bdp({**env, "BDP_REDIS_URL": redis_url}, "status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["broker"] == redis_url.replace(redis_server.password, "***")
    assert redis_server.password not in done.stdout + done.stderr


def test_the_cli_offers_enqueue_run_status_and_logs() -> None:
    assert set(COMMANDS) <= set(main.commands)


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    summary = main.commands[command].get_short_help_str(limit=1000)
    assert 0 < len(summary) <= 60


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_appears_in_the_readme(command: str) -> None:
    assert f"bdp {command}" in README.read_text(encoding="utf-8")


@pytest.fixture
def cli_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The `env` fixture for in-process runs: the stand-in bd on PATH, no ambient BDP_*."""
    for name in os.environ:
        if name.startswith("BDP_") and name not in env:
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", env["PATH"])
    return env


def test_enqueue_dry_run_json_lists_ready_issues_and_queues_nothing(
    cli_env: dict[str, str], repo: Path
) -> None:
    # Given one ready issue
    issue_id = create_issue(repo, "Add a changelog", priority=1)
    runner = CliRunner()
    # When a dry run is asked for as JSON
    result = runner.invoke(
        main, ["enqueue", "--dry-run", "--json", str(repo)], env=cli_env, catch_exceptions=False
    )
    # Then the issue is listed as one that would be queued
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"id": issue_id, "title": "Add a changelog", "priority": 1, "state": "would queue"}
    ]
    # And the queue is still empty
    status = runner.invoke(main, ["status", "--json"], env=cli_env, catch_exceptions=False)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["queued"] == 0


def test_logs_json_gives_the_raw_messages_of_the_chosen_run(tmp_path: Path) -> None:
    # Given two runs' logs, each with its readable .log and its .jsonl of SDK messages
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True)
    for stamp, issue in (("20261125-120000", "t-abc"), ("20261125-130000", "t-xyz")):
        base = home / "logs" / f"{stamp}-{issue}-0123456789ab"
        base.with_suffix(".log").write_text(f"bdp: run of {issue}\n")
        lines = [{"type": "SystemMessage", "issue": issue}, {"type": "ResultMessage", "n": 2}]
        base.with_suffix(".jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    env = {**os.environ, "BDP_HOME": str(home)}

    # When scripts ask for one issue's messages as JSON
    done = subprocess.run(
        [BDP, "logs", "--agent", "t-abc", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tail = subprocess.run(
        [BDP, "logs", "--json", "--tail", "1"], env=env, capture_output=True, text=True, check=False
    )

    # Then every line is one JSON message of that run
    assert done.returncode == 0, done.stderr
    parsed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [m["type"] for m in parsed] == ["SystemMessage", "ResultMessage"]
    assert parsed[0]["issue"] == "t-abc"
    assert [json.loads(line) for line in tail.stdout.splitlines()] == [
        {"type": "ResultMessage", "n": 2}
    ]


def test_status_watch_with_a_bad_interval_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "BDP_HOME": str(tmp_path / "home")}
    line = error_line(bdp(env, "status", "--watch", "--interval", "soon"), exit_code=2)
    assert "--interval='soon' is not a duration" in line


# --- scope flags on enqueue and run -------------------------------------------------------------


def test_an_unknown_id_in_ids_is_one_error_line_and_nothing_is_queued(
    env: dict[str, str], repo: Path
) -> None:
    known = create_issue(repo, "Known")
    for command in ("enqueue", "run"):
        line = error_line(bdp(env, command, str(repo), "--ids", f"{known},t-nope"))
        assert "bd knows no issue 't-nope'" in line
    status = bdp(env, "status", "--json")
    assert json.loads(status.stdout)["queued"] == 0


def test_an_unknown_epic_is_one_error_line(env: dict[str, str], repo: Path) -> None:
    line = error_line(bdp(env, "run", str(repo), "--epic", "t-nope"))
    assert "bd knows no issue 't-nope'" in line


def test_order_input_without_ids_is_a_usage_error(env: dict[str, str], repo: Path) -> None:
    line = error_line(bdp(env, "enqueue", str(repo), "--order", "input"), exit_code=2)
    assert "--order input needs --ids" in line


def test_run_dry_run_json_lists_what_would_be_queued_and_runs_nothing(
    cli_env: dict[str, str], repo: Path
) -> None:
    # Given an epic with one child, and an issue outside it
    epic = create_issue(repo, "Epic", type="epic")
    child = create_issue(repo, "Child", parent=epic, priority=1)
    create_issue(repo, "Outside")
    runner = CliRunner()

    # When `bdp run --epic --dry-run --json` runs
    args = ["run", str(repo), "--epic", epic, "--dry-run", "--json"]
    result = runner.invoke(main, args, env=cli_env, catch_exceptions=False)

    # Then it prints enqueue's rows for the epic's child only, and queued nothing
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"id": child, "title": "Child", "priority": 1, "state": "would queue"}
    ]
    status = runner.invoke(main, ["status", "--json"], env=cli_env, catch_exceptions=False)
    assert json.loads(status.stdout)["queued"] == 0


def test_run_json_prints_only_the_records_and_keeps_the_exit_status(
    cli_env: dict[str, str], repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run (stood in for) that ends one issue DONE and one FAILED
    from bdp.cli import oneshot
    from bdp.models import Outcome, RunRecord

    records = [
        RunRecord("r1", "t-1", str(repo), "One", Outcome.DONE, "did it"),
        RunRecord("r2", "t-2", str(repo), "Two", Outcome.FAILED, "broke"),
    ]

    def fake_run_repo(app: object, path: Path, options: object, events: object) -> list[object]:
        return list(records)

    monkeypatch.setattr(oneshot, "run_repo", fake_run_repo)

    # When `bdp run --json` ends
    result = CliRunner().invoke(
        main, ["run", str(repo), "--json"], env=cli_env, catch_exceptions=False
    )

    # Then stdout is the records as JSON, and the exit status says something failed
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout) == [record.to_json() for record in records]
