"""bdp.ops.config_view: values as `bdp config` shows them, secrets masked, sources named."""

from __future__ import annotations

from pathlib import Path

from bdp.config_file import Start
from bdp.ops.config_view import collect_config

PASSWORD = "pw-not-for-eyes-123"


def shown(env: dict[str, str], started: Start | None = None) -> dict[str, tuple[str, str]]:
    view = collect_config(env, started or Start(), None)
    return {row.key: (row.text, row.source) for row in view.settings}


def test_durations_show_with_units_and_fractions_of_a_second_stay_exact(tmp_path: Path) -> None:
    rows = shown({"BDP_HOME": str(tmp_path), "BDP_HEARTBEAT": "0.5", "BDP_TIMEOUT": "90"})
    assert rows["heartbeat"] == ("0.5s", "environment")
    assert rows["timeout"] == ("1h30m", "environment")
    assert rows["keep_branches"] == ("14d", "default")
    assert rows["retry_wait"] == ("5s", "default")


def test_secrets_show_masked_and_unset_ones_as_a_dash(tmp_path: Path) -> None:
    env = {
        "BDP_HOME": str(tmp_path),
        "BDP_SECRET": PASSWORD,
        "BDP_REDIS_URL": f"redis://user:{PASSWORD}@queue:6379/0",
        "BDP_NOTIFY": f"notify-send --token {PASSWORD}",
    }
    rows = shown(env)
    assert rows["secret"] == ("***", "environment")
    assert rows["redis_url"] == ("redis://user:***@queue:6379/0", "environment")
    assert rows["notify"] == ("***", "environment")
    assert rows["model"] == ("-", "default")
    assert PASSWORD not in repr(collect_config(env, Start(), None).to_json())


def test_a_value_the_user_file_set_names_the_file_as_its_source(tmp_path: Path) -> None:
    started = Start(tmp_path / "config.toml", True, {"BDP_QUEUE": "queue"})
    rows = shown({"BDP_HOME": str(tmp_path), "BDP_QUEUE": "from-file"}, started)
    assert rows["queue"] == ("from-file", "user file")
