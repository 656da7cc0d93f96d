"""Every ``BDP_*`` variable bdp knows, and a warning for each other one.

A misspelt setting (``BDP_TIMOUT=5``) would otherwise be ignored without a word, and the
run would use the default. The names known are the settings' (`bdp.config.SETTINGS`) and
`OTHER_VARIABLES`: those bdp reads or sets that are not settings. tests/test_variables.py
checks that every ``BDP_*`` name the code, the deployment files and the README use is one
of them, so this list cannot fall behind.
"""

from __future__ import annotations

from collections.abc import Mapping

from bdp.config import SETTINGS

_NOTIFY = "given to a BDP_NOTIFY command with each event"
#: Variables bdp reads or sets that are not settings, and who uses each.
OTHER_VARIABLES = {
    "BDP_RUN_ID": "set by bdp on every process of a run, to find its leftovers",
    "BDP_LANDING": "set by bdp on the git processes of one landing",
    "BDP_EVENT": _NOTIFY,
    "BDP_ISSUE": _NOTIFY,
    "BDP_TITLE": _NOTIFY,
    "BDP_OUTCOME": _NOTIFY,
    "BDP_SUMMARY": _NOTIFY,
    "BDP_REASON": _NOTIFY,
    "BDP_COST_USD": _NOTIFY,
    "BDP_LOG": _NOTIFY,
    "BDP_REPO": "the Procfile's and the compose file's repo to queue (and " + _NOTIFY + ")",
    "BDP_WORKERS": "the Procfile's agents per consumer",
    "BDP_REDIS_PORT": "the Procfile's private Redis port",
    "BDP_REDIS_DIR": "the Procfile's private Redis data folder",
    "BDP_UID": "deploy/docker-compose.yml: the user the containers run as",
    "BDP_GID": "deploy/docker-compose.yml: the group the containers run as",
    "BDP_SOAK_ISSUES": "tests: issues in the soak test",
    "BDP_PROCFILE_TEST": "tests: marks the processes of the Procfile test",
    "BDP_TEST_MARK": "tests: marks a process whose environment a test looks for",
    "BDP_HOST": "the name this machine goes by in a shared queue (default: the hostname)",
}


def known_variables() -> frozenset[str]:
    """Every ``BDP_*`` name bdp reads or sets."""
    return frozenset({s.variable for s in SETTINGS} | set(OTHER_VARIABLES))


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One warning per ``BDP_*`` variable of ``env`` that bdp does not know, naming the
    closest known one."""
    known = known_variables()
    unknown = sorted(name for name in env if name.startswith("BDP_") and name not in known)
    if not unknown:
        return []
    import difflib  # only when there is something to suggest

    settings = [s.variable for s in SETTINGS]
    warnings = []
    for name in unknown:
        close = difflib.get_close_matches(name, settings, n=1) or difflib.get_close_matches(
            name, sorted(OTHER_VARIABLES), n=1
        )
        hint = f"did you mean {close[0]}?" if close else "`bdp config` lists the settings"
        warnings.append(f"{name} is not a bdp setting ({hint})")
    return warnings
