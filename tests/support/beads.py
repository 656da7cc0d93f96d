"""Helpers for tests that drive the `bd` stand-in (tests/support/fake_bd.py) as a subprocess."""

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

#: Directory holding the `bd` wrapper; put it first on PATH to use the stand-in.
BIN_DIR = Path(__file__).resolve().parent / "bin"
#: Ambient variables that would point bd at another workspace, actor, output mode or test hook.
AMBIENT_VARS = frozenset(
    {
        "BEADS_DIR",
        "BEADS_DB",
        "BD_DB",
        "BD_JSON",
        "BD_JSON_ENVELOPE",
        "BD_ACTOR",
        "BEADS_ACTOR",
        "BD_AGENT_MODE",
        "CLAUDE_CODE",
        "FAKE_BD_LOG",
        "FAKE_BD_FAIL",
        "FAKE_BD_KILL_CALLER",
        "FAKE_BD_KILL_CALLER_AFTER",
        "FAKE_BD_LEASES",
        "FAKE_BD_NOW",
    }
)
#: Seconds one stand-in call may take before the test fails instead of hanging.
BD_TIMEOUT = 30


def bd_env(base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Copy `base_env` with the stand-in first on PATH.

    Without `base_env`, start from os.environ minus AMBIENT_VARS, so a developer's own beads
    settings cannot leak into a test.
    """
    if base_env is None:
        env = {key: value for key, value in os.environ.items() if key not in AMBIENT_VARS}
    else:
        env = dict(base_env)
    env["PATH"] = os.pathsep.join(part for part in (str(BIN_DIR), env.get("PATH", "")) if part)
    return env


def run_bd(
    repo: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `bd <args>` in `repo` with the stand-in on PATH; never raises on a failing exit."""
    return subprocess.run(
        ["bd", *args],
        cwd=repo,
        env=bd_env(env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=BD_TIMEOUT,
        check=False,
    )


def run_bd_ok(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run `bd <args>` in `repo` and return stdout; raise with bd's stderr if it failed."""
    done = run_bd(repo, *args, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"bd {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def init_workspace(repo: Path, prefix: str = "t") -> None:
    """Create `repo` if needed and run the stand-in's `bd init` there."""
    repo.mkdir(parents=True, exist_ok=True)
    flags = ("--non-interactive", "--skip-hooks", "--skip-agents", "--quiet")
    run_bd_ok(repo, "init", "--prefix", prefix, *flags)


def create_issue(repo: Path, title: str, **fields: object) -> str:
    """`bd create` with `field=value` as `--field value`; returns the new id.

    Lists and tuples become comma lists, True becomes a bare flag, False/None are left out;
    e.g. `create_issue(repo, "x", priority=1, labels=["a", "b"], actor="alice")`.
    """
    args = ["create", title, "--silent"]
    for key, value in fields.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, list | tuple):
            args += [flag, ",".join(str(item) for item in value)]
        elif value is not None and value is not False:
            args += [flag, str(value)]
    return run_bd_ok(repo, *args).strip()


def show_issue(repo: Path, issue_id: str) -> dict[str, object]:
    """`bd show <id> --json`, unwrapped to the single issue object."""
    payload = json.loads(run_bd_ok(repo, "show", issue_id, "--json"))
    issue = payload[0] if isinstance(payload, list) else payload
    if not isinstance(issue, dict):
        raise RuntimeError(f"bd show {issue_id} printed {payload!r}")
    return issue


def bd_calls(log: Path) -> list[list[str]]:
    """The argv (without `bd`) of every stand-in call logged to ``log`` (``FAKE_BD_LOG``)."""
    if not log.exists():
        return []
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()]
