"""Many machines, one queue: throughput with 1, 2 and 3 hosts, landing latency, recovery.

    uv run python bench/hosts.py [--issues 30] [--workers 2] [--session 2] [--rounds 1]

Each "host" is simulated as bdp's tests do (tests/support/hosts.py): its own clone of one bare
remote at a path of its own, its own BDP_HOME, stand-in bd database (the same backlog, copied)
and BDP_HOST, all on one private redis-server, landing through the remote. A host is one
``huey_consumer bench.sleepy_worker.huey -w N``: bdp's real tasks (lease, claim, worktree,
commit, landing by push, close) around a session that sleeps ``--session`` seconds and writes
one file. Every host queues its own bd's backlog.

Throughput: makespan from the first enqueue to the last issue on the remote's main; ideal =
ceil(issues / (hosts x workers)) x session; efficiency = ideal / makespan. Landing latency: a
session's end -> its commit first seen on the remote (polled every 50 ms). Recovery (3 hosts):
one host's consumer is SIGKILLed while its sessions run; recovery time = the kill -> the last
of its issues on the remote (BDP_STALE_AFTER=5, BDP_JANITOR_INTERVAL=1); "requeued" = the kill
-> the first of them started again on another host. Each issue must land exactly once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import BDP, Consumer, clean_env, private_redis, wait_until  # noqa: E402
from tests.support.hosts import landed_on, make_host, seeded_backlog, shared_remote  # noqa: E402

FAST_RECOVERY = {"BDP_STALE_AFTER": "5", "BDP_JANITOR_INTERVAL": "1", "BDP_HEARTBEAT": "1"}


@dataclass
class Trial:
    """One run of the backlog: when it started, when each issue reached the remote."""

    hosts: int
    started: float
    seen: dict[str, float] = field(default_factory=dict)  # issue -> first seen on the remote
    timeline: list[dict[str, object]] = field(default_factory=list)
    killed_at: float | None = None
    victims: list[str] = field(default_factory=list)  # the killed host's running issues
    abandoned: list[float] = field(default_factory=list)  # when the janitor recovered them

    @property
    def makespan(self) -> float:
        return max(self.seen.values()) - self.started


def run_trial(work: Path, redis_url: str, hosts: int, options: argparse.Namespace) -> Trial:
    """One backlog worked by ``hosts`` hosts; with ``--kill``, the first one dies mid-run."""
    bare = shared_remote(work)
    beads, ids = seeded_backlog(work, options.issues)
    base = clean_env(
        BDP_REDIS_URL=redis_url,
        BDP_SECRET="bench-" + "s" * 32,
        BENCH_SESSION_SECONDS=str(options.session),
        PYTHONPATH=str(ROOT),
        **(FAST_RECOVERY if options.kill else {}),
    )
    made = [make_host(work, f"host{n}", bare, beads, base) for n in range(hosts)]
    for host in made:
        host.env["BENCH_TIMELINE"] = str(work / f"{host.name}.jsonl")
    trial = Trial(hosts, time.time())
    for host in made:
        _enqueue(host.env, host.clone)
    consumers = [
        Consumer("bench.sleepy_worker.huey", options.workers, h.env, work / f"{h.name}.log").start()
        for h in made
    ]
    try:
        _watch(trial, bare, ids, consumers[0], work / "host0.jsonl", options)
    finally:
        for consumer in consumers:
            consumer.stop()
    trial.timeline = [e for h in made for e in _events(work / f"{h.name}.jsonl")]
    _check(bare, ids)
    trial.abandoned = _abandoned(made[-1].env)
    return trial


def _abandoned(env: dict[str, str]) -> list[float]:
    """When the janitor recorded runs as ABANDONED (it had reset and requeued them)."""
    from bdp.config import Settings
    from bdp.models import Outcome
    from bdp.queue.app import App

    outcomes = App.create(Settings.from_env(env)).state.outcomes()
    return [r.finished for r in outcomes if r.outcome is Outcome.ABANDONED]


def _enqueue(env: dict[str, str], clone: Path) -> None:
    done = subprocess.run([BDP, "enqueue", str(clone)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bdp enqueue failed: {done.stderr}")


def _watch(
    trial: Trial,
    bare: Path,
    ids: list[str],
    victim: Consumer,
    victim_timeline: Path,
    options: argparse.Namespace,
) -> None:
    """Poll the remote until every issue is on it; kill ``victim`` once a third has landed."""
    deadline = time.monotonic() + options.timeout
    while len(trial.seen) < len(ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(trial.seen)} of {len(ids)} landed in {options.timeout}s")
        now = time.time()
        for issue_id in landed_on(bare):
            trial.seen.setdefault(issue_id, now)
        if options.kill and trial.killed_at is None and len(trial.seen) >= len(ids) // 3:
            _kill(trial, victim, victim_timeline)
        time.sleep(0.05)


def _kill(trial: Trial, victim: Consumer, timeline: Path) -> None:
    """SIGKILL the victim host's consumer while sessions run there; note which."""
    if not wait_until(lambda: _running(timeline), 30):
        return
    assert victim.process is not None
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    trial.killed_at = time.time()
    trial.victims = _running(timeline)


def _running(timeline: Path) -> list[str]:
    """Issues whose session started and has not ended, by the host's timeline."""
    started: dict[str, int] = {}
    for event in _events(timeline):
        if event["ev"] in ("session_start", "session_end"):
            issue = str(event["issue"])
            started[issue] = started.get(issue, 0) + (1 if event["ev"] == "session_start" else -1)
    return sorted(issue for issue, open_ in started.items() if open_ > 0)


def _events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check(bare: Path, ids: list[str]) -> None:
    landed = landed_on(bare)
    twice = sorted(i for i in ids if len(landed.get(i, [])) != 1)
    if twice:
        raise SystemExit(f"issues not landed exactly once: {twice}")


def latencies(trial: Trial) -> list[float]:
    ends: dict[str, float] = {}
    for event in trial.timeline:
        if event["ev"] == "session_end":
            ends[str(event["issue"])] = float(str(event["t"]))  # the last session's end
    return [trial.seen[i] - ends[i] for i in trial.seen if i in ends]


def recovery(trial: Trial) -> tuple[float, float, float]:
    """The kill -> the victims' runs recovered by a janitor, their issues started again
    elsewhere, and on the remote."""
    assert trial.killed_at is not None
    again = [
        float(str(e["t"]))
        for e in trial.timeline
        if e["ev"] == "session_start"
        and e["issue"] in trial.victims
        and float(str(e["t"])) > trial.killed_at
    ]
    landed = max(trial.seen[i] for i in trial.victims)
    recovered = max(trial.abandoned, default=float("nan"))
    return recovered - trial.killed_at, min(again) - trial.killed_at, landed - trial.killed_at


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--session", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bdp-bench-hosts-") as tmp,
        private_redis(Path(tmp) / "redis") as redis,
    ):
        trials: dict[int, list[Trial]] = {}
        for number in range(options.rounds):
            for hosts in (1, 2, 3):
                redis.client().flushall()
                work = Path(tmp) / f"r{number}-h{hosts}"
                options.kill = False
                trials.setdefault(hosts, []).append(run_trial(work, redis.url, hosts, options))
        redis.client().flushall()
        options.kill = True
        killed = run_trial(Path(tmp) / "kill", redis.url, 3, options)
    report(trials, killed, options)


def report(trials: dict[int, list[Trial]], killed: Trial, options: argparse.Namespace) -> None:
    print(f"{options.issues} issues, {options.workers} workers per host, {options.session:g} s")
    print("sessions, medians over rounds; every issue landed exactly once on the remote")
    print(
        f"{'hosts':>5} {'makespan':>9} {'ideal':>7} {'efficiency':>10} {'land p50':>9} {'p95':>6}"
    )
    for hosts, group in trials.items():
        ideal = math.ceil(options.issues / (hosts * options.workers)) * options.session
        makespan = statistics.median(t.makespan for t in group)
        lat = [value for t in group for value in latencies(t)]
        print(
            f"{hosts:>5} {makespan:8.1f}s {ideal:6.1f}s {ideal / makespan:10.2f} "
            f"{percentile(lat, 0.5):8.2f}s {percentile(lat, 0.95):5.2f}s"
        )
    recovered, requeued, landed = recovery(killed)
    print(
        f"host killed with {len(killed.victims)} sessions running (BDP_STALE_AFTER=5, janitor "
        f"every 1 s): recovered {recovered:.1f} s after the kill, started again elsewhere "
        f"{requeued:.1f} s, all landed {landed:.1f} s; makespan {killed.makespan:.1f} s"
    )


if __name__ == "__main__":
    main()
