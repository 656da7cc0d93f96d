#!/usr/bin/env python3
"""Test stand-in for the beads `bd` 1.0.5 CLI, following ../shared/beads-cli.md.

Covers init, create, ready (incl. --claim), list, show, update (incl. the --claim compare-and-set),
close, reopen, comment/comments, dep add and version, with bd's JSON shapes, error channels and
exit codes; and parent-child hierarchies: `create --parent` (ids `X.1`, `X.2`), `ready --parent`
(every descendant), `list --parent/--type/--id`, epic counts in `show --include-dependents`
and the guard against closing an epic with open children. State lives in `.beads/issues.json`;
every invocation holds an exclusive `fcntl.flock` on `.beads/lock` for its whole
read-modify-write and replaces the store atomically, so concurrent processes serialize the way
real bd's embedded Dolt does. Tests use it as `bd` by putting tests/support/bin first on PATH
(see `bd_env` in tests/support/beads.py).

Test hooks (environment variables):
- `FAKE_BD_LOG=<file>`: every invocation appends one JSON line `{"argv": [...], "cwd": "..."}`
  (argv without the program name), so tests can count and inspect calls.
- `FAKE_BD_FAIL=<subcommand>`: that subcommand prints `Error: simulated failure` to stderr and
  exits 1.
- `FAKE_BD_KILL_CALLER=<words>`: an invocation whose arguments include all these words (say
  `close`, or `update --claim`) SIGKILLs the process that ran it and does nothing: the caller
  dies right before that step. `FAKE_BD_KILL_CALLER_AFTER=<words>`: the same once the step
  is done and saved (the caller dies right after it).
- `FAKE_BD_LEASES=1`: behave like bd 1.3 and accept `bd heartbeat ID` (work lease renewal by
  the assignee); without it `heartbeat` is an unknown command, as in 1.0.5
- `FAKE_BD_NOW=YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`: freeze the clock (UTC), for deterministic ids
  and ordering.
"""

# subprocess, tempfile, hashlib and uuid are imported where used: every test spawns this
# script many times, and those imports (plus dataclasses) were a third of its start-up time.
import contextlib
import fcntl
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NamedTuple

Issue = dict[str, Any]
Store = dict[str, Any]
#: Where a fatal error goes: "stdout" = bd's FatalErrorRespectJSON, "stderr" = FatalError,
#: "text" = the message verbatim on stderr (cobra errors, missing workspace).
Channel = Literal["stdout", "stderr", "text"]

VERSION = "1.0.5"
STORE_FILE = "issues.json"
LOCK_FILE = "lock"
STATUSES = ("open", "in_progress", "blocked", "deferred", "closed", "pinned", "hooked")
TYPES = frozenset(
    (
        "bug",
        "feature",
        "task",
        "epic",
        "chore",
        "decision",
        "message",
        "molecule",
        "gate",
        "spike",
        "story",
        "milestone",
    )
)
TYPE_ALIASES = {
    "enhancement": "feature",
    "feat": "feature",
    "dec": "decision",
    "adr": "decision",
    "investigation": "spike",
    "timebox": "spike",
    "user-story": "story",
    "ms": "milestone",
}
HIDDEN_FROM_READY = frozenset(
    {"merge-request", "gate", "molecule", "message", "agent", "role", "rig"}
)
BLOCKING = frozenset({"blocks", "conditional-blocks"})
DONE = frozenset({"closed", "pinned"})
SORT_POLICIES = ("hybrid", "priority", "oldest")
FIELD_ORDER = (
    "id",
    "title",
    "description",
    "design",
    "acceptance_criteria",
    "notes",
    "status",
    "priority",
    "issue_type",
    "assignee",
    "owner",
    "created_at",
    "created_by",
    "updated_at",
    "started_at",
    "closed_at",
    "close_reason",
    "defer_until",
    "labels",
)
TEXT_UPDATES = {
    "title": "title",
    "description": "description",
    "design": "design",
    "notes": "notes",
    "acceptance": "acceptance_criteria",
    "assignee": "assignee",
}
NO_DATABASE = (
    "Error: no beads database found\n"
    "Hint: run 'bd where' to inspect the resolved workspace, "
    "or 'bd init' to create a new database\n"
    "      or set BEADS_DIR to point to your .beads directory"
)
USAGE = "bd (fake_bd stand-in) - issue tracker\n\nUsage:\n  bd [command]"


class BdError(Exception):
    """A fatal error, reported on the channel real bd uses for it (contract §4)."""

    def __init__(self, message: str, channel: Channel = "stdout") -> None:
        super().__init__(message)
        self.message = message
        self.channel = channel


def usage_error(message: str) -> BdError:
    """A cobra-style error: plain `Error: ...` on stderr even in JSON mode."""
    return BdError(f"Error: {message}", "text")


# ---------------------------------------------------------------------------------------------
# Argument parsing (cobra-like: flags anywhere, `--` ends flags, unknown flags are errors)


class Flag(NamedTuple):
    dest: str
    display: str
    takes_value: bool


def flag_table(specs: str) -> dict[str, Flag]:
    """Build flags from specs like "-s/--status" (takes a value) or "--claim!" (boolean)."""
    table: dict[str, Flag] = {}
    for spec in specs.split():
        names = spec.removesuffix("!").split("/")
        flag = Flag(names[-1].lstrip("-"), ", ".join(names), not spec.endswith("!"))
        table.update(dict.fromkeys(names, flag))
    return table


GLOBAL_FLAGS = flag_table("--json! --actor -C -q/--quiet!")


class Args(NamedTuple):
    command: str
    positionals: list[str]
    values: dict[str, list[str]]

    def get(self, dest: str) -> str | None:
        found = self.values.get(dest)
        return found[-1] if found else None

    def flag(self, dest: str) -> bool:
        return self.get(dest) not in (None, "false", "0")

    def items(self, dest: str) -> list[str]:
        """Values of a repeatable flag that also takes comma-separated lists."""
        parts = (part.strip() for value in self.values.get(dest, []) for part in value.split(","))
        return [part for part in parts if part]


def lookup(table: Mapping[str, Flag], name: str) -> Flag:
    if name in table:
        return table[name]
    if name.startswith("--"):
        raise usage_error(f"unknown flag: {name}")
    raise usage_error(f"unknown shorthand flag: {name[1:2]!r} in {name}")


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """Find the subcommand like cobra does: the first argument that is not a global flag."""
    index = 0
    while index < len(argv) and argv[index] != "--":
        arg = argv[index]
        if not arg.startswith("-") or arg == "-":
            return arg, argv[:index] + argv[index + 1 :]
        flag = lookup(GLOBAL_FLAGS, arg.partition("=")[0])
        index += 2 if flag.takes_value and "=" not in arg else 1
    return "", argv


def parse_args(argv: list[str]) -> Args:
    command, rest = split_command(argv)
    args = Args(command, [], {})
    if not command:
        return args
    if command not in COMMANDS:
        raise usage_error(f'unknown command "{command}" for "bd"\nRun \'bd --help\' for usage.')
    table = {**GLOBAL_FLAGS, **COMMANDS[command].flags}
    index = 0
    while index < len(rest):
        arg = rest[index]
        index += 1
        if arg == "--":
            args.positionals.extend(rest[index:])
            break
        if arg.startswith("-") and arg != "-":
            index = take_flag(table, arg, rest, index, args)
        else:
            args.positionals.append(arg)
    return args


def take_flag(table: Mapping[str, Flag], arg: str, rest: list[str], index: int, args: Args) -> int:
    """Record one flag occurrence; return the index of the next unread argument."""
    name, has_inline, inline = arg.partition("=")
    flag = lookup(table, name)
    if has_inline or not flag.takes_value:
        value = inline if has_inline else "true"
    elif index < len(rest):
        value, index = rest[index], index + 1
    else:
        raise usage_error(f"flag needs an argument: {name}")
    args.values.setdefault(flag.dest, []).append(value)
    return index


def int_option(args: Args, dest: str, default: int) -> int:
    raw = args.get(dest)
    if raw is None:
        return default
    if re.fullmatch(r"[+-]?[0-9]+", raw):
        return int(raw)
    display = next(f.display for f in COMMANDS[args.command].flags.values() if f.dest == dest)
    raise usage_error(
        f'invalid argument "{raw}" for "{display}" flag: '
        f'strconv.ParseInt: parsing "{raw}": invalid syntax'
    )


def require_ids(args: Args) -> list[str]:
    if not args.positionals:
        raise usage_error(f'"bd {args.command}" requires at least 1 arg(s), only received 0')
    return args.positionals


# ---------------------------------------------------------------------------------------------
# Context, time, actor, output


class Ctx:
    """One invocation: parsed arguments, environment, clock and (once locked) the store."""

    def __init__(self, args: Args, env: Mapping[str, str], now_ns: int, as_json: bool) -> None:
        self.args = args
        self.env = env
        self.cwd = working_dir(args)
        self.now_ns = now_ns
        self.as_json = as_json
        self.store: Store = {}

    @cached_property
    def actor(self) -> str:
        explicit = (self.args.get("actor"), self.env.get("BD_ACTOR"), self.env.get("BEADS_ACTOR"))
        for candidate in explicit:
            if candidate:
                return candidate
        return git_user_name(self.cwd) or self.env.get("USER") or "unknown"

    @property
    def now(self) -> str:
        return stamp(self.now_ns)

    @property
    def issues(self) -> dict[str, Issue]:
        issues: dict[str, Issue] = self.store["issues"]
        return issues

    @property
    def deps(self) -> list[dict[str, str]]:
        deps: list[dict[str, str]] = self.store["deps"]
        return deps

    @property
    def comments(self) -> list[dict[str, str]]:
        comments: list[dict[str, str]] = self.store["comments"]
        return comments


def git_user_name(cwd: Path) -> str:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "config", "user.name"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def clock_ns(env: Mapping[str, str]) -> int:
    frozen = env.get("FAKE_BD_NOW")
    if not frozen:
        return time.time_ns()
    head, _, fraction = frozen.removesuffix("Z").partition(".")
    try:
        moment = datetime.fromisoformat(head).replace(tzinfo=UTC)
        return int(moment.timestamp()) * 10**9 + int(fraction.ljust(9, "0")[:9])
    except ValueError:
        raise BdError(f"FAKE_BD_NOW={frozen!r} is not YYYY-MM-DDTHH:MM:SS[.f]Z", "text") from None


def stamp(ns: int, *, nanos: bool = False) -> str:
    """RFC 3339 UTC: second precision as stored by bd, or Go's trimmed nanoseconds."""
    seconds, fraction = divmod(ns, 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos and fraction:
        text += f".{fraction:09d}".rstrip("0")
    return text + "Z"


def emit(value: object) -> None:
    """Arrays raw; objects get schema_version and sorted keys, like bd's map re-encoding."""
    if isinstance(value, dict):
        value = {**value, "schema_version": 1}
    print(json.dumps(value, indent=2, sort_keys=isinstance(value, dict), ensure_ascii=False))


def warn(message: str) -> None:
    print(message, file=sys.stderr)


def report(err: BdError, as_json: bool) -> None:
    if err.channel == "text" or not as_json:
        warn(err.message if err.channel == "text" else f"Error: {err.message}")
        return
    payload = json.dumps({"error": err.message, "schema_version": 1}, indent=2)
    print(payload, file=sys.stdout if err.channel == "stdout" else sys.stderr)


# ---------------------------------------------------------------------------------------------
# Workspace and storage


def working_dir(args: Args) -> Path:
    target = args.get("C")
    if target is None:
        return Path.cwd()
    path = Path(target).resolve()
    if not path.is_dir():
        raise usage_error(f"-C {target}: not a directory")
    return path


def find_workspace(ctx: Ctx) -> Path | None:
    """BEADS_DIR (unless -C was given), else walk up to the git root looking for .beads/."""
    env_dir = ctx.env.get("BEADS_DIR")
    if env_dir and ctx.args.get("C") is None:
        beads = ctx.cwd / env_dir
        return beads if (beads / "metadata.json").is_file() else None
    for directory in (ctx.cwd, *ctx.cwd.parents):
        if (directory / ".beads" / "metadata.json").is_file():
            return directory / ".beads"
        if (directory / ".git").exists():
            return None
    return None


@contextlib.contextmanager
def locked(beads: Path) -> Iterator[None]:
    fd = os.open(beads / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_store(beads: Path) -> Store:
    try:
        store: Store = json.loads((beads / STORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BdError(f"cannot read {beads / STORE_FILE}: {err}", "stderr") from None
    return store


def save_store(beads: Path, store: Store) -> None:
    import tempfile

    fd, temp = tempfile.mkstemp(dir=beads, prefix=".issues.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(store, handle, indent=1, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, beads / STORE_FILE)


# ---------------------------------------------------------------------------------------------
# Ids


def base36(number: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits or "0"


def adaptive_length(count: int) -> int:
    """Shortest hash (3..8) whose birthday-collision odds stay at or under 25%."""
    for length in range(3, 9):
        if 1 - math.exp(-(count**2) / (2 * 36**length)) <= 0.25:
            return length
    return 8


def new_id(ctx: Ctx, title: str, description: str) -> str:
    import hashlib

    prefix = ctx.store["prefix"]
    for length in range(adaptive_length(len(ctx.issues)), 9):
        for nonce in range(10):
            seed = f"{title}|{description}|{ctx.actor}|{ctx.now_ns}|{nonce}"
            digest = hashlib.sha256(seed.encode()).digest()
            candidate = f"{prefix}-{base36(int.from_bytes(digest[:8], 'big'))[:length]}"
            if candidate not in ctx.issues:
                return candidate
    raise BdError("failed to generate a unique issue id", "stderr")


def resolve(store: Store, token: str) -> str:
    """Exact id, then bare hash with the prefix added, then a unique substring of the hash."""
    issues: dict[str, Issue] = store["issues"]
    prefix = f"{store['prefix']}-"
    if token in issues:
        return token
    if prefix + token in issues:
        return prefix + token
    needle = token.removeprefix(prefix)
    matches = sorted(i for i in issues if needle and needle in i.removeprefix(prefix))
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = " ".join(matches)
        raise BdError(f'ambiguous ID "{token}" matches {len(matches)} issues: [{listed}]')
    raise BdError(f'no issue found matching "{token}"')


def resolve_soft(ctx: Ctx, token: str, label: str) -> Issue | None:
    """Resolve one id of a batch; on failure print `<label> <token>: <why>` and skip it."""
    try:
        return ctx.issues[resolve(ctx.store, token)]
    except BdError as err:
        warn(f"{label} {token}: {err.message}")
        return None


# ---------------------------------------------------------------------------------------------
# Issue views and graph queries


def plain(issue: Issue) -> Issue:
    """The Issue object in bd's struct field order (empty fields are never stored)."""
    return {key: issue[key] for key in FIELD_ORDER if key in issue}


def set_field(issue: Issue, key: str, value: object) -> None:
    if value in (None, "", []):
        issue.pop(key, None)
    else:
        issue[key] = value


def outgoing(store: Store, issue_id: str) -> list[dict[str, str]]:
    return [edge for edge in store["deps"] if edge["issue_id"] == issue_id]


def incoming(store: Store, issue_id: str) -> list[dict[str, str]]:
    return [edge for edge in store["deps"] if edge["depends_on_id"] == issue_id]


def comments_of(store: Store, issue_id: str) -> list[dict[str, str]]:
    return [comment for comment in store["comments"] if comment["issue_id"] == issue_id]


def parent_of(store: Store, issue_id: str) -> str | None:
    parents = [e["depends_on_id"] for e in outgoing(store, issue_id) if e["type"] == "parent-child"]
    return parents[0] if parents else None


def open_blockers(store: Store, issue_id: str) -> list[str]:
    edges = [e for e in outgoing(store, issue_id) if e["type"] in BLOCKING]
    issues = store["issues"]
    return [e["depends_on_id"] for e in edges if issues[e["depends_on_id"]]["status"] not in DONE]


def is_blocked(store: Store, issue_id: str, seen: frozenset[str] = frozenset()) -> bool:
    """Blocked by an open blocker, or (propagating down) by a blocked parent."""
    if open_blockers(store, issue_id):
        return True
    parent = parent_of(store, issue_id)
    if parent is None or parent in seen:
        return False
    return is_blocked(store, parent, seen | {issue_id})


def with_counts(store: Store, issue: Issue, edges: list[Any], counted: set[str] | None) -> Issue:
    """Issue plus dependencies and the three counts (of edge types in `counted`, None = all)."""
    item = plain(issue)
    if edges:
        item["dependencies"] = edges
    if parent := parent_of(store, issue["id"]):
        item["parent"] = parent
    back = incoming(store, issue["id"])
    forward = outgoing(store, issue["id"])
    item["dependency_count"] = sum(counted is None or e["type"] in counted for e in forward)
    item["dependent_count"] = sum(counted is None or e["type"] in counted for e in back)
    item["comment_count"] = len(comments_of(store, issue["id"]))
    return item


def list_item(store: Store, issue: Issue) -> Issue:
    """ready/list element: counts of `blocks` edges only, dependencies as raw edge records."""
    edges = [dict(edge) for edge in outgoing(store, issue["id"])]
    return with_counts(store, issue, edges, {"blocks"})


def detail(ctx: Ctx, issue_id: str) -> Issue:
    """show element: dependencies as issue objects + dependency_type, counts of all edges."""
    issues = ctx.issues
    edges = outgoing(ctx.store, issue_id)
    targets = [{**plain(issues[e["depends_on_id"]]), "dependency_type": e["type"]} for e in edges]
    item = with_counts(ctx.store, issues[issue_id], targets, None)
    if ctx.args.flag("include-comments") and (notes := comments_of(ctx.store, issue_id)):
        item["comments"] = notes
    if ctx.args.flag("include-dependents") and (back := incoming(ctx.store, issue_id)):
        keys = ("id", "title", "status", "priority", "issue_type")
        item["dependents"] = [
            {**{k: issues[e["issue_id"]][k] for k in keys}, "dependency_type": e["type"]}
            for e in back
        ]
    if ctx.args.flag("include-dependents") and issues[issue_id]["issue_type"] == "epic":
        item.update(epic_progress(ctx.store, issue_id))
    return item


def epic_progress(store: Store, epic_id: str) -> dict[str, object]:
    """An epic's child counts, as `show --include-dependents` adds them (none without children)."""
    children = children_of(store, epic_id)
    if not children:
        return {}
    done = len(children) - len(open_children(store, epic_id))
    total = len(children)
    return {
        "epic_total_children": total,
        "epic_closed_children": done,
        "epic_closeable": done == total,
    }


def sort_issues(items: list[Issue], policy: str, now_ns: int) -> list[Issue]:
    if policy == "oldest":
        return sorted(items, key=lambda i: (i["created_at"], i["id"]))
    if policy == "hybrid":
        cutoff = stamp(now_ns - int(timedelta(hours=48).total_seconds()) * 10**9)
        recent = [i for i in items if i["created_at"] >= cutoff]
        older = [i for i in items if i["created_at"] < cutoff]
        recent.sort(key=lambda i: (i["priority"], i["created_at"], i["id"]))
        return recent + sorted(older, key=lambda i: (i["created_at"], i["id"]))
    by_id = sorted(items, key=lambda i: i["id"])
    newest_first = sorted(by_id, key=lambda i: i["created_at"], reverse=True)
    return sorted(newest_first, key=lambda i: i["priority"])


def truncate(items: list[Issue], limit: int, noun: str) -> list[Issue]:
    if 0 < limit < len(items):
        warn(
            f"Showing {limit} of {len(items)} {noun}. "
            "Use --limit 0 for all, or --limit N to raise the cap."
        )
        return items[:limit]
    return items


def render_list(ctx: Ctx, items: list[Issue], heading: str, empty: str) -> None:
    if ctx.as_json:
        emit(items)
    elif not items:
        print(empty)
    else:
        print(f"{heading} ({len(items)} issues):\n")
        for number, item in enumerate(items, 1):
            kind = f"[P{item['priority']}] [{item['issue_type']}]"
            print(f"{number}. {kind} {item['id']}: {item['title']}")


def finish_batch(ctx: Ctx, done: list[Issue], verb: str) -> int:
    """Print the issues a batch command changed; exit 1 only if it changed none."""
    if not done:
        return 1
    if ctx.as_json:
        emit([plain(issue) for issue in done])
    else:
        for issue in done:
            print(f"✓ {verb} {issue['id']}: {issue['title']}")
    return 0


# ---------------------------------------------------------------------------------------------
# Validation helpers


def invalid_status(status: str) -> str:
    return (
        f'invalid status "{status}" (built-in: {", ".join(STATUSES)}; '
        "or configure custom statuses via 'bd config set status.custom')"
    )


def parse_priority(raw: str, channel: Channel) -> int:
    match = re.fullmatch(r"[Pp]?([0-4])", raw.strip())
    if match is None:
        raise BdError(f'invalid priority "{raw}" (expected 0-4 or P0-P4)', channel)
    return int(match.group(1))


def canonical_type(raw: str) -> str:
    return TYPE_ALIASES.get(raw.lower(), raw.lower())


def valid_type(raw: str, channel: Channel) -> str:
    kind = canonical_type(raw)
    if kind not in TYPES:
        raise BdError(f'invalid issue type "{raw}" (built-in: {", ".join(sorted(TYPES))})', channel)
    return kind


def sanitize_prefix(raw: str) -> str:
    prefix = raw.lstrip(".").rstrip("-").replace(".", "_")
    return prefix if re.match(r"[A-Za-z_]", prefix) else f"bd_{prefix}"


# ---------------------------------------------------------------------------------------------
# Commands: init, version


def cmd_init(ctx: Ctx) -> int:
    env_dir = ctx.env.get("BEADS_DIR")
    use_env = bool(env_dir) and ctx.args.get("C") is None
    beads = ctx.cwd / env_dir if use_env and env_dir else ctx.cwd / ".beads"
    if (beads / "metadata.json").exists():
        raise BdError(f"beads is already initialized in {beads} (will not re-initialize)", "stderr")
    prefix = sanitize_prefix(ctx.args.get("prefix") or ctx.cwd.name)
    beads.mkdir(mode=0o700, parents=True, exist_ok=True)
    beads.chmod(0o700)
    metadata = {
        "database": "dolt",
        "backend": "dolt",
        "dolt_mode": "embedded",
        "dolt_database": prefix.replace("-", "_"),
        "project_id": os.urandom(16).hex(),
    }
    with locked(beads):
        save_store(beads, {"prefix": prefix, "issues": {}, "deps": [], "comments": []})
        text = json.dumps(metadata, indent=2) + "\n"
        (beads / "metadata.json").write_text(text, encoding="utf-8")
    if not ctx.args.flag("quiet"):
        print("✓ bd initialized successfully!\n\n  Backend: dolt\n  Mode: embedded")
        print(f"  Database: {metadata['dolt_database']}\n  Issue prefix: {prefix}")
        print(f"  Issues will be named: {prefix}-<hash> (e.g., {prefix}-a3f)")
    return 0


def cmd_version(ctx: Ctx) -> int:
    if ctx.as_json:
        emit({"version": VERSION, "build": "fake_bd"})
    else:
        print(f"bd version {VERSION} (fake_bd stand-in)")
    return 0


# ---------------------------------------------------------------------------------------------
# Commands: create, dep add


def cmd_create(ctx: Ctx) -> int:
    if len(ctx.args.positionals) > 1:
        raise usage_error(f"accepts at most 1 arg(s), received {len(ctx.args.positionals)}")
    title = ctx.args.get("title") or "".join(ctx.args.positionals[:1])
    if not title.strip():
        raise BdError("title required", "stderr")
    parent = resolve_flag(ctx, "parent")
    issue = build_issue(ctx, title, parent)
    ctx.issues[issue["id"]] = issue
    if parent is not None:
        add_edge(ctx, issue["id"], parent, "parent-child")
    add_create_dependencies(ctx, issue["id"])
    if ctx.args.flag("silent"):
        print(issue["id"])
    elif ctx.as_json:
        created = stamp(ctx.now_ns, nanos=True)
        emit({**plain(issue), "created_at": created, "updated_at": created})
    else:
        print(f"✓ Created issue: {issue['id']}\n  Title: {title}\n  Priority: P{issue['priority']}")
    return 0


def resolve_flag(ctx: Ctx, dest: str) -> str | None:
    """The issue id a flag like --parent names, resolved like any id (errors on stderr)."""
    token = ctx.args.get(dest)
    if token is None:
        return None
    try:
        return resolve(ctx.store, token)
    except BdError as err:
        raise BdError(err.message, "stderr") from None


def child_id(ctx: Ctx, parent: str) -> str:
    """`<parent>.<n>`: one more than the parent's highest child number (bd keeps a counter)."""
    numbers = [
        int(rest)
        for issue_id in ctx.issues
        if issue_id.startswith(f"{parent}.") and (rest := issue_id[len(parent) + 1 :]).isdigit()
    ]
    return f"{parent}.{max(numbers, default=0) + 1}"


def build_issue(ctx: Ctx, title: str, parent: str | None = None) -> Issue:
    args = ctx.args
    fields = {
        "description": args.get("description"),
        "design": args.get("design"),
        "acceptance_criteria": args.get("acceptance"),
        "notes": args.get("notes"),
        "status": "open",
        "priority": parse_priority(args.get("priority") or "2", "stderr"),
        "issue_type": valid_type(args.get("type") or "task", "stderr"),
        "assignee": args.get("assignee"),
        "created_at": ctx.now,
        "created_by": ctx.actor,
        "updated_at": ctx.now,
        "labels": sorted(set(args.items("labels"))),
    }
    issue_id = (
        child_id(ctx, parent) if parent else new_id(ctx, title, args.get("description") or "")
    )
    issue: Issue = {"id": issue_id, "title": title}
    for key, value in fields.items():
        set_field(issue, key, value)
    return issue


def add_create_dependencies(ctx: Ctx, new: str) -> None:
    """--deps: bare id = new depends on it; `blocks:X` = new blocks X; `type:X` = typed edge."""
    for spec in ctx.args.items("deps"):
        kind, typed, ref = spec.partition(":")
        kind, ref = (kind.strip(), ref.strip()) if typed else ("blocks", spec)
        try:
            other = resolve(ctx.store, ref)
            pair = (other, new) if typed and kind == "blocks" else (new, other)
            add_edge(ctx, *pair, kind)
        except BdError as err:
            warn(f"Warning: failed to add dependency {spec!r}: {err.message}")


def add_edge(ctx: Ctx, issue_id: str, target: str, kind: str) -> None:
    if issue_id == target:
        raise BdError(f"cannot add self-dependency: {issue_id} cannot depend on itself")
    pair = [e for e in ctx.deps if e["issue_id"] == issue_id and e["depends_on_id"] == target]
    if pair and pair[0]["type"] == kind:
        return
    if pair:
        raise BdError(
            f'dependency {issue_id} -> {target} already exists with type "{pair[0]["type"]}"'
        )
    if kind in BLOCKING and reaches(ctx.store, target, issue_id):
        raise BdError("adding dependency would create a cycle")
    edge = {"issue_id": issue_id, "depends_on_id": target, "type": kind, "created_at": ctx.now}
    ctx.deps.append({**edge, "created_by": ctx.actor, "metadata": "{}"})


def reaches(store: Store, start: str, goal: str) -> bool:
    """Whether `goal` is reachable from `start` over blocking edges."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(e["depends_on_id"] for e in outgoing(store, node) if e["type"] in BLOCKING)
    return False


def cmd_dep(ctx: Ctx) -> int:
    operation, *operands = ctx.args.positionals or [""]
    if operation != "add":
        raise usage_error(f'unknown dep subcommand "{operation}" (this stand-in knows: add)')
    if len(operands) != 2:
        raise usage_error(f"accepts 2 arg(s), received {len(operands)}")
    issue_id, target = (resolve(ctx.store, token) for token in operands)
    kind = ctx.args.get("type") or "blocks"
    if len(kind) > 50:
        raise BdError("dependency type must be at most 50 characters")
    add_edge(ctx, issue_id, target, kind)
    if ctx.as_json:
        emit({"depends_on_id": target, "issue_id": issue_id, "status": "added", "type": kind})
    else:
        print(f"✓ Added dependency: {issue_id} depends on {target} ({kind})")
    return 0


# ---------------------------------------------------------------------------------------------
# Commands: ready, list, show


def cmd_ready(ctx: Ctx) -> int:
    policy = ctx.args.get("sort") or "priority"
    if policy not in SORT_POLICIES:
        raise BdError(
            f"invalid sort policy '{policy}'. Valid values: {', '.join(SORT_POLICIES)}", "stderr"
        )
    if ctx.args.flag("claim"):
        return claim_next(ctx, policy)
    found = sort_issues(ready_candidates(ctx), policy, ctx.now_ns)
    shown = truncate(found, int_option(ctx.args, "limit", 100), "ready issues")
    items = [list_item(ctx.store, issue) for issue in shown]
    render_list(ctx, items, "📋 Ready work", "✨ No ready work found")
    return 0


def ready_candidates(ctx: Ctx) -> list[Issue]:
    tests = ready_filters(ctx.args)
    if (parent := resolve_flag(ctx, "parent")) is not None:
        below = descendants(ctx.store, parent)
        tests.append(lambda issue: issue["id"] in below)
    return [i for i in ctx.issues.values() if is_ready(ctx, i) and all(t(i) for t in tests)]


def children_of(store: Store, issue_id: str) -> list[str]:
    return [e["issue_id"] for e in incoming(store, issue_id) if e["type"] == "parent-child"]


def descendants(store: Store, issue_id: str) -> set[str]:
    """Children, their children and so on (`bd ready --parent` is recursive)."""
    found: set[str] = set()
    todo = children_of(store, issue_id)
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(children_of(store, child))
    return found


def is_ready(ctx: Ctx, issue: Issue) -> bool:
    if issue["status"] != "open" or is_blocked(ctx.store, issue["id"]):
        return False
    return ctx.args.get("type") is not None or issue["issue_type"] not in HIDDEN_FROM_READY


def ready_filters(args: Args) -> list[Callable[[Issue], bool]]:
    tests: list[Callable[[Issue], bool]] = []
    if args.get("priority") is not None:
        priority = int_option(args, "priority", 0)
        tests.append(lambda issue: issue["priority"] == priority)
    if labels := set(args.items("label")):
        tests.append(lambda issue: labels <= set(issue.get("labels", [])))
    if (kind := args.get("type")) is not None:
        tests.append(lambda issue: issue["issue_type"] == canonical_type(kind))
    if args.flag("unassigned"):
        tests.append(lambda issue: not issue.get("assignee"))
    elif (who := args.get("assignee")) is not None:
        tests.append(lambda issue: issue.get("assignee") == who)
    return tests


def claim_next(ctx: Ctx, policy: str) -> int:
    """`bd ready --claim`: claim the first open, unassigned, unblocked issue (limit ignored)."""
    if ctx.args.get("assignee") is not None:
        raise BdError("--claim cannot be combined with --assignee", "stderr")
    pool = [issue for issue in ready_candidates(ctx) if not issue.get("assignee")]
    for issue in sort_issues(pool, policy, ctx.now_ns):
        if try_claim(issue, ctx.actor, ctx.now) is None:
            render_list(ctx, [list_item(ctx.store, issue)], "✓ Claimed", "")
            return 0
    if ctx.as_json:
        emit([])
    else:
        print("○ No ready work to claim")
    return 0


def list_statuses(args: Args) -> frozenset[str] | None:
    """Statuses `bd list` shows; None means all of them."""
    requested = args.items("status")
    if args.flag("all") or "all" in requested:
        return None
    if not requested:
        return frozenset(STATUSES) - DONE
    for status in requested:
        if status not in STATUSES:
            raise BdError(invalid_status(status), "stderr")
    return frozenset(requested)


def list_filters(ctx: Ctx) -> list[Callable[[Issue], bool]]:
    """`bd list --type T --parent P --id a,b`: P's direct children, exact ids."""
    tests: list[Callable[[Issue], bool]] = []
    if (kind := ctx.args.get("type")) is not None:
        tests.append(lambda issue: issue["issue_type"] == canonical_type(kind))
    if (parent := resolve_flag(ctx, "parent")) is not None:
        children = set(children_of(ctx.store, parent))
        tests.append(lambda issue: issue["id"] in children)
    if ids := set(ctx.args.items("id")):
        tests.append(lambda issue: issue["id"] in ids)
    return tests


def cmd_list(ctx: Ctx) -> int:
    wanted = list_statuses(ctx.args)
    pool = [i for i in ctx.issues.values() if wanted is None or i["status"] in wanted]
    pool = [i for i in pool if all(test(i) for test in list_filters(ctx))]
    agent_mode = ctx.env.get("BD_AGENT_MODE") == "1" or bool(ctx.env.get("CLAUDE_CODE"))
    limit = int_option(ctx.args, "limit", 20 if agent_mode else 50)
    shown = truncate(sort_issues(pool, "priority", ctx.now_ns), limit, "issues")
    render_list(ctx, [list_item(ctx.store, i) for i in shown], "Issues", "No issues found.")
    return 0


def cmd_show(ctx: Ctx) -> int:
    found = [resolve_soft(ctx, token, "Error fetching") for token in require_ids(ctx.args)]
    issues = [issue for issue in found if issue is not None]
    if not issues:
        raise BdError("no issues found matching the provided IDs")
    details = [detail(ctx, issue["id"]) for issue in issues]
    if ctx.as_json:
        emit(details)
        return 0
    for item in details:
        print(f"{item['id']}: {item['title']}\nStatus: {item['status']}")
        print(f"Priority: P{item['priority']}\nType: {item['issue_type']}\n")
    return 0


# ---------------------------------------------------------------------------------------------
# Commands: update (with the claim compare-and-set), close, reopen


def try_claim(issue: Issue, actor: str, now: str) -> str | None:
    """The §5.1 compare-and-set; returns why the claim failed, or None when it is ours."""
    status, holder = issue["status"], issue.get("assignee", "")
    if status == "open" and holder in ("", actor):
        issue.update(status="in_progress", assignee=actor, updated_at=now)
        issue.setdefault("started_at", now)
        return None
    if holder == actor and status == "in_progress":
        return None
    if holder:
        return f"issue already claimed by {holder}"
    return f"issue not claimable: status {status}"


def update_changes(args: Args) -> dict[str, Any]:
    given = {column: args.get(dest) for dest, column in TEXT_UPDATES.items()}
    changes: dict[str, Any] = {
        column: value for column, value in given.items() if value is not None
    }
    if (status := args.get("status")) is not None:
        if status not in STATUSES:
            raise BdError(invalid_status(status))
        changes["status"] = status
    if (priority := args.get("priority")) is not None:
        changes["priority"] = parse_priority(priority, "stdout")
    if (kind := args.get("type")) is not None:
        changes["issue_type"] = valid_type(kind, "stdout")
    return changes


def set_status(issue: Issue, status: str, now: str) -> None:
    previous = issue["status"]
    issue["status"] = status
    if status == "in_progress":
        issue.setdefault("started_at", now)
    if status == "closed":
        issue["closed_at"] = now
    elif previous == "closed":
        issue.pop("closed_at", None)
        issue.pop("close_reason", None)


def apply_changes(issue: Issue, changes: dict[str, Any], now: str) -> None:
    for key, value in changes.items():
        if key == "status":
            set_status(issue, value, now)
        else:
            set_field(issue, key, value)
    if changes:
        issue["updated_at"] = now


def cmd_update(ctx: Ctx) -> int:
    ids = require_ids(ctx.args)
    changes = update_changes(ctx.args)
    if not changes and not ctx.args.flag("claim"):
        print("No updates specified")
        return 0
    updated = []
    for token in ids:
        issue = resolve_soft(ctx, token, "Error resolving")
        if issue is None:
            continue
        if ctx.args.flag("claim") and (problem := try_claim(issue, ctx.actor, ctx.now)):
            warn(f"Error claiming {token}: {problem}")
            continue
        apply_changes(issue, changes, ctx.now)
        updated.append(issue)
    return finish_batch(ctx, updated, "Updated issue")


def close_reasons(args: Args, count: int) -> list[str]:
    given = args.values.get("reason", [])
    if len(given) == count:
        return list(given)
    if len(given) <= 1:
        return (given or ["Closed"]) * count
    raise BdError(f"got {len(given)} reasons for {count} issues (give one, or one per issue)")


def close_refusal(store: Store, issue: Issue) -> str | None:
    if issue["status"] == "pinned":
        return f"cannot modify pinned issue {issue['id']} (use --force to override)"
    if issue["issue_type"] == "epic" and (left := open_children(store, issue["id"])):
        return (
            f"cannot close epic {issue['id']}: {len(left)} open child issue(s); "
            "close them first (use --force to override)"
        )
    if blockers := open_blockers(store, issue["id"]):
        return (
            f"cannot close {issue['id']}: blocked by open issues [{' '.join(blockers)}] "
            "(use --force to override)"
        )
    return None


def open_children(store: Store, issue_id: str) -> list[str]:
    issues = store["issues"]
    return [c for c in children_of(store, issue_id) if issues[c]["status"] != "closed"]


def cmd_close(ctx: Ctx) -> int:
    issues = []
    for token in require_ids(ctx.args):
        try:
            issues.append(ctx.issues[resolve(ctx.store, token)])
        except BdError as err:
            raise BdError(f"resolving ID {token}: {err.message}") from None
    closed = []
    for issue, reason in zip(issues, close_reasons(ctx.args, len(issues)), strict=True):
        refusal = None if ctx.args.flag("force") else close_refusal(ctx.store, issue)
        if refusal:
            warn(refusal)
            continue
        issue.update(status="closed", closed_at=ctx.now, close_reason=reason, updated_at=ctx.now)
        closed.append(issue)
    return finish_batch(ctx, closed, "Closed")


def cmd_heartbeat(ctx: Ctx) -> int:
    """bd 1.3's work lease renewal (only with FAKE_BD_LEASES=1): the assignee extends it."""
    renewed = []
    for token in require_ids(ctx.args):
        issue = resolve_soft(ctx, token, "Error renewing")
        if issue is None:
            continue
        if issue.get("assignee") != ctx.actor:
            warn(f"Error renewing {token}: lease is held by {issue.get('assignee') or 'nobody'}")
            continue
        issue["lease_renewed_at"] = ctx.now
        renewed.append({"id": issue["id"], "lease_renewed_at": ctx.now})
    if not renewed:
        return 1
    if ctx.as_json:
        emit(renewed)
    else:
        print(f"renewed {len(renewed)}")
    return 0


def cmd_reopen(ctx: Ctx) -> int:
    reopened, failures = [], 0
    for token in require_ids(ctx.args):
        issue = resolve_soft(ctx, token, "Error reopening")
        if issue is None:
            failures += 1
        elif issue["status"] == "open":
            warn(f"{issue['id']} is already open")
        else:
            reopen(ctx, issue)
            reopened.append(issue)
    if reopened:
        return finish_batch(ctx, reopened, "Reopened")
    return 1 if failures else 0


def reopen(ctx: Ctx, issue: Issue) -> None:
    for key in ("closed_at", "close_reason", "defer_until"):
        issue.pop(key, None)
    issue.update(status="open", updated_at=ctx.now)
    if reason := ctx.args.get("reason"):
        ctx.comments.append(new_comment(ctx, issue["id"], reason))


# ---------------------------------------------------------------------------------------------
# Commands: comment, comments


def uuid7(ns: int) -> str:
    import uuid

    millis = (ns // 1_000_000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | (((rand >> 64) & 0xFFF) << 64)
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def new_comment(ctx: Ctx, issue_id: str, text: str) -> dict[str, str]:
    author = ctx.args.get("author") or ctx.actor
    return {
        "id": uuid7(ctx.now_ns),
        "issue_id": issue_id,
        "author": author,
        "text": text,
        "created_at": ctx.now,
    }


def add_comment(ctx: Ctx, rest: list[str]) -> int:
    if not rest:
        raise usage_error("requires at least 1 arg(s), only received 0")
    issue_id = resolve(ctx.store, rest[0])
    text = " ".join(rest[1:])
    if not text.strip():
        raise BdError("comment text cannot be empty")
    comment = new_comment(ctx, issue_id, text)
    ctx.comments.append(comment)
    if ctx.as_json:
        emit({**comment, "created_at": stamp(ctx.now_ns, nanos=True)})
    else:
        print(f"Comment added to {issue_id}")
    return 0


def cmd_comment(ctx: Ctx) -> int:
    return add_comment(ctx, ctx.args.positionals)


def cmd_comments(ctx: Ctx) -> int:
    rest = ctx.args.positionals
    if rest[:1] == ["add"]:
        return add_comment(ctx, rest[1:])
    if len(rest) != 1:
        raise usage_error(f"accepts 1 arg(s), received {len(rest)}")
    found = comments_of(ctx.store, resolve(ctx.store, rest[0]))
    if ctx.as_json:
        emit(found)
        return 0
    for comment in found:
        print(f"[{comment['author']}] {comment['text']} ({comment['created_at']})")
    return 0


# ---------------------------------------------------------------------------------------------
# Dispatch


class Command(NamedTuple):
    handler: Callable[[Ctx], int]
    flags: dict[str, Flag]
    needs_store: bool = True


COMMANDS: dict[str, Command] = {
    "init": Command(
        cmd_init,
        flag_table("-p/--prefix --non-interactive! --skip-hooks! --skip-agents!"),
        needs_store=False,
    ),
    "version": Command(cmd_version, {}, needs_store=False),
    "create": Command(
        cmd_create,
        flag_table(
            "--title -d/--description -t/--type -p/--priority -l/--label/--labels --acceptance"
            " --notes --design --deps -a/--assignee --parent --silent!"
        ),
    ),
    "ready": Command(
        cmd_ready,
        flag_table(
            "-n/--limit -p/--priority -l/--label -t/--type -a/--assignee -u/--unassigned!"
            " -s/--sort --claim! --parent"
        ),
    ),
    "list": Command(cmd_list, flag_table("-s/--status --all! -n/--limit -t/--type --parent --id")),
    "show": Command(cmd_show, flag_table("--include-comments! --include-dependents!")),
    "update": Command(
        cmd_update,
        flag_table(
            "--claim! -s/--status -a/--assignee --notes --title -d/--description --design"
            " --acceptance -p/--priority -t/--type"
        ),
    ),
    "close": Command(cmd_close, flag_table("-r/--reason -f/--force!")),
    "reopen": Command(cmd_reopen, flag_table("-r/--reason")),
    "heartbeat": Command(cmd_heartbeat, {}),
    "comment": Command(cmd_comment, flag_table("-a/--author")),
    "comments": Command(cmd_comments, flag_table("-a/--author")),
    "dep": Command(cmd_dep, flag_table("-t/--type")),
}


def json_requested(argv: list[str], env: Mapping[str, str]) -> bool:
    """`--json` before any `--` (after it, it is just an argument), or BD_JSON=1."""
    flags = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in flags or env.get("BD_JSON", "").lower() in ("1", "true")


def log_invocation(argv: list[str], env: Mapping[str, str]) -> None:
    if path := env.get("FAKE_BD_LOG"):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")


def run(argv: list[str], env: Mapping[str, str]) -> int:
    args = parse_args(argv)
    if not args.command:
        print(USAGE)
        return 0
    if args.command == "heartbeat" and env.get("FAKE_BD_LEASES") != "1":
        raise usage_error('unknown command "heartbeat" for "bd"\nRun \'bd --help\' for usage.')
    if env.get("FAKE_BD_FAIL") == args.command:
        raise usage_error("simulated failure")
    ctx = Ctx(args, env, clock_ns(env), json_requested(argv, env))
    command = COMMANDS[args.command]
    if not command.needs_store:
        return command.handler(ctx)
    beads = find_workspace(ctx)
    if beads is None:
        raise BdError(NO_DATABASE, "text")
    with locked(beads):
        ctx.store = load_store(beads)
        before = json.dumps(ctx.store)
        code = command.handler(ctx)
        if json.dumps(ctx.store) != before:
            save_store(beads, ctx.store)
    return code


def kill_caller_if(variable: str, argv: list[str]) -> None:
    """SIGKILL the calling process when ``argv`` has every word of the hook ``variable``."""
    words = os.environ.get(variable, "").split()
    if words and all(word in argv for word in words):
        import signal

        os.kill(os.getppid(), signal.SIGKILL)
        sys.exit(137)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log_invocation(argv, os.environ)
    kill_caller_if("FAKE_BD_KILL_CALLER", argv)
    try:
        code = run(argv, os.environ)
    except BdError as err:
        report(err, json_requested(argv, os.environ))
        return 1
    sys.stdout.flush()
    kill_caller_if("FAKE_BD_KILL_CALLER_AFTER", argv)
    return code


if __name__ == "__main__":
    sys.exit(main())
