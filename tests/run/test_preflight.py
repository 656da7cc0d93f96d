"""bdp/run/preflight.py: each check's verdict and its one line, on the real bd stand-in,
git and bubblewrap; `require` stops on failures and lets warnings through."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.errors import PreflightError
from bdp.run.preflight import (
    Check,
    check_bd_installed,
    check_bd_workspace,
    check_credentials,
    check_git,
    check_sandbox,
    require,
    worker_checks,
)


@pytest.mark.parametrize(
    "environ",
    [
        {"ANTHROPIC_API_KEY": "sk-test"},
        {"CLAUDE_CODE_OAUTH_TOKEN": "tok"},
        {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
        {"CLAUDE_CODE_USE_BEDROCK": "1"},
    ],
    ids=["api-key", "oauth-token", "gateway", "bedrock"],
)
def test_any_way_to_the_api_passes_the_credentials_check(environ: dict[str, str]) -> None:
    assert check_credentials({"HOME": "/nonexistent", **environ}).status == "ok"


def test_the_clis_own_login_counts_as_credentials(tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / ".credentials.json").write_text("{}")

    check = check_credentials({"HOME": str(tmp_path)})

    assert (check.status, str(tmp_path) in check.detail) == ("ok", True)


def test_no_credentials_fails_saying_how_to_set_them(tmp_path: Path) -> None:
    check = check_credentials({"HOME": str(tmp_path), "ANTHROPIC_API_KEY": ""})

    assert check.failed
    assert "ANTHROPIC_API_KEY" in check.fix
    assert check.line().startswith("credentials: no API key")


def test_the_sandbox_check_makes_a_real_sandbox(tmp_path: Path) -> None:
    assert check_sandbox(Settings(home=tmp_path)).status == "ok"


def test_a_sandbox_switched_off_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    assert check_sandbox(Settings(home=tmp_path, sandbox=False)).status == "warning"


def test_bubblewrap_that_cannot_make_a_sandbox_fails_the_check(tmp_path: Path) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise subprocess.CalledProcessError(1, "bwrap", stderr=b"No permissions")

    check = check_sandbox(Settings(home=tmp_path), run=refused)

    assert check.failed
    assert "user namespaces" in check.fix


def test_bubblewrap_missing_fails_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    check = check_sandbox(Settings(home=tmp_path))

    assert check.failed
    assert "apt-get install bubblewrap" in check.fix


def test_bd_missing_fails_with_the_real_install_commands() -> None:
    check = check_bd_installed("/nonexistent/bd")

    assert check.failed
    assert "npm install -g @beads/bd" in check.fix
    assert "go install github.com/steveyegge/beads/cmd/bd@latest" in check.fix


@pytest.mark.usefixtures("stand_in_bd")
def test_the_workspace_check_asks_bd_in_the_repo(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "no-beads"
    bare.mkdir()
    subprocess.run(["git", "init", "-q", bare], check=True)

    assert check_bd_workspace("bd", repo).status == "ok"
    missing = check_bd_workspace("bd", bare)
    assert missing.failed
    assert "beads" in missing.detail.lower()


def test_no_git_identity_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q", tmp_path / "r"], check=True)

    check = check_git(tmp_path / "r")

    assert check.status == "warning"
    assert "user.email" in check.fix


def test_require_names_every_failure_and_returns_the_warnings() -> None:
    checks = [
        Check("a", "ok", "fine"),
        Check("b", "failed", "broken", "fix b"),
        Check("c", "warning", "odd"),
        Check("d", "failed", "gone", "fix d"),
    ]

    with pytest.raises(PreflightError, match=r"^b: broken; fix b; d: gone; fix d$"):
        require(checks)
    assert require([checks[0], checks[2]]) == [checks[2]]


@pytest.mark.usefixtures("stand_in_bd")
def test_a_worker_here_passes_every_check(tmp_path: Path) -> None:
    checks = worker_checks(Settings(home=tmp_path), {"ANTHROPIC_API_KEY": "sk-test"})

    assert [(c.name, c.status) for c in checks if c.status != "ok"] == []
