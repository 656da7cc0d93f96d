"""Start-up of the commands people type, against ``python -c 'import click'`` in the same run.

    uv run python bench/startup.py [--rounds 15] [--baseline ab5ed46]

Wall milliseconds (medians) of ``bdp --help``, ``bdp status`` and ``bdp metrics`` on SQLite
and on a private redis-server (an empty queue: what is measured is the start-up), for this
checkout and for the ``--baseline`` revision (unpacked with `git archive`), each run of each
interleaved with the others. The goal: status and metrics on Redis within 3x the floor.
``python -c 'import redis'`` is timed too, for reference: what redis-py alone costs.

Two columns: with bytecode (every module compiled once, in a cache of the bench's own via
PYTHONPYCACHEPREFIX, as an install with compile-bytecode has it), and with none (an empty
cache and PYTHONDONTWRITEBYTECODE, as an install made without it, with the standard
library's compiling counted too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import BEFORE_ISSUE_15, clean_env, private_redis, unpack  # noqa: E402

#: How many times the floor status and metrics on Redis should start within.
GOAL = 3.0
COMMANDS = {
    "bdp --help": ["--help"],
    "bdp status": ["status"],
    "bdp metrics": ["metrics"],
}
#: The process entry point (`bdp.cli.ending.run`); a baseline from before it has only `main`.
BDP = (
    "try:\n    from bdp.cli.ending import run\n"
    "except ImportError:\n    from bdp.cli import main as run\n"
    "run()"
)


def wall_ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall ms of one run, from ``cwd`` (not the checkout: ``-c`` puts the cwd first on the
    path, which would import this checkout's bdp whatever PYTHONPATH says)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stderr.decode()[-800:]}")
    return (time.perf_counter() - start) * 1000


def environments(work: Path, source: Path, redis_url: str) -> dict[str, dict[str, str]]:
    """Per broker and bytecode state, the environment a command of ``source``'s bdp runs in."""
    base = clean_env(PYTHONPATH=str(source), BDP_SECRET="bench-" + "s" * 32)
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    brokers = {"sqlite": {}, "redis": {"BDP_REDIS_URL": redis_url}}
    caches = {
        "bytecode": {"PYTHONPYCACHEPREFIX": str(work / f"pyc-{source.name}")},
        "none": {"PYTHONPYCACHEPREFIX": str(work / "pyc-empty"), "PYTHONDONTWRITEBYTECODE": "1"},
    }
    return {
        f"{broker}/{cache}": {**base, **extra, **more, "BDP_HOME": str(work / f"home-{broker}")}
        for broker, extra in brokers.items()
        for cache, more in caches.items()
    }


def cases(sources: dict[str, Path], work: Path, redis_url: str) -> dict[tuple[str, ...], list[str]]:
    """Every (source, command, broker/cache) to time, and its argv and environment key."""
    found: dict[tuple[str, ...], list[str]] = {}
    for name in sources:
        for command, args in COMMANDS.items():
            for where in ("sqlite", "redis"):
                if command == "bdp --help" and where == "redis":
                    continue  # --help never reaches the broker
                found[(name, command, where)] = [sys.executable, "-c", BDP, *args]
    found[("floor", "import click", "")] = [sys.executable, "-c", "import click"]
    found[("floor", "import redis", "")] = [sys.executable, "-c", "import redis"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_15, help="a git revision")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bdp-bench-startup-") as tmp:
        work = Path(tmp)
        sources = {options.baseline: unpack(options.baseline, work / "baseline"), "current": ROOT}
        with private_redis(work / "redis") as redis:
            envs = {name: environments(work, src, redis.url) for name, src in sources.items()}
            envs["floor"] = environments(work, ROOT, redis.url)
            todo = cases(sources, work, redis.url)
            samples: dict[tuple[str, ...], list[float]] = {}
            for number in range(options.rounds + 1):  # round 0 fills the bytecode caches
                for (name, command, where), argv in todo.items():
                    for cache in ("bytecode", "none"):
                        env = envs[name][f"{where or 'sqlite'}/{cache}"]
                        took = wall_ms(argv, env, work)
                        if number:
                            samples.setdefault((name, command, where, cache), []).append(took)
    report(samples, options)


def report(samples: dict[tuple[str, ...], list[float]], options: argparse.Namespace) -> None:
    median = {key: statistics.median(values) for key, values in samples.items()}
    floor = {cache: median[("floor", "import click", "", cache)] for cache in ("bytecode", "none")}
    print(f"{options.rounds} rounds, wall ms (medians); floor: python -c 'import click'")
    print(f"{'bdp':>9} {'command':>22} {'bytecode':>9} {'x floor':>8} {'none':>7} {'x floor':>8}")
    print(f"{'':>9} {'import click':>22} {floor['bytecode']:9.0f} {'':>8} {floor['none']:7.0f}")
    for name in (options.baseline, "current"):
        for command in COMMANDS:
            for where in ("sqlite", "redis"):
                key = (name, command, where)
                if (*key, "bytecode") not in median:
                    continue
                with_code, without = median[(*key, "bytecode")], median[(*key, "none")]
                label = f"{command} ({where})" if command != "bdp --help" else command
                print(
                    f"{name:>9} {label:>22} {with_code:9.0f} {with_code / floor['bytecode']:7.1f}x"
                    f" {without:7.0f} {without / floor['none']:7.1f}x"
                )
    redis = {cache: median[("floor", "import redis", "", cache)] for cache in ("bytecode", "none")}
    print(
        f"{'':>9} {'import redis':>22} {redis['bytecode']:9.0f} "
        f"{redis['bytecode'] / floor['bytecode']:7.1f}x {redis['none']:7.0f} "
        f"{redis['none'] / floor['none']:7.1f}x   (redis-py alone, for reference)"
    )
    print(f"goal: status and metrics on Redis within {GOAL:g}x the floor (with bytecode)")


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    main()
