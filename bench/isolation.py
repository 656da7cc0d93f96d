"""What worktree isolation costs per run, against shared isolation measured in the same run.

    uv run python bench/isolation.py [--tasks 30] [--files 500]

Each task runs `work_on` end to end with an agent that writes one file at once and an
in-memory bd, so only bdp's own work counts: in shared isolation commit and close; in worktree
isolation create the worktree, commit, land (fast-forward of the main tree) and remove it.
Prints the median ms per task of each, their ratio, plain git's `worktree add` + `remove` of
the same repo (the floor), and the disk one worktree takes for ``--files`` tracked files.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from huey import MemoryHuey  # noqa: E402

from bdp.agent.session import StubAgentRunner  # noqa: E402
from bdp.broker.state import State  # noqa: E402
from bdp.config import Settings  # noqa: E402
from bdp.models import Issue, Outcome, TaskArgs  # noqa: E402
from bdp.repo.memory_beads import MemoryBeads  # noqa: E402
from bdp.repo.worktree import branch_name, create, remove, tip  # noqa: E402
from bdp.run.deps import RunDeps  # noqa: E402
from bdp.run.work import work_on  # noqa: E402
from bench.harness import git, make_repo  # noqa: E402


def seeded_repo(path: Path, files: int) -> Path:
    """A repo with ``files`` tracked files of about 1 KB each, in 10 folders."""
    repo = make_repo(path)
    for n in range(files):
        folder = repo / f"pkg{n % 10}"
        folder.mkdir(exist_ok=True)
        (folder / f"module{n}.py").write_text(f"# module {n}\n" + "x = 1\n" * 150)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "seed")
    return repo


class Pipeline:
    """`work_on` for one isolation mode, on its own repo, state and in-memory bd."""

    def __init__(self, work: Path, isolation: str, tasks: int, files: int) -> None:
        self.isolation = isolation
        self.repo = seeded_repo(work / f"repo-{isolation}", files)
        settings = Settings(home=work / f"home-{isolation}", isolation=isolation)
        beads = MemoryBeads([Issue(id=f"b-{n}", title=f"Bench {n}") for n in range(tasks)])
        self.agent = StubAgentRunner()
        state = State(MemoryHuey(f"bench-{isolation}"))
        self.deps = RunDeps(settings, state, self.agent, beads=lambda _repo: beads)

    def task_ms(self, n: int) -> float:
        self.agent.files = {f"new{n}.txt": "x\n"}
        start = time.perf_counter()
        record = work_on(TaskArgs(str(self.repo), f"b-{n}"), f"task-{n}", self.deps)
        elapsed = (time.perf_counter() - start) * 1000
        if record.outcome is not Outcome.DONE:
            raise SystemExit(f"{self.isolation}: task {n} ended {record.outcome}: {record.summary}")
        return elapsed


def raw_worktree_ms(repo: Path, work: Path, n: int) -> float:
    """Plain `git worktree add` + `git worktree remove` of the same repo: git's own floor."""
    start = time.perf_counter()
    git(repo, "worktree", "add", "-q", "-b", f"raw{n}", str(work / f"raw{n}"), "main")
    git(repo, "worktree", "remove", "--force", str(work / f"raw{n}"))
    return (time.perf_counter() - start) * 1000


def worktree_disk_kib(work: Path, files: int) -> tuple[int, int]:
    """KiB of one worktree, and of the repo's own checkout (without .git), for comparison."""
    repo = seeded_repo(work / "repo-disk", files)
    home = work / "home-disk"
    tree = create(repo, home, branch_name("b-1", "disk"), tip(repo, "main"))
    used = _du(tree.path)
    checkout = _du(repo) - _du(repo / ".git")
    remove(tree, keep_branch=False, lock_dir=home / "locks")
    return used, checkout


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--files", type=int, default=500)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        shared_run = Pipeline(work, "shared", options.tasks, options.files)
        worktree_run = Pipeline(work, "worktree", options.tasks, options.files)
        raw_repo = seeded_repo(work / "repo-raw", options.files)
        shared, worktree, raw = [], [], []
        for n in range(options.tasks):  # interleaved, so drift hits all three alike
            shared.append(shared_run.task_ms(n))
            worktree.append(worktree_run.task_ms(n))
            raw.append(raw_worktree_ms(raw_repo, work, n))
        used, checkout = worktree_disk_kib(work, options.files)
    shared_ms, worktree_ms = statistics.median(shared), statistics.median(worktree)
    raw_ms = statistics.median(raw)
    print(f"repo of {options.files} files, {options.tasks} tasks per isolation, interleaved")
    print(f"shared    median {shared_ms:7.1f} ms/task (baseline)")
    print(f"worktree  median {worktree_ms:7.1f} ms/task  ratio {worktree_ms / shared_ms:.2f}x")
    print(f"git alone median {raw_ms:7.1f} ms for worktree add + remove of the same repo")
    print(f"worktree / (shared + git alone) = {worktree_ms / (shared_ms + raw_ms):.2f}")
    print(f"worktree  disk   {used} KiB per worktree (the repo's checkout: {checkout} KiB)")


if __name__ == "__main__":
    main()
