"""bdp.consumer at start: the user's config file applies, and what bdp does not know is said
once, on stderr, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

START = "import bdp.consumer; print('started', bdp.consumer.app.settings.queue)"


def start_consumer(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Import the module huey_consumer is pointed at, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", START],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def with_file(env: dict[str, str], tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "xdg-config" / "bdp" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}


def test_a_misspelt_variable_is_one_warning_line_at_consumer_start(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = start_consumer({**env, "BDP_TIMOUT": "5"}, tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "BDP_TIMOUT" in line]
    assert warnings == ["warning: BDP_TIMOUT is not a bdp setting (did you mean BDP_TIMEOUT?)"]
    assert "Traceback" not in done.stderr


def test_the_consumer_takes_its_settings_from_the_user_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = start_consumer(with_file(env, tmp_path, 'queue = "from-the-file"\n'), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "started from-the-file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("heartbeat = 'often'\n", "heartbeat='often' is not a duration"),
        (
            "heartbeet = 5\n",
            "heartbeet is not a setting bdp reads from it (did you mean heartbeat?)",
        ),
    ],
)
def test_a_bad_user_file_stops_the_consumer_with_one_error_line(
    env: dict[str, str], tmp_path: Path, text: str, message: str
) -> None:
    done = start_consumer(with_file(env, tmp_path, text), tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: {tmp_path / 'xdg-config' / 'bdp' / 'config.toml'}: ")
    assert message in lines[0]
