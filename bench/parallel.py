"""Parallel efficiency: do N workers finish a backlog N times faster than one?

    uv run python bench/parallel.py [--agent stub|claude] [--rounds 3] [--workers 1 2 4 8]
                                    [--isolation worktree|shared] [--common 0.2]

Why: bdp's value is running many agents at once, so the time between sessions (claiming through
bd, registering, committing under the per-repo git lock, closing, and Huey handing out the next
task) must stay small next to the sessions themselves, or adding workers stops paying.

24 ready issues in a stand-in bd workspace in a temp git repo; each session takes ~2 s. One real
``huey_consumer -w N -k thread`` on a private redis-server works through them. Makespan runs from
the start of the enqueue (bdp's enqueue API, in this process) to the end of the last run (its
outcome record, written right after `bd close`). Ideal: ceil(24 / N) x the session time;
efficiency = ideal / makespan. "scaling" compares with this run's own 1-worker makespan instead
(ceil(24 / N) x makespan(1) / 24), which leaves out the per-session cost every N pays.

Agents: ``stub`` (default) is bench/sleepy_worker.py, bdp's real tasks with an agent that sleeps
the session time and writes one file; it also logs a timeline, printed as "where the time goes".
``claude`` is bdp/consumer.py with the real bundled Claude CLI talking to the scripted fake
Messages API (tests/support/fake_api.py), whose first answer is delayed by the session time.

``--isolation`` picks where runs work (default: bdp's default, a worktree per run, landed by
the lander); ``--common 0.2`` (stub only) makes every fifth issue also add a line at the end of
one common file, so landings conflict and go back to their sessions: the report then gives
the conflict rate (issues that needed a landing round) and the landing latency (a session's
end -> its outcome record, after the commit is on main and bd closed the issue).

For investigating: ``--broker sqlite`` (Huey's SQLite queue polls, Redis blocks on BRPOP),
``--settle 60`` (let idle workers back off first), ``--consumer-args "-m 1"`` (any huey_consumer
option), ``--beads memory`` (stub only: no bd processes, to isolate bdp's own overhead).

``--baseline ab5ed46`` runs every trial also with that revision's bdp (unpacked with `git
archive`, first on the consumer's path), interleaved, and reports both; the enqueue is then
`bdp enqueue` of the same bdp in a process of its own (its start-up counts in the makespan).
The stub agent's timeline also counts the processes the consumer starts ("processes per
issue": bd and git of the runs, the janitor's bd calls included).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdp.config import Settings  # noqa: E402
from bdp.models import Outcome, RunRecord  # noqa: E402
from bdp.queue.app import App  # noqa: E402
from bdp.queue.enqueue import EnqueueOptions, enqueue_ready  # noqa: E402
from bench.harness import (  # noqa: E402
    Consumer,
    clean_env,
    copy_repo,
    make_repo,
    median,
    unpack,
    wait_until,
)
from bench.harness import private_redis as redis_server  # noqa: E402
from tests.integration.helpers import marker  # noqa: E402
from tests.support.beads import AMBIENT_VARS, BIN_DIR, create_issue, init_workspace  # noqa: E402
from tests.support.fake_api import Delay, FakeApi, Text, ToolUse, cli_env  # noqa: E402
from tests.support.processes import agent_processes  # noqa: E402

MODULES = {"stub": "bench.sleepy_worker.huey", "claude": "bdp.consumer.huey"}


@dataclass
class Trial:
    """One consumer with N workers through the whole backlog."""

    workers: int
    makespan: float  # start of enqueue -> last outcome record
    enqueue: float  # seconds the enqueue call took
    runs: list[float]  # per-run durations (run registered -> outcome recorded)
    cpu_busy: float  # fraction of all cores busy during the makespan (any process)
    cpu_ours: tuple[float, float]  # CPU s of the consumer, of its children, in the makespan
    timeline: list[dict[str, Any]] = field(default_factory=list)
    t0: float = 0.0
    records: list[RunRecord] = field(default_factory=list)


@dataclass
class Setup:
    """What every trial shares."""

    agent: str
    broker: str
    issues: list[str]
    template: Path
    session: float
    settle: float
    consumer_args: list[str]
    base_env: dict[str, str]
    beads: str = "bd"  # or "memory": the stub worker's in-process MemoryBeads
    isolation: str = ""  # BDP_ISOLATION for the consumer; "" leaves bdp's default
    common: tuple[str, ...] = ()  # issues that also edit the common file
    redis: Any = None  # a RedisServer when the broker is redis
    api: FakeApi | None = None
    sources: dict[str, str] = field(default_factory=dict)  # bdp -> its PYTHONPATH (--baseline)


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def build_template(work: Path, count: int) -> tuple[Path, list[str]]:
    """A git repo with a stand-in bd workspace holding ``count`` ready issues."""
    repo = make_repo(work / "template")
    init_workspace(repo)
    ids = [
        create_issue(repo, f"Bench issue {n}", description=f"Write bench/{n}.txt")
        for n in range(count)
    ]
    return repo, ids


def script_sessions(api: FakeApi, issues: list[str], session: float) -> None:
    """Each issue's session: the first answer comes after ``session`` s and writes one file."""
    for issue_id in issues:
        name = f"bench/{issue_id}.txt"
        write = ToolUse("Write", {"file_path": name, "content": f"work for {issue_id}\n"})
        api.script(
            [Delay(session, write), Text(f"Wrote {name}.\nDONE: added {name}")],
            match=marker(issue_id),
        )


def trial_env(setup: Setup, work: Path) -> dict[str, str]:
    env = dict(setup.base_env)
    env.update(
        BDP_HOME=str(work / "home"),
        BENCH_TIMELINE=str(work / "timeline.jsonl"),
        BENCH_SESSION_SECONDS=str(setup.session),
    )
    if setup.redis is not None:
        env["BDP_REDIS_URL"] = setup.redis.url
    if setup.beads == "memory":
        env.update(BENCH_BEADS="memory", BENCH_ISSUES=",".join(setup.issues))
    if setup.isolation:
        env["BDP_ISOLATION"] = setup.isolation
    env["BENCH_COMMON"] = ",".join(setup.common)
    return env


def run_trial(setup: Setup, workers: int, work: Path, source: str = "current") -> Trial:
    work.mkdir(parents=True)
    repo = copy_repo(setup.template, work / "repo")
    if setup.redis is not None:
        setup.redis.client().flushall()
    env = trial_env(setup, work)
    if setup.sources:
        env["PYTHONPATH"] = setup.sources[source]
    app = App.create(Settings.from_env(env))
    module = MODULES[setup.agent]
    consumer = Consumer(module, workers, env, work / "consumer.log", setup.consumer_args)
    try:
        consumer.start()
        time.sleep(setup.settle)  # let every worker finish its start-up hook (SDK import)
        own, children = consumer.cpu_seconds()
        trial = _measure(setup, app, repo, workers, work, env)
        own_after, children_after = consumer.cpu_seconds()
        trial.cpu_ours = (own_after - own, children_after - children)
        return trial
    finally:
        consumer.stop()
        _end_leftover_clis(setup)


def _measure(
    setup: Setup, app: App, repo: Path, workers: int, work: Path, env: dict[str, str]
) -> Trial:
    count = len(setup.issues)
    busy0, total0 = cpu_times()
    t0 = time.time()
    queued = _enqueue(setup, app, repo, env)
    enqueued = time.time() - t0
    if queued != count:
        raise SystemExit(f"enqueue queued {queued} of {count} issues")
    timeout = math.ceil(count / workers) * (setup.session * 4 + 10) + 60
    if not wait_until(lambda: _done(app) >= count, timeout, interval=0.05):
        raise SystemExit(f"not all issues finished within {timeout:.0f}s\n{_log_tail(work)}")
    busy1, total1 = cpu_times()
    records = app.state.outcomes()
    _check(records, repo if setup.beads == "bd" else None, work)
    end = max(r.finished for r in records)
    timeline_path = work / "timeline.jsonl"
    timeline = (
        [json.loads(line) for line in timeline_path.read_text().splitlines()]
        if timeline_path.exists()
        else []
    )
    return Trial(
        workers,
        end - t0,
        enqueued,
        [r.duration for r in records],
        (busy1 - busy0) / max(total1 - total0, 1),
        (0.0, 0.0),
        timeline,
        t0,
        records,
    )


def _enqueue(setup: Setup, app: App, repo: Path, env: dict[str, str]) -> int:
    """Queue the backlog: in this process, or (comparing bdps) with `bdp enqueue` of the bdp
    the consumer runs, whose tasks it can read; how many were queued."""
    if not setup.sources:
        return sum(e.state == "queued" for e in enqueue_ready(app, repo, EnqueueOptions()))
    argv = [sys.executable, "-c", "from bdp.cli import main; main()", "enqueue", str(repo)]
    done = subprocess.run([*argv, "--json"], env=env, cwd=repo.parent, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"bdp enqueue failed: {done.stderr.decode()[-500:]}")
    return sum(item.get("state") == "queued" for item in json.loads(done.stdout))


def _done(app: App) -> int:
    """Issues that are finished: landed, or given up after their landing rounds."""
    return sum(1 for r in app.state.outcomes() if r.outcome is Outcome.DONE or _gave_up(r))


def _gave_up(record: RunRecord) -> bool:
    return record.outcome is Outcome.FAILED and "landing rounds" in record.summary


def _sent_back(record: RunRecord) -> bool:
    """A run whose finished work did not land and went back to its session (a landing round)."""
    return record.outcome is Outcome.UNFINISHED and "could not land" in record.summary


def _check(records: list[RunRecord], repo: Path | None, work: Path) -> None:
    """Every issue ended DONE (after landing rounds, if any) and bd has every issue closed,
    or the numbers mean nothing."""
    bad = [
        f"{r.issue_id}: {r.outcome.value} {r.summary}"
        for r in records
        if r.outcome is not Outcome.DONE and not _sent_back(r) and not _gave_up(r)
    ]
    still_open = []
    if repo is not None:
        store = json.loads((repo / ".beads" / "issues.json").read_text())
        gave_up = {r.issue_id for r in records if _gave_up(r)}
        still_open = [
            i
            for i, issue in store["issues"].items()
            if issue["status"] != "closed" and i not in gave_up
        ]
    if bad or still_open:
        raise SystemExit(
            "runs did not all close their issue:\n"
            + "\n".join(bad + [f"{i} not closed" for i in still_open])
            + f"\n{_log_tail(work)}"
        )


def _log_tail(work: Path, lines: int = 30) -> str:
    """The end of the trial's consumer log (the temp dir is gone once the benchmark exits)."""
    text = (work / "consumer.log").read_text(errors="replace").splitlines()
    return "consumer log, last lines:\n" + "\n".join(text[-lines:])


def _end_leftover_clis(setup: Setup) -> None:
    """Claude CLIs our consumer started and left behind (after a SIGKILL), by their PIDs."""
    if setup.api is None:
        return
    for pid in agent_processes(setup.api.url):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        print(f"warning: ended a leftover claude CLI, pid {pid}", file=sys.stderr)


# -- reporting ---------------------------------------------------------------------------


def report(setup: Setup, trials: dict[int, list[Trial]]) -> None:
    count, session = len(setup.issues), setup.session
    one = median([t.makespan for t in trials[1]]) if 1 in trials else None
    beads = "" if setup.beads == "bd" else " beads=memory (diagnostic: no bd processes)"
    print(
        f"\nagent={setup.agent}{beads} broker={setup.broker} issues={count} "
        f"session={session:g}s isolation={setup.isolation or 'default'} "
        f"common={len(setup.common)} "
        f"rounds={len(next(iter(trials.values())))} settle={setup.settle:g}s "
        f"consumer: huey_consumer {MODULES[setup.agent]} -w N -k thread "
        f"{' '.join(setup.consumer_args)}".rstrip()
    )
    print(
        f"{'workers':>7} {'ideal s':>8} {'makespan s (median)':>20} {'efficiency':>10} "
        f"{'scaling vs 1':>12} {'run s (median)':>14} {'machine cpu':>11} {'bdp cpu s':>11}"
        f"  makespans"
    )
    for workers, group in sorted(trials.items()):
        waves = math.ceil(count / workers)
        ideal = waves * session
        span = median([t.makespan for t in group])
        scaling = f"{waves * one / count / span:12.2f}" if one else f"{'-':>12}"
        runs = median([d for t in group for d in t.runs])
        cpu = median([t.cpu_busy for t in group])
        own = median([t.cpu_ours[0] for t in group])
        children = median([t.cpu_ours[1] for t in group])
        ours = f"{own:.1f}+{children:.1f}"
        spans = " ".join(f"{t.makespan:.2f}" for t in group)
        print(
            f"{workers:>7} {ideal:8.1f} {span:20.2f} {ideal / span:10.2f} {scaling} "
            f"{runs:14.2f} {cpu:11.0%} {ours:>11}  {spans}"
        )
    print(
        "  run s: one run from registration to its outcome record (after bd close); machine "
        "cpu: all cores, any process; bdp cpu s: the consumer and its children"
    )


def phases(trial: Trial) -> dict[str, list[float]]:
    """Seconds spent around each session, from the stub worker's timeline."""
    out: dict[str, list[float]] = defaultdict(list)
    by_issue: dict[str, dict[str, float]] = defaultdict(dict)
    by_thread: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in trial.timeline:
        if _counted(event, out):
            continue
        if event.get("task", "").endswith("janitor"):
            out["janitor"].append(event["t"])
            continue
        by_issue[event["issue"]][event["ev"]] = event["t"]
        if event["ev"] in ("task_start", "task_end"):
            by_thread[event["thread"]].append((event["t"], event["ev"]))
    for ev in by_issue.values():
        if len(ev) == 4:
            out["pre"].append(ev["session_start"] - ev["task_start"])
            out["post"].append(ev["task_end"] - ev["session_end"])
    for events in by_thread.values():
        events.sort()
        out["pickup"].append(events[0][0] - trial.t0)
        for (t_end, kind), (t_next, _) in itertools.pairwise(events):
            if kind == "task_end":
                out["gap"].append(t_next - t_end)
    return out


def _counted(event: dict[str, Any], out: dict[str, list[float]]) -> bool:
    """Note a bd/git call's seconds, or a process started; False for other events."""
    if event["ev"] == "call":
        out[f"call:{event['name']}"].append(event["seconds"])
    elif event["ev"] == "spawn":
        out[f"spawn:{event['name'].split()[0]}"].append(1.0)
    else:
        return False
    return True


def _pool(group: list[Trial]) -> dict[str, list[float]]:
    pooled: dict[str, list[float]] = defaultdict(list)
    for trial in group:
        for key, values in phases(trial).items():
            pooled[key] += values
    return pooled


def _cell(values: list[float] | None, width: int) -> str:
    values = values or [0.0]
    return f"{median(values):.2f} / {max(values):.2f}".rjust(width)


def report_phases(trials: dict[int, list[Trial]], issues: int) -> None:
    pooled = {workers: _pool(group) for workers, group in sorted(trials.items())}
    print("\nwhere the time goes (stub agent; seconds, median / max over all runs):")
    print(
        f"{'workers':>7} {'first pickup':>13} {'before session':>15} {'after session':>14} "
        f"{'between tasks':>14} {'janitor runs':>12}"
    )
    for workers, pool in pooled.items():
        janitor = len(pool.get("janitor", [])) // 2 // len(trials[workers])
        print(
            f"{workers:>7} {_cell(pool.get('pickup'), 13)} {_cell(pool.get('pre'), 15)} "
            f"{_cell(pool.get('post'), 14)} {_cell(pool.get('gap'), 14)} "
            f"{janitor:>12}"
        )
    print(
        "  first pickup: enqueue start -> each worker's first task; before session: task start "
        "-> session start\n  (bd claim, run registry, tree); after session: session end -> "
        "task end (ownership check,\n  git commit, bd close, locks, outcome record); between "
        "tasks: a worker's task end -> its next task start"
    )
    names = sorted({k for pool in pooled.values() for k in pool if k.startswith("call:")})
    print("\nbd and git calls (median ms per call; calls per issue in brackets):")
    print(f"{'call':>38} " + " ".join(f"{f'{w} workers':>14}" for w in pooled))
    for name in names:
        cells = []
        for workers, pool in pooled.items():
            values = pool.get(name, [])
            per_issue = len(values) / (issues * len(trials[workers]))
            text = f"{median(values) * 1000:.0f} [{per_issue:.1f}]" if values else "-"
            cells.append(f"{text:>14}")
        print(f"{name.removeprefix('call:'):>38} " + " ".join(cells))
    report_spawns(pooled, trials, issues)


def report_spawns(
    pooled: dict[int, dict[str, list[float]]], trials: dict[int, list[Trial]], issues: int
) -> None:
    """Processes the consumer started per issue, by program (the janitor's included)."""
    programs = sorted({k for pool in pooled.values() for k in pool if k.startswith("spawn:")})
    if not programs:
        return
    print("\nprocesses per issue (all the consumer started, its janitor's too):")
    print(f"{'program':>38} " + " ".join(f"{f'{w} workers':>14}" for w in pooled))
    for name in [*programs, "total"]:
        cells = []
        for workers, pool in pooled.items():
            wanted = programs if name == "total" else [name]
            count = sum(len(pool.get(key, [])) for key in wanted)
            cells.append(f"{count / (issues * len(trials[workers])):14.1f}")
        print(f"{name.removeprefix('spawn:'):>38} " + " ".join(cells))


def landing_latencies(trial: Trial) -> list[float]:
    """Per landed issue: its last session's end -> its DONE record (commit on main, closed)."""
    ends: dict[str, float] = {}
    for event in trial.timeline:
        if event["ev"] == "session_end":
            ends[event["issue"]] = event["t"]
    done = (r for r in trial.records if r.outcome is Outcome.DONE and r.issue_id in ends)
    return [r.finished - ends[r.issue_id] for r in done]


def report_landing(trials: dict[int, list[Trial]], issues: int) -> None:
    print("\nlanding (stub agent): conflict rate and session end -> landed and closed")
    print(
        f"{'workers':>7} {'conflict rate':>13} {'gave up':>8} {'latency median s':>17} {'p95 s':>7}"
    )
    for workers, group in sorted(trials.items()):
        sent_back = {(id(t), r.issue_id) for t in group for r in t.records if _sent_back(r)}
        latencies = sorted(v for t in group for v in landing_latencies(t))
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
        rate = len(sent_back) / (issues * len(group))
        gave_up = sum(1 for t in group for r in t.records if _gave_up(r)) / len(group)
        print(
            f"{workers:>7} {rate:13.0%} {gave_up:8.1f} {median(latencies or [0.0]):17.2f} "
            f"{p95:7.2f}"
        )


# -- main ----------------------------------------------------------------------------------


@contextmanager
def prepared(options: argparse.Namespace, work: Path) -> Iterator[Setup]:
    for name in AMBIENT_VARS:
        os.environ.pop(name, None)
    template, issues = build_template(work, options.issues)
    base = clean_env(
        BDP_BD=str(BIN_DIR / "bd"), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", BDP_WRAPUP="5"
    )
    setup = Setup(
        options.agent,
        options.broker,
        issues,
        template,
        options.session,
        options.settle,
        shlex.split(options.consumer_args),
        base,
        options.beads,
        options.isolation or "",
        tuple(issues[:: round(1 / options.common)]) if options.common else (),
    )
    with ExitStack() as stack:
        if options.broker == "redis":
            setup.redis = stack.enter_context(redis_server(work / "redis"))
        if options.agent == "claude":
            setup.api = stack.enter_context(FakeApi())
            script_sessions(setup.api, issues, options.session)
            setup.base_env.update(cli_env(setup.api.url, work / "claude-home"))
        if options.baseline:
            older = unpack(options.baseline, work / "baseline-src")
            setup.sources = {options.baseline: f"{older}{os.pathsep}{ROOT}", "current": str(ROOT)}
        yield setup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--agent", choices=sorted(MODULES), default="stub")
    parser.add_argument("--rounds", type=int, default=3, help="trials per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--issues", type=int, default=24)
    parser.add_argument("--session", type=float, default=2.0, help="seconds per session")
    parser.add_argument("--broker", choices=["redis", "sqlite"], default="redis")
    parser.add_argument(
        "--settle",
        type=float,
        help="seconds between consumer start and "
        "enqueue, for the start-up hooks (default: 2 stub, 5 claude)",
    )
    parser.add_argument(
        "--consumer-args", default="", help='extra huey_consumer options, e.g. "-d 0.01 -m 1"'
    )
    parser.add_argument(
        "--beads",
        choices=["bd", "memory"],
        default="bd",
        help="memory (stub agent only): diagnostic, the workers use an in-process "
        "MemoryBeads instead of running bd",
    )
    parser.add_argument("--isolation", choices=["worktree", "shared"], help="BDP_ISOLATION")
    parser.add_argument(
        "--common", type=float, default=0.0, help="share of issues also editing one common file"
    )
    parser.add_argument("--baseline", help="also run every trial with this git revision's bdp")
    options = parser.parse_args(argv)
    if options.common and options.agent != "stub":
        parser.error("--common needs --agent stub")
    if options.beads == "memory" and options.agent != "stub":
        parser.error("--beads memory needs --agent stub")
    if options.settle is None:
        options.settle = 5.0 if options.agent == "claude" else 2.0
    by_source: dict[str, dict[int, list[Trial]]] = defaultdict(lambda: defaultdict(list))
    with (
        tempfile.TemporaryDirectory(prefix="bdp-bench-parallel-") as tmp,
        prepared(options, Path(tmp)) as setup,
    ):
        for round_no in range(options.rounds):
            for workers in options.workers:  # interleaved, so drift hits every N alike
                for source in setup.sources or ["current"]:
                    work = Path(tmp) / f"{source}-w{workers}-r{round_no}"
                    trial = run_trial(setup, workers, work, source)
                    by_source[source][workers].append(trial)
                    print(
                        f"round {round_no + 1}, {source}, {workers} workers: makespan "
                        f"{trial.makespan:.2f}s (enqueue {trial.enqueue:.2f}s)",
                        flush=True,
                    )
    for source, trials in by_source.items():
        print(f"\n=== bdp: {source} ===")
        report(setup, trials)
        if options.agent == "stub":
            report_phases(trials, len(setup.issues))
            report_landing(trials, len(setup.issues))


if __name__ == "__main__":
    main()
