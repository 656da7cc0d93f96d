"""Repos by name: BDP_REPOS maps a name every machine shares to this machine's own clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.config_file import start
from bdp.errors import ConfigError, TaskError
from bdp.models import TaskArgs


def test_bdp_repos_maps_names_to_this_machines_clones() -> None:
    settings = Settings.from_env({"BDP_REPOS": "app=/srv/app/, lib = /home/me/lib"})

    assert settings.repos == (("app", "/srv/app"), ("lib", "/home/me/lib"))
    assert settings.clone_of("app") == Path("/srv/app")
    assert settings.clone_of("lib") == Path("/home/me/lib")


def test_a_repo_is_queued_by_its_name_and_an_unnamed_one_by_its_path() -> None:
    settings = Settings.from_env({"BDP_REPOS": "app=/srv/app"})

    assert settings.repo_key(Path("/srv/app")) == "app"
    assert settings.repo_key(Path("/srv/other")) == "/srv/other"
    assert settings.clone_of("/srv/other") == Path("/srv/other")  # a path names itself


def test_a_name_this_machine_does_not_map_has_no_clone_here() -> None:
    assert Settings.from_env({"BDP_REPOS": "app=/srv/app"}).clone_of("lib") is None
    assert Settings().clone_of("app") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("app", "is not name=/absolute/path"),
        ("app=relative/path", "is not name=/absolute/path"),
        ("/srv/app=/srv/app", "is not name=/absolute/path"),
        ("my app=/srv/app", "is not name=/absolute/path"),
        ("app=/a,app=/b", "names 'app' twice"),
    ],
)
def test_a_bad_bdp_repos_entry_is_named_with_the_form_to_use(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"BDP_REPOS": text})

    assert says in raised.value.message
    assert raised.value.message.startswith("BDP_REPOS")
    assert raised.value.hint


def test_the_user_file_maps_repos_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "config" / "bdp" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('repos = { app = "/srv/app", lib = "/srv/lib" }\n')
    path.chmod(0o600)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}

    start(env)

    assert Settings.from_env(env).repos == (("app", "/srv/app"), ("lib", "/srv/lib"))


def test_a_task_names_its_repo_by_path_or_by_name_never_by_a_relative_path() -> None:
    assert TaskArgs.from_task(TaskArgs("app", "t-1").to_task()).repo == "app"
    assert TaskArgs.from_task(TaskArgs("/srv/app", "t-1").to_task()).repo == "/srv/app"
    for bad in ("relative/path", "../app", "app name"):
        with pytest.raises(TaskError, match="absolute path or a repo name"):
            TaskArgs.from_task({**TaskArgs("app", "t-1").to_task(), "repo": bad})
