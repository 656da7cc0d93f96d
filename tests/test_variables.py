"""bdp.variables: a misspelt BDP_* variable is named with the setting it was meant to be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bdp.config import SETTINGS
from bdp.repo.fast_forward import MARKER_ENV
from bdp.repo.procs import RUN_ENV
from bdp.variables import OTHER_VARIABLES, known_variables, unknown_variables

ROOT = Path(__file__).resolve().parents[1]
#: ``BDP_*`` names in the code that are Python names, not variables.
NOT_VARIABLES = {"BDP_TOOLS", "BDP_MCP_TOOLS", "BDP_OWN"}
#: Misspelt names the tests use on purpose.
MISSPELT = {"BDP_TIMOUT"}
_NAME = re.compile(r"(?<![A-Za-z0-9_])BDP_[A-Z][A-Z0-9_]*")


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("BDP_TIMOUT", "BDP_TIMEOUT"),
        ("BDP_HEARTBEET", "BDP_HEARTBEAT"),
        ("BDP_REDIS", "BDP_REDIS_URL"),
        ("BDP_MAX_TURN", "BDP_MAX_TURNS"),
    ],
)
def test_an_unknown_variable_is_named_with_the_closest_setting(name: str, meant: str) -> None:
    assert unknown_variables({name: "5", "PATH": "/bin"}) == [
        f"{name} is not a bdp setting (did you mean {meant}?)"
    ]


def test_a_name_like_no_setting_points_at_bdp_config() -> None:
    assert unknown_variables({"BDP_NOTHING_LIKE_IT": "1"}) == [
        "BDP_NOTHING_LIKE_IT is not a bdp setting (`bdp config` lists the settings)"
    ]


def test_every_known_variable_passes_without_a_warning() -> None:
    env = dict.fromkeys(known_variables(), "x")
    assert unknown_variables({**env, "HOME": "/h", "BDPX": "not ours"}) == []


def test_each_unknown_variable_is_warned_about_once_in_name_order() -> None:
    warnings = unknown_variables({"BDP_ZZZ_A": "", "BDP_AAA_Z": "1", "BDP_QUEUE": "q"})
    assert [w.split()[0] for w in warnings] == ["BDP_AAA_Z", "BDP_ZZZ_A"]


def test_the_known_names_are_the_settings_and_the_others_listed_in_one_place() -> None:
    assert known_variables() == {s.variable for s in SETTINGS} | set(OTHER_VARIABLES)
    assert {RUN_ENV, MARKER_ENV} <= set(OTHER_VARIABLES)  # set by bdp on its own processes


def _scanned(path: Path) -> bool:
    """Sources, not caches; not this file, whose names are misspelt on purpose."""
    return "__pycache__" not in path.parts and path.resolve() != Path(__file__).resolve()


def used_names() -> dict[str, set[str]]:
    """Every ``BDP_*`` name in the code, the tests, the deployment files and the docs."""
    files = [ROOT / "Procfile", ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder in ("bdp", "tests", "bench", "deploy", "docs"):
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and _scanned(p)]
    found: dict[str, set[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in _NAME.findall(text):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_bdp_variable_the_project_uses_is_a_known_one() -> None:
    used = used_names()
    assert "BDP_TIMEOUT" in used  # the scan really read the sources
    strays = {
        name: sorted(paths)
        for name, paths in used.items()
        if name not in known_variables() | NOT_VARIABLES | MISSPELT
    }
    assert strays == {}, "add them to bdp.variables.OTHER_VARIABLES or bdp.config.SETTINGS"
