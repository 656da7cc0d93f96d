"""bdp.repo.quality_gate: running the repo's own checks, and what goes back to the agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.repo.quality_gate import OUTPUT_KEPT, run_gate
from bdp.repo.repo_config import ShellCommand
from tests.support.secrets import API_KEY, DB_PASSWORD, REDIS_PASSWORD


def test_a_passing_gate_runs_every_command_in_the_repo(tmp_path: Path) -> None:
    commands = (ShellCommand("echo one > ran-1"), ShellCommand("pwd > ran-2"))

    result = run_gate(tmp_path, commands, "run1")

    assert result.passed
    assert (tmp_path / "ran-1").read_text() == "one\n"
    assert (tmp_path / "ran-2").read_text().strip() == str(tmp_path)


def test_a_failing_gate_stops_at_the_first_failure_with_its_output(tmp_path: Path) -> None:
    commands = (
        ShellCommand("echo checking; echo 'E: 2 tests failed' >&2; exit 1"),
        ShellCommand("touch never"),
    )

    result = run_gate(tmp_path, commands, "run1")

    assert not result.passed
    assert result.command.startswith("echo checking")
    assert "checking" in result.output
    assert "E: 2 tests failed" in result.output
    assert not (tmp_path / "never").exists()
    assert "quality gate failed" in result.feedback()
    assert "E: 2 tests failed" in result.feedback()


def test_gate_output_is_trimmed_to_its_tail(tmp_path: Path) -> None:
    result = run_gate(tmp_path, (ShellCommand("seq 1 5000; exit 3"),), "run1")

    assert len(result.output) == OUTPUT_KEPT
    assert result.output.endswith("5000\n")


def test_a_hanging_gate_command_fails_at_its_timeout(tmp_path: Path) -> None:
    result = run_gate(tmp_path, (ShellCommand("echo started; sleep 30", timeout=0.5),), "run1")

    assert not result.passed
    assert "timed out after 0.5s" in result.output


def test_a_gate_that_prints_its_environment_shows_no_secret_and_no_bdp_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker whose environment holds the API key, bdp's broker URL and a database URL
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("BDP_REDIS_URL", f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", f"postgres://app:{DB_PASSWORD}@127.0.0.1/app")
    monkeypatch.setenv("EDITOR", "vim-editor")

    # When a gate check prints its environment (and fails, so its output is kept)
    result = run_gate(tmp_path, (ShellCommand("env; exit 1"),), "run-7")

    # Then none of them reached it, but ordinary variables and the run's marker did
    for secret in (API_KEY, REDIS_PASSWORD, DB_PASSWORD, "BDP_REDIS_URL"):
        assert secret not in result.output
    assert "EDITOR=vim-editor" in result.output
    assert "BDP_RUN_ID=run-7" in result.output
