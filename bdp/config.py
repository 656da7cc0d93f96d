"""Settings: every knob bdp has, read once from ``BDP_*`` environment variables.

`SETTINGS` is the one table of them: each field's variable, how its text is read (a bare
number in a duration is in the unit the README gives it) and whether the user's config file
may set it. The file's values reach this module as variables (`bdp.config_file` puts them
under the environment's), so every secret in them is hidden wherever an environment secret
is. CLI options override, as keyword arguments of `Settings.from_env`. Secrets stay out of
``repr``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bdp.durations import parse_duration
from bdp.errors import ConfigError
from bdp.repo_names import parse_repo_names

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
#: The isolation a run gets when neither its task, BDP_ISOLATION nor the repo names one.
DEFAULT_ISOLATION = "worktree"


def tool_name(entry: str) -> str:
    """The tool an allowed-tools entry names: ``Bash`` for the rule ``Bash(git log:*)``."""
    return entry.split("(", 1)[0].strip()


def unknown_tools(entries: tuple[str, ...]) -> list[str]:
    """The entries naming a tool the bundled CLI does not offer (MCP tools are not checked:
    their servers come with the session)."""
    return [e for e in entries if not e.startswith("mcp__") and tool_name(e) not in CLI_TOOLS]


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
    watch_interval: float = DEFAULT_WATCH_INTERVAL  # s between `bd ready` polls of --watch
    repos: tuple[tuple[str, str], ...] = ()  # BDP_REPOS: (name, this machine's clone) pairs

    def __post_init__(self) -> None:
        check_choice(self.permission_mode, PERMISSION_MODES, "BDP_PERMISSION_MODE")
        if self.isolation is not None:
            check_choice(self.isolation, ISOLATION_MODES, "BDP_ISOLATION")
        if min(self.retries, self.max_turns, self.max_attempts) < 1:
            raise ConfigError("BDP_RETRIES, BDP_MAX_TURNS and BDP_MAX_ATTEMPTS must be at least 1")
        for name, value in (
            ("BDP_BUDGET_USD", self.budget_usd),
            ("BDP_MAX_COST_PER_ISSUE", self.max_cost_per_issue),
        ):
            if value is not None:
                check_usd(value, name)
        if self.redis_url:
            check_redis_url(self.redis_url, "BDP_REDIS_URL")

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"Settings({shown}, broker={self.broker_label!r})"

    @property
    def broker_label(self) -> str:
        """Where the queue lives, password masked."""
        if self.redis_url:
            return mask_url(self.redis_url)
        return f"sqlite:{self.home / 'queue.db'}"

    def repo_key(self, root: Path) -> str:
        """How the queue names the repo whose clone here is ``root``: its BDP_REPOS name,
        which every machine maps to its own clone; else its path (this machine only)."""
        return next((name for name, path in self.repos if Path(path) == root), str(root))

    def clone_of(self, key: str) -> Path | None:
        """This machine's clone of the repo the queue names ``key`` (a path names itself);
        None when BDP_REPOS does not map that name here."""
        if os.path.isabs(key):
            return Path(key)
        return next((Path(path) for name, path in self.repos if name == key), None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``BDP_*`` variables; keyword overrides win (CLI options)."""
        values = read_env(os.environ if env is None else env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    """ConfigError naming the choices when ``value`` is not one of them."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")


def check_usd(value: float, name: str) -> None:
    if value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive amount of USD")


def check_redis_url(url: str, name: str) -> None:
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"{name}={mask_url(url)!r} is not a Redis URL", "use redis://[:password@]host:port/db"
        )


Reader = Callable[[str, str], object]


def _text(text: str, name: str) -> str:
    return text


def _to_number(kind: type[int] | type[float], text: str, name: str) -> int | float:
    noun = "whole number" if kind is int else "number"
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a {noun}", f"use a {noun}") from None


def _number(kind: type[int] | type[float], least: float) -> Reader:
    def read(text: str, name: str) -> int | float:
        value = _to_number(kind, text, name)
        if value < least:
            raise ConfigError(f"{name}={text!r} must be at least {least:g}")
        return value

    return read


def _usd(text: str, name: str) -> float:
    value = float(_to_number(float, text, name))
    check_usd(value, name)
    return value


def _duration(bare_unit: str | None, allow_zero: bool = False) -> Reader:
    def read(text: str, name: str) -> float:
        return parse_duration(text, name, bare_unit, allow_zero=allow_zero)

    return read


def _on_off(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"{name}={text!r} is neither on nor off", f"set {name}=on or {name}=off")
    return value == "on"


def _tools(text: str, name: str) -> tuple[str, ...]:
    return tuple(t for t in (t.strip() for t in text.split(",")) if t)


def _choice(choices: tuple[str, ...]) -> Reader:
    def read(text: str, name: str) -> str:
        check_choice(text, choices, name)
        return text

    return read


def _redis_url(text: str, name: str) -> str:
    check_redis_url(text, name)
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its `Settings` field, its variable, how its text is read, and where else
    it may come from (the user's config file, or instead the repo's own file)."""

    field: str
    variable: str
    read: Reader
    user_file: bool = True  # the user's config file may set it
    unit: str = ""  # what a bare number means, for `bdp config` and the README
    secret: bool = False  # shown masked


#: Every setting, in the order `bdp config` shows them. ``home`` is only ever a variable: it
#: is where bdp's state is, found before anything else is read. ``isolation`` and ``remote``
#: are the repo's (``.bdp.toml``); the variable overrides the repo's value, the user's file
#: does not set them.
SETTINGS = (
    Setting("redis_url", "BDP_REDIS_URL", _redis_url, secret=True),
    Setting("secret", "BDP_SECRET", _text, secret=True),
    Setting("home", "BDP_HOME", _text, user_file=False),
    Setting("queue", "BDP_QUEUE", _text),
    Setting("bd", "BDP_BD", _text),
    Setting("timeout", "BDP_TIMEOUT", _duration("m"), unit="minutes"),
    Setting("retries", "BDP_RETRIES", _number(int, 1)),
    Setting("retry_wait", "BDP_RETRY_WAIT", _duration("s", True), unit="seconds"),
    Setting("heartbeat", "BDP_HEARTBEAT", _duration("s"), unit="seconds"),
    Setting("model", "BDP_MODEL", _text),
    Setting("max_turns", "BDP_MAX_TURNS", _number(int, 1)),
    Setting("permission_mode", "BDP_PERMISSION_MODE", _choice(PERMISSION_MODES)),
    Setting("allowed_tools", "BDP_ALLOWED_TOOLS", _tools),
    Setting("claude_cli", "BDP_CLAUDE_CLI", _text),
    Setting("lock_wait", "BDP_LOCK_WAIT", _duration("s", True), unit="seconds"),
    Setting("janitor_interval", "BDP_JANITOR_INTERVAL", _duration("s"), unit="seconds"),
    Setting("stale_after", "BDP_STALE_AFTER", _duration("s"), unit="seconds"),
    Setting("max_attempts", "BDP_MAX_ATTEMPTS", _number(int, 1)),
    Setting("wrapup", "BDP_WRAPUP", _duration("s", True), unit="seconds"),
    Setting("idle_timeout", "BDP_IDLE_TIMEOUT", _duration("s"), unit="seconds"),
    Setting("max_continuations", "BDP_MAX_CONTINUATIONS", _number(int, 0)),
    Setting("budget_usd", "BDP_BUDGET_USD", _usd),
    Setting("max_cost_per_issue", "BDP_MAX_COST_PER_ISSUE", _usd),
    Setting("pause_backoff", "BDP_PAUSE_BACKOFF", _duration("s"), unit="seconds"),
    Setting("hold_recheck", "BDP_HOLD_RECHECK", _duration("s"), unit="seconds"),
    Setting("watch_interval", "BDP_WATCH_INTERVAL", _duration("s"), unit="seconds"),
    Setting("repos", "BDP_REPOS", parse_repo_names),
    Setting("notify", "BDP_NOTIFY", _text, secret=True),
    Setting("sandbox", "BDP_SANDBOX", _on_off),
    Setting("land_wait", "BDP_LAND_WAIT", _duration("s", True), unit="seconds"),
    Setting("keep_branches", "BDP_KEEP_BRANCHES", _duration(None), unit="a unit is required"),
    Setting("isolation", "BDP_ISOLATION", _choice(ISOLATION_MODES), user_file=False),
    Setting("remote", "BDP_REMOTE", _text, user_file=False),
)


def read_env(env: Mapping[str, str]) -> dict[str, object]:
    """The `Settings` fields ``env`` sets (an empty variable is unset), each read and checked;
    ConfigError naming the variable at the first it cannot use."""
    values: dict[str, object] = {"home": default_home(env)}
    for setting in SETTINGS:
        text = env.get(setting.variable)
        if text and setting.field != "home":
            values[setting.field] = setting.read(text, setting.variable)
    return values
