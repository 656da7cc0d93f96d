"""A small backlog end to end: two independent issues and one blocked by the first, worked by
`bdp run` with the real claude CLI against the fake Messages API, against an older bdp
measured in the same run.

    uv run python bench/backlog.py [--rounds 5] [--baseline 30d945c]

Each round makes a fresh repo, state dir and fake API for each bdp (this checkout, and the
``--baseline`` commit unpacked with `git archive`), alternating, and runs `bdp run -n 2` until
every issue is closed (an older bdp may need a second run for the blocked issue). The fake
model writes one file per issue, then finishes the way the request allows: the structured
report when the CLI offers it, else the text line. Prints medians of wall seconds to a closed
backlog, `bdp run` invocations, API calls and request bytes per issue, and their ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import clean_env, make_repo, median  # noqa: E402
from tests.support.beads import create_issue, init_workspace, run_bd_ok, show_issue  # noqa: E402
from tests.support.fake_api import FakeApi, Finish, ToolUse, cli_env  # noqa: E402

#: The bdp before same-run pickup and structured outcomes (issue 13).
DEFAULT_BASELINE = "30d945c"
ISSUES = 3
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Sample:
    seconds: float
    runs: int
    calls: int
    request_bytes: int


def unpack(revision: str, into: Path) -> Path:
    """The bdp package of ``revision``, unpacked under ``into`` (put first on PYTHONPATH)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "bdp"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def backlog(path: Path) -> list[str]:
    """A repo whose third issue waits for its first."""
    repo = make_repo(path)
    init_workspace(repo)
    first, other, waiting = (create_issue(repo, f"Issue {n}") for n in range(ISSUES))
    run_bd_ok(repo, "dep", "add", waiting, first)
    return [first, other, waiting]


def one_round(source: Path, work: Path) -> Sample:
    """Run `bdp run` (of the bdp under ``source``) until the backlog is closed."""
    repo = work / "repo"
    ids = backlog(repo)
    with FakeApi() as api:
        for issue_id in ids:
            write = ToolUse("Write", {"file_path": f"{issue_id}.md", "content": "work\n"})
            finish = Finish("DONE", f"added {issue_id}.md")
            api.script([write, finish], match=f"Implement beads issue {issue_id} in")
        env = clean_env(**cli_env(api.url, work / "claude"), BDP_HOME=str(work / "home"))
        env["PYTHONPATH"] = str(source)
        argv = [sys.executable, "-c", "from bdp.cli import main; main()", "run", str(repo)]
        started, runs = time.perf_counter(), 0
        while not all(show_issue(repo, i)["status"] == "closed" for i in ids) and runs < 3:
            subprocess.run(
                [*argv, "-n", "2"], env=env, cwd=work, capture_output=True, timeout=RUN_TIMEOUT
            )
            runs += 1
        seconds = time.perf_counter() - started
        requests = api.messages_requests()
        size = sum(len(json.dumps(r.body).encode()) for r in requests)
    if runs == 3:
        raise SystemExit(f"{source}: the backlog was not closed in 3 runs")
    return Sample(seconds, runs, len(requests), size)


def report(name: str, samples: list[Sample]) -> dict[str, float]:
    row = {
        "seconds": median([s.seconds for s in samples]),
        "runs": median([s.runs for s in samples]),
        "calls/issue": median([s.calls / ISSUES for s in samples]),
        "bytes/issue": median([s.request_bytes / ISSUES for s in samples]),
    }
    cells = "  ".join(f"{key} {value:10.2f}" for key, value in row.items())
    print(f"{name:>9}: {cells}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bdp-bench-") as tmp:
        base = unpack(args.baseline, Path(tmp) / "baseline")
        sources = {"baseline": base, "current": ROOT}
        samples: dict[str, list[Sample]] = {name: [] for name in sources}
        for number in range(args.rounds):
            for name, source in sources.items():
                samples[name].append(one_round(source, Path(tmp) / f"{name}-{number}"))
        print(f"{args.rounds} rounds, medians (baseline {args.baseline}):")
        before, after = (report(name, samples[name]) for name in sources)
        ratios = "  ".join(f"{k} {after[k] / before[k]:.2f}x" for k in before if before[k])
        print(f"    ratio: {ratios}")


if __name__ == "__main__":
    main()
