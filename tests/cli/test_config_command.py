"""`bdp config` and the config file as a user meets them: where each value came from, secrets
masked, one warning per unknown variable, one `Error:` line per bad file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.cli.test_cli import error_line
from tests.integration.helpers import bdp
from tests.support.secrets import SECRET

FILE_SECRET = "file-only-secret-9f8e7d6c5b4a"
REDIS_PASSWORD = "redis-file-pass-1234"


def with_file(env: dict[str, str], tmp_path: Path, text: str, mode: int = 0o600) -> dict[str, str]:
    """``env`` with a user config file of its own holding ``text``."""
    path = tmp_path / "xdg-config" / "bdp" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}


def config_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = bdp(env, "config", *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def rows(view: dict[str, Any], part: str = "settings") -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in view[part]}


def test_each_setting_says_whether_it_came_from_the_environment_the_file_or_the_default(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given a user file with a timeout and a model, and BDP_MODEL in the environment
    env = with_file(env, tmp_path, 'timeout = "45m"\nmodel = "file-model"\n')
    env["BDP_MODEL"] = "env-model"
    # When bdp config is asked for JSON
    view = config_json(env)
    settings = rows(view)
    # Then each value names its source, and the environment's wins over the file's
    assert settings["timeout"] | {} == {
        "key": "timeout",
        "variable": "BDP_TIMEOUT",
        "value": 2700.0,
        "text": "45m",
        "source": "user file",
    }
    assert (settings["model"]["value"], settings["model"]["source"]) == ("env-model", "environment")
    assert (settings["max_turns"]["value"], settings["max_turns"]["source"]) == (200, "default")
    assert view["user_file"] == str(tmp_path / "xdg-config" / "bdp" / "config.toml")
    assert view["notes"] == [f"BDP_MODEL overrides model of {view['user_file']}"]


def test_secrets_are_masked_in_the_table_and_in_json(env: dict[str, str], tmp_path: Path) -> None:
    env = with_file(
        env,
        tmp_path,
        f'secret = "{FILE_SECRET}"\n'
        f'redis_url = "redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"\n'
        f'notify = "https://hooks.example.com/services/{FILE_SECRET}"\n',
    )
    env.pop("BDP_SECRET")
    table = bdp(env, "config")
    as_json = bdp(env, "config", "--json")
    for done in (table, as_json):
        assert done.returncode == 0, done.stderr
        output = done.stdout + done.stderr
        assert FILE_SECRET not in output
        assert REDIS_PASSWORD not in output
        assert SECRET not in output
    settings = rows(json.loads(as_json.stdout))
    assert settings["secret"]["value"] == "***"
    assert settings["redis_url"]["value"] == "redis://:***@127.0.0.1:1/0"
    assert settings["notify"]["value"] == "https://hooks.example.com/***"
    assert "redis://:***@" in table.stdout


def test_the_secret_from_the_environment_is_masked_too(env: dict[str, str]) -> None:
    done = bdp(env, "config")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    assert "***" in done.stdout


def commit_config(repo: Path, text: str) -> None:
    (repo / ".bdp.toml").write_text(text, encoding="utf-8")
    subprocess.run(["git", "add", ".bdp.toml"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "bdp config"], cwd=repo, check=True)


def test_with_a_repo_its_committed_settings_show_and_a_variable_still_wins(
    env: dict[str, str], repo: Path
) -> None:
    # Given a repo whose committed config names shared isolation, a remote and a review
    commit_config(repo, 'isolation = "shared"\nreview = true\nland = { remote = "origin" }\n')
    # When bdp config looks at it
    view = config_json(env, str(repo))
    # Then isolation and the remote are the repo file's, and so are its own settings
    settings, own = rows(view), rows(view, "repo")
    assert (settings["isolation"]["value"], settings["isolation"]["source"]) == (
        "shared",
        "repo file",
    )
    assert (settings["remote"]["value"], settings["remote"]["source"]) == ("origin", "repo file")
    assert (own["review"]["value"], own["review"]["source"]) == (True, "repo file")
    assert (own["fix_rounds"]["value"], own["fix_rounds"]["source"]) == (2, "default")
    assert view["repo_path"] == str(repo)
    # And BDP_ISOLATION overrides the repo's choice
    overridden = rows(config_json({**env, "BDP_ISOLATION": "worktree"}, str(repo)))
    assert (overridden["isolation"]["value"], overridden["isolation"]["source"]) == (
        "worktree",
        "environment",
    )


def test_a_user_setting_or_a_typo_in_the_repo_file_is_named_as_ignored(
    env: dict[str, str], repo: Path
) -> None:
    commit_config(repo, 'timeout = "45m"\nreveiw = true\n')
    notes = config_json(env, str(repo))["notes"]
    assert notes == [
        "timeout in .bdp.toml is not a repo setting, so bdp ignores it "
        "(set it in the user config file or BDP_TIMEOUT)",
        "reveiw in .bdp.toml is not a repo setting, so bdp ignores it (did you mean review?)",
    ]


def test_without_a_repo_isolation_is_the_default_worktree(env: dict[str, str]) -> None:
    settings = rows(config_json(env))
    assert (settings["isolation"]["value"], settings["isolation"]["source"]) == (
        "worktree",
        "default",
    )


def test_a_path_that_is_not_a_repo_is_one_error_line(env: dict[str, str], tmp_path: Path) -> None:
    line = error_line(bdp(env, "config", str(tmp_path / "nowhere")))
    assert f"{tmp_path / 'nowhere'} does not exist" in line


def test_a_misspelt_variable_is_one_warning_and_the_command_still_runs(
    env: dict[str, str],
) -> None:
    done = bdp({**env, "BDP_TIMOUT": "5"}, "status", "--json")
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)
    assert done.stderr.splitlines() == [
        "warning: BDP_TIMOUT is not a bdp setting (did you mean BDP_TIMEOUT?)"
    ]


def test_a_bad_value_in_the_file_is_one_error_line_naming_the_file_and_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = with_file(env, tmp_path, 'timeout = "soon"\n')
    line = error_line(bdp(env, "status"), exit_code=2)
    path = tmp_path / "xdg-config" / "bdp" / "config.toml"
    assert line.startswith(f"Error: {path}: timeout='soon' is not a duration (use minutes (30)")


def test_an_unknown_key_in_the_file_is_one_error_line_with_the_closest_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = with_file(env, tmp_path, "max_turn = 5\n")
    line = error_line(bdp(env, "config"), exit_code=2)
    assert line.endswith("max_turn is not a setting bdp reads from it (did you mean max_turns?)")


def test_a_file_others_can_read_is_a_warning(env: dict[str, str], tmp_path: Path) -> None:
    env = with_file(env, tmp_path, 'queue = "bdp"\n', mode=0o644)
    done = bdp(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "xdg-config" / "bdp" / "config.toml"
    assert done.stderr.splitlines() == [
        f"warning: {path} can be read by other users (mode 0644) and may hold secrets: "
        f"chmod 600 {path}"
    ]


def test_a_setting_from_the_file_reaches_the_command(env: dict[str, str], tmp_path: Path) -> None:
    # Given a file that names another queue
    env = with_file(env, tmp_path, 'queue = "from-file"\nredis_url = "redis://127.0.0.1:1/0"\n')
    # When status runs, it uses the file's broker (here one nobody listens on)
    line = error_line(bdp(env, "status"))
    # Then the error names the file's Redis
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in line
