"""Request size: what each model call carries, on two trivial issues worked by `bdp run` with
the real claude CLI against the fake Messages API, against an older bdp measured in the same
run.

    uv run python bench/requests.py [--rounds 3] [--baseline 42c1051]

Each round makes a fresh repo with two independent issues, a state dir and a fake API for each
bdp (this checkout, and the ``--baseline`` commit unpacked with `git archive`), alternating,
and runs `bdp run -n 2` once. The fake model writes one file per issue, then finishes the way
the request allows. Prints medians of the bytes the CLI sent (each body's Content-Length) per
call and per issue, of the tool definitions and system prompt in each call, and of the prefix
the two issues' first requests share (tools, then system, then messages: the order in which
the API's prompt cache reads a request), and of that prefix the part up to its last cache
breakpoint, which the cache can serve to the second issue's first call, and the rest of that
call, which it cannot. Then the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backlog import unpack  # noqa: E402
from bench.harness import clean_env, make_repo, median  # noqa: E402
from tests.support.beads import create_issue, init_workspace, show_issue  # noqa: E402
from tests.support.fake_api import FakeApi, Finish, RecordedRequest, ToolUse, cli_env  # noqa: E402

#: The bdp before issue 15's lighter requests (every tool the CLI has, the issue id in the system
#: prompt).
DEFAULT_BASELINE = "42c1051"
ISSUES = 2
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Sample:
    per_call: float
    per_issue: float
    calls_per_issue: float
    tools: float
    system: float
    shared_prefix: int
    cache_served: int
    not_served: int


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def pieces(body: Any) -> list[Any]:
    """A request in the order the prompt cache reads it: tools, system blocks, message blocks."""
    blocks: list[Any] = []
    for message in body["messages"]:
        content = message["content"]
        blocks += (
            content if isinstance(content, list) else [{"role": message["role"], "text": content}]
        )
    return [*body.get("tools", []), *body.get("system", []), *blocks]


def shared_prefix(first: Any, other: Any) -> tuple[int, int]:
    """How many leading bytes two requests have in common; and of those, how many end at a
    cache breakpoint (a block marked ``cache_control``): what the prompt cache can serve."""
    a, b = (b"".join(compact(piece) for piece in pieces(body)) for body in (first, other))
    same = next(
        (n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    offset, cached = 0, 0
    for piece in pieces(first):
        offset += len(compact(piece))
        if offset > same:
            break
        if isinstance(piece, dict) and "cache_control" in piece:
            cached = offset
    return same, cached


def sent_bytes(request: RecordedRequest) -> int:
    return int(request.headers.get("content-length") or len(compact(request.body)))


def one_round(source: Path, work: Path) -> Sample:
    """One `bdp run` (of the bdp under ``source``) over two fresh issues."""
    repo = make_repo(work / "repo")
    init_workspace(repo)
    ids = [create_issue(repo, f"Issue {n}: add notes for part {n}") for n in range(ISSUES)]
    with FakeApi() as api:
        markers = {issue_id: f"Implement beads issue {issue_id} in" for issue_id in ids}
        for issue_id, marker in markers.items():
            write = ToolUse("Write", {"file_path": f"{issue_id}.md", "content": "work\n"})
            api.script([write, Finish("DONE", f"added {issue_id}.md")], match=marker)
        env = clean_env(**cli_env(api.url, work / "claude"), BDP_HOME=str(work / "home"))
        env["PYTHONPATH"] = str(source)
        argv = [sys.executable, "-c", "from bdp.cli import main; main()", "run", str(repo)]
        subprocess.run(
            [*argv, "-n", "2"], env=env, cwd=work, capture_output=True, timeout=RUN_TIMEOUT
        )
        requests = api.messages_requests()
        firsts = [api.messages_requests(match=marker)[0].body for marker in markers.values()]
    if not all(show_issue(repo, i)["status"] == "closed" for i in ids):
        raise SystemExit(f"{source}: the issues were not closed in one run")
    sizes = [sent_bytes(r) for r in requests]
    same, cached = shared_prefix(*firsts)
    return Sample(
        per_call=median(sizes),
        per_issue=sum(sizes) / ISSUES,
        calls_per_issue=len(requests) / ISSUES,
        tools=median([len(compact(r.body.get("tools", []))) for r in requests]),
        system=median([len(compact(r.body.get("system", []))) for r in requests]),
        shared_prefix=same,
        cache_served=cached,
        not_served=sum(len(compact(piece)) for piece in pieces(firsts[1])) - cached,
    )


def report(name: str, samples: list[Sample]) -> dict[str, float]:
    row = {
        "bytes/call": median([s.per_call for s in samples]),
        "bytes/issue": median([s.per_issue for s in samples]),
        "calls/issue": median([s.calls_per_issue for s in samples]),
        "tools/call": median([s.tools for s in samples]),
        "system/call": median([s.system for s in samples]),
        "shared prefix": median([s.shared_prefix for s in samples]),
        "cache-served": median([s.cache_served for s in samples]),
        "not served": median([s.not_served for s in samples]),
    }
    print(f"{name:>9}: " + "  ".join(f"{key} {value:9.0f}" for key, value in row.items()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
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
