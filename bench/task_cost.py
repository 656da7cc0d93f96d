"""What one task costs in processes and in time, against its floor, in the same run.

    uv run python bench/task_cost.py [--tasks 20] [--baseline ab5ed46]

A task is `work_on` of one new issue with an agent that writes one file at once (so only
bdp's own work is measured), the stand-in bd and real git, in shared and in worktree
isolation. Its processes are counted (every subprocess it starts, from any thread); its time
is compared with the floor's: the same claim, add, commit and close (and in a worktree the
tree made, landed with a fast-forward and removed) run as bare commands, one after another.
Measured for this checkout and for the ``--baseline`` revision, each in its own interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a baseline's bdp may come first (bench.harness.measure_in)
    sys.path.insert(0, str(ROOT))

from bench.harness import BEFORE_ISSUE_15, make_repo, measure_in, unpack  # noqa: E402
from tests.support.beads import bd_env, create_issue, init_workspace  # noqa: E402

#: The floor's processes per task: claim, add, commit, close (+ worktree add, fast-forward,
#: worktree remove, branch delete in a worktree).
FLOOR = {"shared": 4, "worktree": 8}


def _spawns() -> tuple[list[str], Callable[[], None]]:
    """A list every new subprocess is named in (``git status``), and how to stop listing."""
    calls: list[str] = []
    real_init = subprocess.Popen.__init__

    def init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [os.path.basename(str(args[0])), *(str(a) for a in args[1:])]
        while len(argv) > 2 and argv[1] == "-c":
            del argv[1:3]
        calls.append(" ".join(argv[:2]))
        real_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]

    def stop() -> None:
        subprocess.Popen.__init__ = real_init  # type: ignore[method-assign]

    return calls, stop


def _args(repo: Path, issue_id: str) -> Any:
    """The task's arguments as enqueue makes them (a revision without `parent` gets none)."""
    from dataclasses import fields, replace

    from bdp.models import TaskArgs

    args = TaskArgs(str(repo), issue_id)
    known = {f.name for f in fields(TaskArgs)}
    changes: dict[str, Any] = {"parent": ""} if "parent" in known else {}
    return replace(args, **changes)


def measure(isolation: str, tasks: int) -> dict[str, Any]:
    """Median ms of a task and of its floor, and the processes of the last task."""
    from huey import MemoryHuey

    from bdp.agent.session import StubAgentRunner
    from bdp.broker.state import State
    from bdp.config import Settings
    from bdp.run.deps import RunDeps
    from bdp.run.work import work_on

    os.environ.update(bd_env())
    with tempfile.TemporaryDirectory(prefix="bdp-bench-task-cost-") as tmp:
        work = Path(tmp)
        repo = make_repo(work / "repo")
        init_workspace(repo)
        settings = Settings(home=work / "home", isolation=isolation)
        state = State(MemoryHuey("task-cost"))
        task_ms, floor_ms, last = [], [], []
        for n in range(tasks + 1):  # the first pays what a process pays once
            issue_id = create_issue(repo, f"Task {n}")
            agent = StubAgentRunner(files={f"{issue_id}.txt": "work\n"})
            calls, stop = _spawns()
            start = time.perf_counter()
            record = work_on(_args(repo, issue_id), "task", RunDeps(settings, state, agent))
            took = (time.perf_counter() - start) * 1000
            stop()
            if record.outcome.value != "DONE":
                raise SystemExit(f"{isolation} task {n} ended {record.outcome}: {record.summary}")
            floor = _floor(repo, work, isolation, n)
            if n:
                task_ms.append(took)
                floor_ms.append(floor)
                last = calls
    return {
        "task_ms": statistics.median(task_ms),
        "floor_ms": statistics.median(floor_ms),
        "calls": last,
    }


def _floor(repo: Path, work: Path, isolation: str, n: int) -> float:
    """Ms of the floor's commands for one new issue, as bare processes."""
    issue_id = create_issue(repo, f"Floor {n}")
    name = f"floor-{n}.txt"
    run = _runner(repo)
    start = time.perf_counter()
    run("bd", "update", issue_id, "--claim", "--actor", "bench", "--json")
    if isolation == "worktree":
        tree = work / f"floor-tree-{n}"
        run("git", "worktree", "add", "--quiet", "-b", f"floor/{n}", str(tree), "HEAD")
        (tree / name).write_text("work\n")
        _runner(tree)("git", "add", "--", name)
        _runner(tree)("git", "commit", "--quiet", "-m", f"floor {n}")
        run("git", "merge", "--ff-only", "--quiet", f"floor/{n}")
        run("git", "worktree", "remove", "--force", str(tree))
        run("git", "branch", "--quiet", "-D", f"floor/{n}")
    else:
        (repo / name).write_text("work\n")
        run("git", "add", "--", name)
        run("git", "commit", "--quiet", "-m", f"floor {n}", "--", name)
    run("bd", "close", issue_id, "--reason", "done", "--json")
    return (time.perf_counter() - start) * 1000


def _runner(where: Path) -> Callable[..., None]:
    def run(*argv: str) -> None:
        subprocess.run(argv, cwd=where, check=True, capture_output=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_15, help="a git revision")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bdp-bench-task-cost-src-") as tmp:
        sources = {options.baseline: unpack(options.baseline, Path(tmp)), "current": ROOT}
        rows = {
            (isolation, name): measure_in(
                source, "bench.task_cost:measure", isolation, options.tasks
            )
            for isolation in FLOOR
            for name, source in sources.items()
        }
    print(f"one task ({options.tasks} tasks, medians): processes and ms against the floor")
    print(
        f"{'isolation':>9} {'bdp':>9} {'processes':>9} {'x floor':>8} {'task ms':>8} "
        f"{'floor ms':>9} {'x floor':>8}"
    )
    for (isolation, name), row in rows.items():
        count, floor = len(row["calls"]), FLOOR[isolation]
        print(
            f"{isolation:>9} {name:>9} {count:9d} {count / floor:7.2f}x {row['task_ms']:8.0f} "
            f"{row['floor_ms']:9.0f} {row['task_ms'] / row['floor_ms']:7.2f}x"
        )
    for (isolation, name), row in rows.items():
        print(f"\n{isolation}, {name}: " + ", ".join(row["calls"]))


if __name__ == "__main__":
    main()
