"""`bdp logs -f`: the logs of every run going on this machine, each line led by its issue.

Like ``docker compose logs -f``: the runs going now are followed together (``acc-kfe | ...``),
one that starts meanwhile is picked up, and the command ends once every run it followed has
ended, each read to its last line first. Only this machine's runs: their logs are here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bdp.host import host_name
from bdp.models import Run

#: Seconds to wait when no followed log had a new line.
READ_PAUSE = 0.2
#: Seconds between looks at which runs are going (new ones, ended ones).
LOOK_EVERY = 1.0


@dataclass
class _Followed:
    """One run being followed: its log, once the run has written one."""

    run: Run
    path: Path
    handle: TextIO | None = None
    partial: str = ""  # a line the run has not finished writing yet


@dataclass
class LogFollower:
    """Follows the runs ``runs()`` reports (those of ``issue_id`` only, when given)."""

    runs: Callable[[], list[Run]]
    emit: Callable[[str], None]
    issue_id: str | None = None
    suffix: str = ".log"  # ".jsonl" for the raw SDK messages
    prefixed: bool = True  # lead each line with its issue (off for --json: lines stay JSON)
    tail: int | None = None  # lines of what a log already holds to show first
    followed: dict[str, _Followed] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # every run followed, ended ones too

    def look(self) -> None:
        """Follow the runs that started, let go of the ones that ended (read to the end)."""
        going = {r.run_id: r for r in self.runs() if self.issue_id in (None, r.issue_id)}
        for run_id, run in going.items():
            if run_id not in self.seen and run.log_path:
                self.seen.add(run_id)
                self.followed[run_id] = _Followed(run, Path(run.log_path).with_suffix(self.suffix))
        for run_id in [run_id for run_id in self.followed if run_id not in going]:
            ended = self.followed.pop(run_id)
            self._read(ended, final=True)
            if ended.handle is not None:
                ended.handle.close()

    def read(self) -> bool:
        """Print the lines the followed logs gained; True when there was one."""
        return sum(self._read(followed) for followed in list(self.followed.values())) > 0

    def follow(self) -> None:
        """Print until every followed run has ended."""
        next_look = time.monotonic() + LOOK_EVERY
        while self.followed:
            if not self.read():
                time.sleep(READ_PAUSE)
            if time.monotonic() >= next_look:
                self.look()
                next_look = time.monotonic() + LOOK_EVERY

    def close(self) -> None:
        for followed in self.followed.values():
            if followed.handle is not None:
                followed.handle.close()

    def _read(self, followed: _Followed, final: bool = False) -> int:
        """Print what ``followed``'s log gained (on the first read, what it holds, cut to
        ``tail``); with ``final``, a last unfinished line too. The lines printed."""
        if followed.handle is None:
            if not followed.path.exists():
                return 0
            followed.handle = followed.path.open(encoding="utf-8", errors="replace")
            lines = self._complete(followed, followed.handle.read(), final)
            lines = lines[-self.tail :] if self.tail else lines
        else:
            lines = self._complete(followed, followed.handle.read(), final)
        for line in lines:
            self.emit(self._prefix(followed.run) + line)
        return len(lines)

    @staticmethod
    def _complete(followed: _Followed, text: str, final: bool) -> list[str]:
        """The whole lines of ``text`` after what was left over; keeps an unfinished one."""
        *whole, rest = (followed.partial + text).split("\n")
        if final and rest:
            whole.append(rest)
            rest = ""
        followed.partial = rest
        return whole

    def _prefix(self, run: Run) -> str:
        if not self.prefixed:
            return ""
        width = max((len(f.run.issue_id) for f in self.followed.values()), default=0)
        return f"{run.issue_id:<{max(width, len(run.issue_id))}} | "


def here(runs: Callable[[], list[Run]]) -> Callable[[], list[Run]]:
    """``runs``, keeping those of this machine (the only ones whose logs are here)."""
    host = host_name()
    return lambda: [run for run in runs() if run.host == host]
