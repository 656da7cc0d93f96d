"""Settings: every knob bdp has, read once from ``BDP_*`` environment variables.

The CLI passes its options through the same names (click ``envvar=``), so a value set in a
terminal reaches the workers started from it. Secrets stay out of ``repr``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bdp.errors import ConfigError

#: Minutes an agent session may run before it is stopped and the issue reset.
DEFAULT_TIMEOUT_MINUTES = 30.0
#: Attempts per run for transient API or CLI failures (first try included).
DEFAULT_RETRIES = 3
#: First retry wait in seconds; doubles each time, with jitter, capped at 2 minutes.
DEFAULT_RETRY_WAIT = 5.0
#: Seconds between heartbeats of a running run.
DEFAULT_HEARTBEAT = 10.0
#: Turns an agent session may take.
DEFAULT_MAX_TURNS = 200
#: Permission mode handed to the Claude CLI; works as root, unlike bypassPermissions.
DEFAULT_PERMISSION_MODE = "acceptEdits"
#: The tools the bundled Claude CLI offers, by the names ``--tools`` and ``--allowedTools``
#: take (``Task`` is ``Agent``'s other name): what the CLI's session lists with every
#: tool asked for, and its report tool. ``StructuredOutput`` comes with an output format.
CLI_TOOLS = frozenset(
    {
        *("Agent", "Task", "Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "Write"),
        *("CronCreate", "CronDelete", "CronList", "EnterWorktree", "ExitWorktree"),
        *("ListAgents", "Monitor", "ReportFindings", "ScheduleWakeup", "SendMessage", "Skill"),
        *("TaskCreate", "TaskGet", "TaskList", "TaskStop", "TaskUpdate", "ToolSearch"),
        *("WebFetch", "WebSearch", "Workflow", "StructuredOutput"),
    }
)
#: Tools the agent is offered and may use without asking (each is in CLI_TOOLS: every tool
#: offered is sent with each model request, so one the agent never uses is paid for anyway).
DEFAULT_ALLOWED_TOOLS = ("Read", "Write", "Edit", "NotebookEdit", "Glob", "Grep", "Bash")
#: Seconds to wait for a file lock before the edit is denied.
DEFAULT_LOCK_WAIT = 60.0
#: Seconds between janitor sweeps (each consumer runs one).
DEFAULT_JANITOR_INTERVAL = 60.0
#: Seconds without a heartbeat after which a run counts as dead.
DEFAULT_STALE_AFTER = 60.0
#: Attempts per issue (janitor requeues included) before it waits for a human.
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds a session may wrap up after a graceful shutdown (SIGINT) before it is stopped.
DEFAULT_WRAPUP = 30.0
#: Seconds a landing waits for a person to commit or stash an edit the fast-forward would
#: overwrite in the main work tree, before the work is left on its branch.
DEFAULT_LAND_WAIT = 600.0
#: Days the janitor keeps a branch of work that did not land, once nobody works on it.
DEFAULT_KEEP_BRANCHES_DAYS = 14.0
DEFAULT_KEEP_BRANCHES = DEFAULT_KEEP_BRANCHES_DAYS * 86400
#: Seconds without any message from a session before it counts as hung and is stopped.
DEFAULT_IDLE_TIMEOUT = 600.0
#: Continuation sessions an unfinished issue gets before it waits for a human.
DEFAULT_MAX_CONTINUATIONS = 2
#: Seconds between `bd ready` polls of `bdp enqueue --watch` and `bdp run --watch`.
DEFAULT_WATCH_INTERVAL = 30.0
#: Seconds the queue pauses after a usage limit that gives no reset time (doubles up to 1 h).
DEFAULT_PAUSE_BACKOFF = 60.0
#: Seconds between a budget-held task's checks whether the budget was raised.
DEFAULT_HOLD_RECHECK = 30.0
#: Huey queue name; every Redis key bdp uses starts from it.
DEFAULT_QUEUE = "bdp"
#: Outcome records kept for `bdp status`.
OUTCOMES_KEPT = 1000

PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
#: Where agents work: a git worktree per run, or every agent in the repo's own work tree.
ISOLATION_MODES = ("worktree", "shared")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, name: str) -> float:
    """Seconds from ``"30"`` (minutes), ``"90s"``, ``"2m"``, ``"1h"`` or ``"7d"``."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{name}={text!r} is not a duration",
            "use minutes (30), or a number with s, m, h or d (90s, 2m, 1h, 7d)",
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def tool_name(entry: str) -> str:
    """The tool an allowed-tools entry names: ``Bash`` for the rule ``Bash(git log:*)``."""
    return entry.split("(", 1)[0].strip()


def unknown_tools(entries: tuple[str, ...]) -> list[str]:
    """The entries naming a tool the bundled CLI does not offer (MCP tools are not checked:
    their servers come with the session)."""
    return [e for e in entries if not e.startswith("mcp__") and tool_name(e) not in CLI_TOOLS]


def check_isolation(mode: str | None, name: str) -> None:
    """ConfigError naming the modes when ``mode`` is not one (None means "not set")."""
    if mode is not None and mode not in ISOLATION_MODES:
        raise ConfigError(
            f"{name}={mode!r} is not an isolation mode", f"use one of: {', '.join(ISOLATION_MODES)}"
        )


_QUERY_PASSWORD = re.compile(r"((?:^|&)(?:password|passwd|pass|pwd)=)([^&]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password (``:PW@`` or ``?password=PW``) replaced by ``***``."""
    parts = urlsplit(url)
    query = _QUERY_PASSWORD.sub(r"\1***", parts.query)
    if query != parts.query:
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
        parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


#: The umask of every file and folder bdp itself makes: the user's alone.
PRIVATE_UMASK = 0o077
_user_umask: int | None = None


def make_private() -> None:
    """Make this process's own files private from now on (umask 077).

    Its children (git, bd, the agent's CLI, the gate) are started with `user_umask`, so what
    they write in the user's repo is as the user would have written it.
    """
    global _user_umask
    previous = os.umask(PRIVATE_UMASK)
    if _user_umask is None:
        _user_umask = previous


def user_umask() -> int:
    """The umask the user started bdp with."""
    if _user_umask is not None:
        return _user_umask
    current = os.umask(PRIVATE_UMASK)
    os.umask(current)
    return current


def check_home(home: Path) -> None:
    """Raise ConfigError when ``home`` cannot be bdp's state dir: a file is in its way, or it
    (or the nearest folder that exists on its way) cannot be written."""
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = "is" if existing == home else f"would be made under {existing}, which is"
    if not existing.is_dir():
        raise ConfigError(
            f"BDP_HOME={home} {where} not a folder",
            "point BDP_HOME at a folder of yours (or unset it for ~/.local/state/bdp)",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"BDP_HOME={home} {where} not writable by you",
            "point BDP_HOME at a folder you can write to (or fix its owner and mode)",
        )


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """Per-user state directory: ``$BDP_HOME``, else ``$XDG_STATE_HOME/bdp``."""
    env = os.environ if env is None else env
    if env.get("BDP_HOME"):
        return Path(env["BDP_HOME"]).expanduser()
    xdg = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg).expanduser() / "bdp"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated once."""

    home: Path = field(default_factory=default_home)
    redis_url: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)  # BDP_SECRET: signs task messages
    queue: str = DEFAULT_QUEUE
    bd: str = "bd"
    timeout: float = DEFAULT_TIMEOUT_MINUTES * 60
    retries: int = DEFAULT_RETRIES
    retry_wait: float = DEFAULT_RETRY_WAIT
    heartbeat: float = DEFAULT_HEARTBEAT
    model: str | None = None
    max_turns: int = DEFAULT_MAX_TURNS
    permission_mode: str = DEFAULT_PERMISSION_MODE
    allowed_tools: tuple[str, ...] = DEFAULT_ALLOWED_TOOLS
    claude_cli: str | None = None
    lock_wait: float = DEFAULT_LOCK_WAIT
    janitor_interval: float = DEFAULT_JANITOR_INTERVAL
    stale_after: float = DEFAULT_STALE_AFTER
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    wrapup: float = DEFAULT_WRAPUP
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_continuations: int = DEFAULT_MAX_CONTINUATIONS
    budget_usd: float | None = None  # the queue's budget: no session starts once it is spent
    max_cost_per_issue: float | None = None  # a session crossing it is stopped, issue reset
    pause_backoff: float = DEFAULT_PAUSE_BACKOFF
    hold_recheck: float = DEFAULT_HOLD_RECHECK  # seconds between a held task's looks
    notify: str | None = field(default=None, repr=False)  # a command or http(s) URL per event
    isolation: str | None = None  # BDP_ISOLATION; None: the repo's setting, else the default
    sandbox: bool = True  # BDP_SANDBOX=off runs agents' shells without the OS sandbox
    land_wait: float = DEFAULT_LAND_WAIT  # s a landing waits for a person's conflicting edit
    keep_branches: float = DEFAULT_KEEP_BRANCHES  # s the janitor keeps branches of unlanded work
    remote: str | None = None  # BDP_REMOTE: land through this remote (else the repo's own)

    def __post_init__(self) -> None:
        if self.permission_mode not in PERMISSION_MODES:
            raise ConfigError(
                f"BDP_PERMISSION_MODE={self.permission_mode!r} is not a permission mode",
                f"use one of: {', '.join(PERMISSION_MODES)}",
            )
        check_isolation(self.isolation, "BDP_ISOLATION")
        if min(self.retries, self.max_turns, self.max_attempts) < 1:
            raise ConfigError("BDP_RETRIES, BDP_MAX_TURNS and BDP_MAX_ATTEMPTS must be at least 1")
        for name, value in (
            ("BDP_BUDGET_USD", self.budget_usd),
            ("BDP_MAX_COST_PER_ISSUE", self.max_cost_per_issue),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"{name}={value!r} must be a positive amount of USD")
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"BDP_REDIS_URL={mask_url(self.redis_url)!r} is not a Redis URL",
                "use redis://[:password@]host:port/db",
            )

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"Settings({shown}, broker={self.broker_label!r})"

    @property
    def broker_label(self) -> str:
        """Where the queue lives, password masked."""
        if self.redis_url:
            return mask_url(self.redis_url)
        return f"sqlite:{self.home / 'queue.db'}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``BDP_*`` variables; keyword overrides win (CLI options)."""
        values = _read_env(os.environ if env is None else env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _read_env(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {"home": default_home(env)}
    if env.get("BDP_REDIS_URL"):
        values["redis_url"] = env["BDP_REDIS_URL"]
    if env.get("BDP_SECRET"):
        values["secret"] = env["BDP_SECRET"]
    names = (
        ("queue", "BDP_QUEUE"),
        ("bd", "BDP_BD"),
        ("model", "BDP_MODEL"),
        ("claude_cli", "BDP_CLAUDE_CLI"),
        ("notify", "BDP_NOTIFY"),
        ("isolation", "BDP_ISOLATION"),
        ("remote", "BDP_REMOTE"),
    )
    for key, name in names:
        if env.get(name):
            values[key] = env[name]
    if env.get("BDP_PERMISSION_MODE"):
        values["permission_mode"] = env["BDP_PERMISSION_MODE"]
    if env.get("BDP_TIMEOUT"):
        values["timeout"] = parse_duration(env["BDP_TIMEOUT"], "BDP_TIMEOUT")
    if env.get("BDP_ALLOWED_TOOLS"):
        tools = (t.strip() for t in env["BDP_ALLOWED_TOOLS"].split(","))
        values["allowed_tools"] = tuple(t for t in tools if t)
    if env.get("BDP_SANDBOX"):
        values["sandbox"] = _on_off(env["BDP_SANDBOX"], "BDP_SANDBOX")
    values.update(_read_numbers(env))
    if env.get("BDP_KEEP_BRANCHES"):
        values["keep_branches"] = parse_duration(env["BDP_KEEP_BRANCHES"], "BDP_KEEP_BRANCHES")
    return values


def _on_off(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"{name}={text!r} is neither on nor off", f"set {name}=on or {name}=off")
    return value == "on"


def _read_numbers(env: Mapping[str, str]) -> dict[str, object]:
    numbers: dict[str, object] = {}
    spec: tuple[tuple[str, str, type[int] | type[float]], ...] = (
        ("retries", "BDP_RETRIES", int),
        ("max_turns", "BDP_MAX_TURNS", int),
        ("retry_wait", "BDP_RETRY_WAIT", float),
        ("heartbeat", "BDP_HEARTBEAT", float),
        ("lock_wait", "BDP_LOCK_WAIT", float),
        ("janitor_interval", "BDP_JANITOR_INTERVAL", float),
        ("stale_after", "BDP_STALE_AFTER", float),
        ("max_attempts", "BDP_MAX_ATTEMPTS", int),
        ("wrapup", "BDP_WRAPUP", float),
        ("idle_timeout", "BDP_IDLE_TIMEOUT", float),
        ("max_continuations", "BDP_MAX_CONTINUATIONS", int),
        ("budget_usd", "BDP_BUDGET_USD", float),
        ("max_cost_per_issue", "BDP_MAX_COST_PER_ISSUE", float),
        ("pause_backoff", "BDP_PAUSE_BACKOFF", float),
        ("hold_recheck", "BDP_HOLD_RECHECK", float),
        ("land_wait", "BDP_LAND_WAIT", float),
    )
    for key, name, kind in spec:
        if env.get(name):
            try:
                numbers[key] = kind(env[name])
            except ValueError:
                raise ConfigError(
                    f"{name}={env[name]!r} is not a number", f"set {name} to a {kind.__name__}"
                ) from None
    return numbers
