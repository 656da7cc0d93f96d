"""What a run's sessions did, accumulated across retries, fix rounds and reviews.

Fed from SDK messages by `bdp.agent` (matched by duck typing: no SDK import here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from bdp.gate import GateResult
from bdp.models import Outcome
from bdp.prompt import Review
from bdp.session import SessionResult


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
    subtype: str = ""
    gate: GateResult | None = None
    cost_before_session: float = 0.0
    last_message: float = dataclasses.field(default_factory=time.monotonic)
    review: Review | None = None
    review_cost: float = 0.0
    context_full: bool = False
    busy: int = 0  # bdp itself is working (a gate, a lock wait): the session is not hung

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

    def add_result(self, message: Any) -> None:
        usage = message.usage or {}
        self.turns += message.num_turns  # turns and usage are per query...
        self.cost_usd = self.cost_before_session + (message.total_cost_usd or 0.0)  # cost is not
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.session_id = message.session_id
        self.final_text = message.result
        self.subtype = message.subtype

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
            attempts=self.attempts,
        )
