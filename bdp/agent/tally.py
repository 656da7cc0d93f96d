"""What a run's sessions did, accumulated across retries, fix rounds and reviews.

Fed from SDK messages by `bdp.agent.claude` (matched by duck typing: no SDK import here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from bdp.agent.prompt import Review
from bdp.agent.report import Verdict, read_verdict
from bdp.agent.session import SessionResult
from bdp.models import Activity, Outcome
from bdp.repo.quality_gate import GateResult


@dataclasses.dataclass
class Tally:
    """Accumulates what a run's sessions did, across retries."""

    changed: set[str] = dataclasses.field(default_factory=set)
    turns: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    session_id: str = ""
    attempts: int = 0
    final_text: str | None = None
    structured: object = None  # the last exchange's report, when the CLI returned one
    subtype: str = ""
    gate: GateResult | None = None
    cost_before_session: float = 0.0
    resumed_cost: float = 0.0  # what the resumed session cost before this run
    session_cost: float = 0.0  # all that the session ``session_id`` names has cost so far
    last_message: float | None = None  # monotonic; None: the CLI has said nothing yet
    review: Review | None = None
    review_cost: float = 0.0
    context_full: bool = False
    busy: int = 0  # bdp itself is working (a gate, a lock wait): the session is not hung
    tool: str = ""  # the tool call in flight
    limit_reset: float | None = None  # when a usage limit the API reported resets
    # usage of this exchange's model turns so far, by message id (settled by its result)
    _turn_usage: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.last_message = time.monotonic()

    def unfinished_note(self) -> str:
        files = ", ".join(sorted(self.changed)) or "none"
        return f"Files changed: {files}. Last message: {(self.final_text or '').strip()[-1500:]}"

    def verdict(self) -> Verdict | None:
        """The agent's last verdict: its structured report, or its text line."""
        return read_verdict(self.structured, self.final_text)

    def add_assistant(self, message: Any) -> None:
        """Count a model turn as it arrives; its tokens are final once the exchange ends."""
        key = message.message_id or str(id(message))
        self._turn_usage[key] = message.usage or {}
        for block in message.content:
            if hasattr(block, "name") and hasattr(block, "input"):
                self.tool = tool_label(block.name, block.input)

    def activity(self) -> Activity:
        """The session's live numbers: settled ones plus this exchange's turns so far."""
        pending = self._turn_usage.values()
        return Activity(
            tool=self.tool,
            turns=self.turns + len(self._turn_usage),
            input_tokens=self.input_tokens + sum(int(u.get("input_tokens", 0)) for u in pending),
            output_tokens=self.output_tokens + sum(int(u.get("output_tokens", 0)) for u in pending),
            cost_usd=round(self.cost_usd, 6),
            updated=time.time(),
        )

    def add_result(self, message: Any) -> None:
        usage = message.usage or {}
        self.turns += message.num_turns  # turns and usage are per query...
        spent = self._spent_in_session(message.total_cost_usd or 0.0)  # cost is not
        self.cost_usd = self.cost_before_session + spent
        self.session_cost = self.resumed_cost + spent
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.session_id = message.session_id
        self.final_text = message.result
        self.structured = getattr(message, "structured_output", None)
        self.subtype = message.subtype
        self._turn_usage.clear()
        self.tool = ""

    def _spent_in_session(self, total: float) -> float:
        """What this run spent in its session, from the CLI's total for the whole session.

        The CLI counts a resumed session's earlier cost in its total (not in the budget it
        enforces, which is what it spends from its start): only what comes on top is this
        run's, else an issue's runs would count the first part of a session once per
        continuation. A total below the earlier cost is a CLI that started its count afresh.
        """
        resumed = self.resumed_cost
        return total - resumed if total >= resumed else total

    def result(self, outcome: Outcome, summary: str) -> SessionResult:
        return SessionResult(
            outcome=outcome,
            summary=summary,
            changed_files=sorted(self.changed),
            turns=self.turns,
            cost_usd=round(self.cost_usd, 6),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            session_id=self.session_id,
            session_cost_usd=round(self.session_cost, 6),
            attempts=self.attempts,
        )


def tool_label(name: str, tool_input: Any) -> str:
    """``Edit src/app.py``, ``Bash pytest -q``: a tool call, short enough for a table."""
    target = ""
    if isinstance(tool_input, dict):
        for key in ("file_path", "notebook_path", "command", "pattern", "path", "paths"):
            if tool_input.get(key):
                target = str(tool_input[key])
                break
    name = name.removeprefix("mcp__bdp__")
    label = f"{name} {target}".strip().replace("\n", " ")
    return label if len(label) <= 60 else label[:59] + "…"
