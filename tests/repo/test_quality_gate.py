"""bdp.repo.quality_gate: running the repo's own checks, and what goes back to the agent."""

from __future__ import annotations

from pathlib import Path

from bdp.repo.quality_gate import OUTPUT_KEPT, run_gate
from bdp.repo.repo_config import ShellCommand


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
